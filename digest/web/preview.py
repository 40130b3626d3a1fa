"""The desk's view of an edition: the stored draft (or, before anything acted on it, one built from the real
sources), filled with example or neutral values, checked, and compared with the last sent edition. Also the public
(archive) version of a sent edition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import jinja2
import lxml.html

from digest.app.editions import Prepared, prepare
from digest.changes import Changes, changes_since
from digest.checks import (
    Check,
    Links,
    check_alt_text,
    check_articles,
    check_contrast,
    check_headings,
    check_size,
    check_sources,
    check_unsubscribe,
    links_in,
)
from digest.config import DigestConfig, Settings
from digest.errors import DigestError
from digest.linkcheck import check_links
from digest.message import EXAMPLE_ADDRESS, build_template, example_values, fill, fill_text, recipient_for
from digest.models import Edition, RenderedEdition
from digest.render import render
from digest.sources.fetch import user_agent
from digest.store import Store

# How long a built preview is reused (the page and its two frames ask within a second) unless a file changed.
CACHE_SECONDS = 60.0


def _drop_separator(before: str | None, after: str | None) -> tuple[str | None, str | None]:
    """The footer joins links with " · "; with a link gone, one of its separators must go too."""
    if before and before.rstrip().endswith("·"):
        return before.rstrip()[:-1].rstrip() + " ", after
    if after and after.lstrip().startswith("·"):
        return before, " " + after.lstrip()[1:].lstrip()
    return before, after


def public_html(rendered: RenderedEdition) -> str:
    """The edition as anyone may see it at its archive address: no greeting by name, no address, and the personal
    links (unsubscribe, preferences) removed with their separators."""
    placeholders = rendered.placeholders
    personal_links = {placeholders.unsubscribe_url, placeholders.preferences_url}
    document = lxml.html.document_fromstring(rendered.html)
    for anchor in list(document.iter("a")):
        if (anchor.get("href") or "").strip() not in personal_links:
            continue
        previous = anchor.getprevious()
        parent = anchor.getparent()
        if previous is not None:
            previous.tail, anchor.tail = _drop_separator(previous.tail, anchor.tail)
        elif parent is not None:
            parent.text, anchor.tail = _drop_separator(parent.text, anchor.tail)
        anchor.drop_tree()
    out = lxml.html.tostring(document, encoding="unicode", doctype="<!doctype html>")
    # The footer says "because <address> subscribes"; on a public page it is "because you subscribe".
    return fill(out, placeholders, {"greeting": "Hei!", "email": "du", "unsubscribe_url": "", "preferences_url": ""})


def with_base_target(html: str) -> str:
    """Links in the framed preview open in a new tab instead of inside the little frame."""
    return html.replace("<head>", '<head><base target="_blank">', 1)


@dataclass(frozen=True, kw_only=True)
class DeskPreview:
    digest: str
    as_of: date | None
    version: int
    built_at: float
    prepared: Prepared | None = None
    rendered: RenderedEdition | None = None
    html: str | None = None     # with example personal values
    text: str | None = None
    error: str | None = None
    checks: tuple[Check, ...] = ()
    links_checked: bool = False
    changes: Changes | None = None

    @property
    def edition(self) -> Edition | None:
        return self.prepared.edition if self.prepared else None


LinkChecker = Callable[[Links], Check]


def link_checker(settings: Settings, *, timeout: float) -> LinkChecker:
    def run(links: Links) -> Check:
        return check_links(links, agent=user_agent(settings.public_url), timeout=timeout)

    return run


def build_preview(settings: Settings, store: Store, name: str, *, as_of: date | None, now: datetime, secret: bytes,
                  version: int = 0, links: LinkChecker | None = None) -> DeskPreview:
    """Prepare and render the edition as it would go out now (or the one already sent for that day), fill it with
    example values, run the checks (the link check only with `links`) and compare with the last edition."""
    digest = settings.digest(name)
    base = {"digest": name, "as_of": as_of, "version": version, "built_at": time.monotonic()}
    try:
        prepared = prepare(settings, store, name, as_of=as_of, now=now)
    except DigestError as err:
        return DeskPreview(**base, error=str(err), checks=(_sources_check(store, name, digest),))
    edition = prepared.edition
    previous = next(iter(store.sent_editions(name, before=edition.date, limit=1)), None)
    offered = None if prepared.offered is None else list(prepared.offered)
    changes = changes_since(previous.edition if previous else None, edition, offered)
    skip = None if prepared.stored else prepared.skip_reason
    articles_check = check_articles(edition, min_articles=digest.min_articles, skip_reason=skip)
    sources_check = _sources_check(store, name, digest)
    if not edition.articles:
        return DeskPreview(**base, prepared=prepared, checks=(articles_check, sources_check), changes=changes)
    try:
        rendered = render(settings, digest, edition)
        template = build_template(rendered, digest, now=now)
    except (DigestError, jinja2.TemplateError) as err:
        where = f" ({err.filename}:{err.lineno})" if isinstance(err, jinja2.TemplateSyntaxError) else ""
        return DeskPreview(**base, prepared=prepared, changes=changes, checks=(articles_check, sources_check),
                           error=f"E-posten kunne ikke lages: {err}{where}")
    recipient = recipient_for(settings, name, digest, template, secret, subscriber_id=None, email=EXAMPLE_ADDRESS,
                              name="")
    values = example_values(settings)
    html = fill(rendered.html, rendered.placeholders, values)
    checks = [
        articles_check,
        sources_check,
        check_size(html),
        check_alt_text(html),
        check_headings(html),
        check_contrast(html),
        check_unsubscribe(rendered, template.personalise(recipient)),
    ]
    if links is not None:
        checks.append(links(links_in(html, own_prefix=settings.public_url)))
    return DeskPreview(**base, prepared=prepared, rendered=rendered, html=html,
                       text=fill_text(rendered.text, rendered.placeholders, values), checks=tuple(checks),
                       links_checked=links is not None, changes=changes)


def _sources_check(store: Store, name: str, digest: DigestConfig) -> Check:
    # From the store, not from this preview's collection: a sent edition is not collected again, and `digest status`
    # reads the same rows.
    return check_sources(store.source_outcomes(name), tz=digest.timezone, locale=digest.locale)


@dataclass
class PreviewCache:
    """Built previews by (digest, day), reused while no watched file changed and for at most CACHE_SECONDS."""

    seconds: float = CACHE_SECONDS
    _entries: dict[tuple[str, date | None], DeskPreview] = field(default_factory=dict)
    _locks: dict[tuple[str, date | None], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str, as_of: date | None, version: int, *, need_links: bool) -> DeskPreview | None:
        entry = self._entries.get((name, as_of))
        if entry is None or entry.version != version or time.monotonic() - entry.built_at > self.seconds:
            return None
        if need_links and not entry.links_checked and entry.rendered is not None:
            return None
        return entry

    def lock(self, name: str, as_of: date | None) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((name, as_of), threading.Lock())

    def put(self, preview: DeskPreview) -> None:
        self._entries[(preview.digest, preview.as_of)] = preview

    def forget(self, name: str) -> None:
        for key in [key for key in self._entries if key[0] == name]:
            self._entries.pop(key, None)


@dataclass
class LinkResults:
    """The link check's verdicts by the set of addresses: a live edit that changes no link costs no new round."""

    checker: LinkChecker
    seconds: float = 300.0
    _results: dict[tuple[str, ...], tuple[float, Check]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, links: Links) -> Check:
        key = links.all
        with self._lock:
            found = self._results.get(key)
            if found is not None and time.monotonic() - found[0] <= self.seconds:
                return found[1]
        check = self.checker(links)
        with self._lock:
            self._results[key] = (time.monotonic(), check)
        return check
