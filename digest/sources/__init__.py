"""Sources turn the outside world (files, feeds, pages) into Articles, with a report per source.

Web sources are fetched together, so collecting many costs about as long as the slowest one. A source that fails is
reported and left out; the others still make the edition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from digest.config import DigestConfig, FeedSource, PageSource, Settings
from digest.errors import ContentError, ContentProblems, SourceError
from digest.models import Article
from digest.sources.feeds import parse_feed
from digest.sources.fetch import Fetched, FetchRequest, fetch_all, user_agent
from digest.sources.files import read_articles
from digest.sources.isolate import run_isolated, warm_up
from digest.sources.normalise import Item, Parsed
from digest.sources.pages import parse_page

if TYPE_CHECKING:
    from digest.store import Store

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # a library logs; the application decides where it goes

WebSource = FeedSource | PageSource


@dataclass(frozen=True, kw_only=True)
class SourceReport:
    """How one source went: how many articles it gave, or why it gave none."""

    name: str
    kind: str  # files | feed | page
    location: str  # folder or URL
    articles: int = 0
    error: str | None = None
    not_modified: bool = False
    note: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """One line for the terminal and the log."""
        where = self.name if self.name == self.location else f"{self.name} ({self.location})"
        if self.error is not None:
            return f"{self.kind} {where}: failed: {self.error}"
        details = [f"{self.articles} article{'' if self.articles == 1 else 's'}"]
        if self.not_modified:
            details.append("unchanged since the last fetch (304)")
        if self.note:
            details.append(self.note)
        return f"{self.kind} {where}: " + ", ".join(details)


@dataclass(frozen=True)
class Collection:
    """Every article the sources offer now, unfiltered, and a report per source.

    Iterating over a Collection yields its articles, so code written when collect() returned a list still works.
    """

    articles: tuple[Article, ...]
    reports: tuple[SourceReport, ...]
    # When each article's URL was first seen (remembered in the store; without one, `now`).
    first_seen: Mapping[str, datetime] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Article]:
        return iter(self.articles)

    def __len__(self) -> int:
        return len(self.articles)

    @property
    def failures(self) -> tuple[SourceReport, ...]:
        return tuple(report for report in self.reports if not report.ok)

    @property
    def all_failed(self) -> bool:
        return bool(self.reports) and len(self.failures) == len(self.reports)


def collect(settings: Settings, digest: DigestConfig, *, store: Store | None = None,
            now: datetime | None = None, digest_name: str | None = None) -> Collection:
    """Every article every source of the digest offers now, unfiltered, with a report per source.

    With a store, web sources use conditional GET (an unchanged feed costs a 304), undated items keep the time
    they were first seen, and the reports are stored as the sources' last outcome (`digest status`, the desk);
    without one, every fetch is full and undated items are dated `now`.
    """
    # Whole seconds: a first-seen time becomes a published date, and nobody needs its microseconds.
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    tz = digest.timezone
    reports: dict[int, SourceReport] = {}
    extra_reports: dict[int, list[SourceReport]] = {}
    articles: dict[int, list[Article]] = {}
    web: list[tuple[int, WebSource]] = []
    for index, source in enumerate(digest.sources):
        if isinstance(source, FeedSource | PageSource):
            web.append((index, source))
            continue
        folder: Path = settings.resolve(source.path)
        found, problems = read_articles(folder, label=source.label or source.path)
        if problems and digest.content.strict:
            # `content: {strict: true}`: the editors want a broken file fixed before anything goes out.
            raise ContentProblems(problems)
        articles[index] = found
        note = f"{len(problems)} bad file{'' if len(problems) == 1 else 's'} left out" if problems else None
        reports[index] = SourceReport(name=source.label or source.path, kind="files", location=source.path,
                                      articles=len(found), note=note)
        # Each bad file is a failure of its own, reported like a web source's: named, with its line and field.
        extra_reports[index] = [_bad_file(source.label or source.path, settings, problem) for problem in problems]

    undated: dict[int, list[Item]] = {}
    labels: dict[int, str] = {}
    for index, source, outcome in _fetch_and_parse(settings, web, store, tz):
        name = source.label or source.url
        if isinstance(outcome, SourceError):
            reports[index] = SourceReport(name=name, kind=source.type, location=source.url, error=str(outcome))
            continue
        parsed, fetched_not_modified, seconds = outcome
        label = labels[index] = source.label or urlsplit(source.url).hostname or source.url
        articles[index] = [_article(item, label, tz) for item in parsed.items if item.published is not None]
        undated[index] = [item for item in parsed.items if item.published is None]
        note = parsed.note
        if parsed.skipped:
            skipped = f"{parsed.skipped} without a title or link skipped"
            note = f"{note}; {skipped}" if note else skipped
        reports[index] = SourceReport(name=name, kind=source.type, location=source.url, articles=len(parsed.items),
                                      not_modified=fetched_not_modified, note=note, seconds=seconds)

    # First sight of every article, dated or not: selection lets in an item the source showed only after the last
    # edition's cut-off, even when its own date is older (feeds that publish late).
    urls = [article.url for found in articles.values() for article in found]
    urls += [item.url for items in undated.values() for item in items]
    seen = store.first_seen(urls, now) if store is not None else dict.fromkeys(urls, now)
    for index, items in undated.items():
        articles[index].extend(
            _article(replace(item, published=seen[item.url]), labels[index], tz) for item in items)

    ordered_reports = tuple(report for index in sorted(reports)
                            for report in (reports[index], *extra_reports.get(index, ())))
    for report in ordered_reports:
        if report.ok:
            log.info("source %s", report.describe())
        else:
            log.warning("source %s", report.describe())
    # Keyed by the digest's name in schedule.yaml (found by identity unless the caller says it).
    key = digest_name or next((known for known, config in settings.digests.items() if config is digest), None)
    if store is not None and key is not None:
        store.record_source_outcomes(key, ordered_reports, now)
    return Collection(
        articles=tuple(article for index in sorted(articles) for article in articles[index]),
        reports=ordered_reports,
        first_seen=seen,
    )


def _bad_file(label: str, settings: Settings, problem: ContentError) -> SourceReport:
    path = Path(problem.path)
    try:
        shown = str(path.resolve().relative_to(settings.root.resolve()))
    except ValueError:
        shown = str(path)
    where = shown if problem.line is None else f"{shown}:{problem.line}"
    detail = f"field '{problem.field}': {problem.problem}" if problem.field else problem.problem
    return SourceReport(name=label, kind="files", location=where, error=detail)


def _fetch_and_parse(settings: Settings, web: list[tuple[int, WebSource]], store: Store | None, tz: tzinfo,
                     ) -> Iterator[tuple[int, WebSource, SourceError | tuple[Parsed, bool, float]]]:
    from digest.store import CachedResponse

    cached = [store.cached_response(source.url) if store is not None else None for _, source in web]
    requests = [
        FetchRequest(url=source.url, timeout=source.timeout, retries=source.retries, max_bytes=source.max_bytes,
                     etag=previous.etag if previous else None,
                     last_modified=previous.last_modified if previous else None)
        for (_, source), previous in zip(web, cached, strict=True)
    ]
    to_remember: list[CachedResponse] = []

    def read(position: int, fetched: Fetched) -> SourceError | tuple[Parsed, bool, float]:
        # Runs as each answer arrives, while slower sources are still on their way.
        source, previous = web[position][1], cached[position]
        # The source's budget covers fetching and reading: the parsers stop between items once it is spent.
        deadline = monotonic() + source.timeout - fetched.seconds
        body, final_url, content_type = fetched.body, fetched.final_url, fetched.content_type
        if fetched.not_modified:
            if previous is None:
                return SourceError("the server answered 304 Not Modified, but we have no earlier copy",
                                   url=source.url)
            body, final_url, content_type = previous.body, previous.final_url, previous.content_type
        try:
            parsed = _parse(source, body, url=final_url, content_type=content_type, tz=tz, deadline=deadline)
        except SourceError as err:
            return err
        except Exception as err:  # a parser bug on one odd page must not cost the whole edition
            log.exception("source %s: unexpected error while reading %s", source.url, final_url)
            return SourceError(f"unexpected error while reading it: {err!r}", url=source.url)
        if monotonic() > deadline:  # too late: the source is reported as failed, so its answer is not kept either
            return SourceError("ran out of time while reading it", url=source.url)
        if not fetched.not_modified and (fetched.etag or fetched.last_modified):
            # Remembered only once it parsed: validators of a broken body would make us keep the broken copy.
            to_remember.append(CachedResponse(
                url=source.url, final_url=final_url, etag=fetched.etag, last_modified=fetched.last_modified,
                content_type=content_type, body=body, fetched_at=datetime.now(UTC)))
        return parsed, fetched.not_modified, fetched.seconds

    if requests:
        warm_up()  # the parsers' process starts while the sources are on their way
    outcomes = fetch_all(requests, agent=user_agent(settings.public_url), then=read)
    if store is not None and to_remember:
        store.remember_responses(to_remember)
    for (index, source), outcome in zip(web, outcomes, strict=True):
        yield index, source, outcome


def _parse(source: WebSource, body: bytes, *, url: str, content_type: str | None, tz: tzinfo,
           deadline: float) -> Parsed:
    # In a child process of its own, killed at the deadline: a hostile body costs its own source and nothing else.
    kwargs: dict[str, object] = {"body": body, "url": url, "content_type": content_type, "tz": tz,
                                 "kicker": source.kicker, "deadline": deadline}
    if isinstance(source, PageSource):
        return run_isolated(parse_page, {**kwargs, "selectors": source.selectors}, deadline=deadline, url=url)
    return run_isolated(parse_feed, kwargs, deadline=deadline, url=url)


def _article(item: Item, label: str, tz: tzinfo) -> Article:
    assert item.published is not None
    # In the digest's zone: the e-mail prints the date, and 23:30 UTC is already tomorrow in Oslo.
    return Article(url=item.url, title=item.title, teaser=item.teaser, published=item.published.astimezone(tz),
                   source=label, kicker=item.kicker, image=item.image, image_alt=item.image_alt)
