"""What `digest status` shows per digest: next run, last edition and its counts, approvals, health of the sources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from digest.config import DigestConfig, Settings
from digest.cron import format_duration, next_run
from digest.errors import DigestError
from digest.sources.files import load_articles
from digest.store import ApprovalRecord, Store


@dataclass(frozen=True, kw_only=True)
class SourceHealth:
    source: str
    ok: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class DigestStatus:
    name: str
    timezone: ZoneInfo
    locale: str
    cron: str
    misfire_grace: str
    next_run: datetime | None
    last_edition: str | None
    counts: dict[str, int]
    approvals: tuple[ApprovalRecord, ...]
    last_missed: datetime | None
    sources: tuple[SourceHealth, ...]

    def local(self, moment: datetime | None) -> str:
        return "—" if moment is None else format_moment(moment, self.timezone, self.locale)


def format_moment(moment: datetime, tz: ZoneInfo, locale: str = "nb_NO") -> str:
    """'mandag 6. april 2026 kl. 07:00 CEST': the digest's own time zone, in its language."""
    return format_datetime(moment, "EEEE d. MMMM y 'kl.' HH:mm z", tzinfo=tz, locale=locale)


def _files_health(settings: Settings, digest: DigestConfig, source: object) -> SourceHealth:
    path = getattr(source, "path", "")
    label = getattr(source, "label", None) or path
    try:
        articles = load_articles(settings.resolve(path), label=label)
    except DigestError as err:
        return SourceHealth(source=label, ok=False, detail=str(err))
    if not articles:
        return SourceHealth(source=label, ok=False, detail="no articles")
    newest = max(a.published for a in articles)
    return SourceHealth(source=label, ok=True, detail=f"{len(articles)} articles, newest "
                        f"{format_datetime(newest, 'd. MMM y', tzinfo=digest.timezone, locale=digest.locale)}")


def _web_health(store: Store, digest: DigestConfig, source: object) -> SourceHealth:
    url = str(getattr(source, "url", ""))
    label = getattr(source, "label", None) or url
    cached = store.cached_response(url)
    if cached is None:
        return SourceHealth(source=label, ok=True, detail="not fetched yet")
    fetched = format_datetime(cached.fetched_at, "d. MMM y 'kl.' HH:mm", tzinfo=digest.timezone, locale=digest.locale)
    return SourceHealth(source=label, ok=True, detail=f"last fetched {fetched}")


def source_health(settings: Settings, store: Store, digest: DigestConfig) -> list[SourceHealth]:
    """Content folders as a collection would find them now; web sources by their last successful fetch (failures
    are logged as source_failed and counted in digest_source_failures_total)."""
    results = []
    for source in digest.sources:
        if source.type == "files":
            results.append(_files_health(settings, digest, source))
        else:
            results.append(_web_health(store, digest, source))
    return results


def digest_status(settings: Settings, store: Store, now: datetime) -> list[DigestStatus]:
    statuses = []
    for name, digest in settings.digests.items():
        stored = store.last_edition(name)
        statuses.append(DigestStatus(
            name=name,
            timezone=digest.timezone,
            locale=digest.locale,
            cron=digest.schedule.cron,
            misfire_grace=format_duration(digest.schedule.misfire_grace),
            next_run=next_run(digest, now),
            last_edition=None if stored is None else stored.edition.key,
            counts={} if stored is None else store.delivery_counts(stored.id),
            approvals=tuple(store.approvals(name, states=("pending", "held", "approved"))),
            last_missed=store.last_missed_run(name),
            sources=tuple(source_health(settings, store, digest)),
        ))
    return statuses
