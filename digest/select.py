"""Which articles go into an edition: never sent before, new since the previous edition (published or first seen
after its cut-off), each story once, newest first, capped — and, for `--explain`, why each other article was left out.

First sight matters because feeds publish late: an item dated Friday that appears in the feed only after Monday's
edition was cut off is still news to the subscribers, so it goes into the next edition. The maximum age keeps that
rule from flooding an edition when a source with a long history is added: an item dated before the previous cut-off
comes in by first sight only while it is at most `max_age_days` older than the edition (its `until`, not the wall
clock, so a backdated edition such as the demo's judges ages as on its own day). The very first edition has no
previous cut-off: it reaches back `first_window_days`, and first sight plays no part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from digest.models import Article, Edition
from digest.sources.normalise import canonical_url, site_of

# Why an article was left out; the words `digest collect --explain` prints.
TOO_OLD = "too old"
SEEN_BEFORE = "seen before the previous edition"
NOT_YET = "not yet published"
ALREADY_SENT = "already sent"
DUPLICATE = "duplicate"
OVER_CAP = "over the cap"
OLD = TOO_OLD  # the name this reason had before first sight counted


@dataclass(frozen=True, kw_only=True)
class Exclusion:
    article: Article
    reason: str  # one of TOO_OLD, SEEN_BEFORE, NOT_YET, ALREADY_SENT, DUPLICATE, OVER_CAP
    detail: str  # a sentence for people


@dataclass(frozen=True, kw_only=True)
class Selection:
    edition: Edition
    excluded: tuple[Exclusion, ...]
    min_articles: int = 1

    @property
    def too_few(self) -> bool:
        """Fewer articles than `min_articles`: the edition should be skipped (an empty one always is)."""
        return len(self.edition.articles) < self.min_articles


def edition_key(day: date) -> str:
    """The idempotency key of an edition: its date. One edition per digest per day."""
    return day.isoformat()


def select_explained(
    articles: Iterable[Article],
    *,
    digest: str,
    day: date,
    until: datetime,
    previous_until: datetime | None,
    max_articles: int,
    first_window_days: int,
    already_sent: Iterable[Article] = (),
    min_articles: int = 1,
    first_seen: Mapping[str, datetime] | None = None,
    max_age_days: int = 14,
    previous_collected_at: datetime | None = None,
) -> Selection:
    """The edition's articles, and every article left out with the reason.

    An article is eligible when it was never sent, is not dated after `until`, and either was published after the
    previous edition's cut-off (`previous_until`) or was first seen after it (`first_seen`, by URL) while being at
    most `max_age_days` older than `until`. Without a previous edition, the window reaches back `first_window_days`.
    Without `first_seen`, only the publication date counts. `previous_collected_at` is when the previous edition's
    articles were chosen (its draft was made or refreshed), which may be before its cut-off: what was first seen
    after that moment was never on offer to it, so it counts as new here.

    An article sent in an earlier edition never returns (same canonical URL, or the same title from the same site).
    The same story from two sources appears once: the newest version stays.
    """
    since = previous_until if previous_until is not None else until - timedelta(days=first_window_days)
    oldest = until - timedelta(days=max_age_days)
    seen = first_seen or {}
    tz = until.tzinfo
    sent_urls = {_identity(article) for article in already_sent}
    sent_titles = {_title_key(article) for article in already_sent}
    excluded: list[Exclusion] = []
    candidates: list[Article] = []

    def leave_out(article: Article, reason: str, detail: str) -> None:
        excluded.append(Exclusion(article=article, reason=reason, detail=detail))

    for article in articles:
        first = seen.get(article.url)
        if _identity(article) in sent_urls or _title_key(article) in sent_titles:
            leave_out(article, ALREADY_SENT, "was in an earlier edition of this digest")
        elif article.published > until:
            leave_out(article, NOT_YET, f"published after this edition ({_when(until, tz)})")
        elif article.published > since:
            candidates.append(article)
        elif previous_until is None:
            leave_out(article, TOO_OLD, f"published before the first edition's window, which reaches back "
                                        f"first_window_days ({first_window_days}) to {_when(since, tz)}")
        elif article.published < oldest:
            leave_out(article, TOO_OLD, f"older than max_age_days ({max_age_days}): published before "
                                        f"{_when(oldest, tz)}")
        elif first is None or first <= min(previous_until, previous_collected_at or previous_until):
            cut_off = _when(previous_until, tz)
            leave_out(article, SEEN_BEFORE,
                      f"published before the previous edition's cut-off ({cut_off}) and never seen after it"
                      if first is None else
                      f"published and first seen ({_when(first, tz)}) before the previous edition's cut-off "
                      f"({cut_off}): it was on offer then")
        else:
            candidates.append(article)  # dated before the cut-off, but the source showed it only after it

    # Newest first. Equal times keep the sources' order (the sort is stable): undated items of one listing page,
    # all first seen at the same moment, stay in the page's own order, which is newest first too.
    newest_first = sorted(candidates, key=lambda a: a.published, reverse=True)
    kept: list[Article] = []
    by_url: dict[str, Article] = {}
    by_title: dict[tuple[str, str], Article] = {}
    for article in newest_first:
        twin = by_url.get(_identity(article)) or by_title.get(_title_key(article))
        if twin is not None:
            excluded.append(Exclusion(article=article, reason=DUPLICATE,
                                      detail=f"same story as {twin.url} from {twin.source}"))
            continue
        by_url[_identity(article)] = article
        by_title[_title_key(article)] = article
        kept.append(article)
    for article in kept[max_articles:]:
        excluded.append(Exclusion(article=article, reason=OVER_CAP,
                                  detail=f"beyond max_articles ({max_articles})"))

    return Selection(
        edition=Edition(
            digest=digest,
            key=edition_key(day),
            date=day,
            since=since,
            until=until,
            articles=tuple(kept[:max_articles]),
        ),
        excluded=tuple(excluded),
        min_articles=min_articles,
    )


def _identity(article: Article) -> str:
    return canonical_url(article.url) or article.url


def _title_key(article: Article) -> tuple[str, str]:
    return site_of(_identity(article)), re.sub(r"\s+", " ", article.title).strip().casefold()


def _when(moment: datetime, tz: tzinfo | None) -> str:
    """In the edition's own zone (the store hands back UTC), as `collect` prints times."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
