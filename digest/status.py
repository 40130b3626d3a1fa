"""What `digest status` shows per digest: next run, last edition and its counts, approvals, health of the sources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from digest.config import DigestConfig, Settings
from digest.errors import DigestError
from digest.scheduler import format_duration, next_run
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


# How each kind of source reports its health. A kind without an entry (yet) is shown as unknown, not as failing.
HEALTH_CHECKS: dict[str, Callable[[Settings, DigestConfig, object], SourceHealth]] = {"files": _files_health}


def source_health(settings: Settings, digest: DigestConfig) -> list[SourceHealth]:
    """Each source as a collection would find it now."""
    results = []
    for source in digest.sources:
        check = HEALTH_CHECKS.get(source.type)
        if check is None:
            label = getattr(source, "label", None) or getattr(source, "url", None) or source.type
            results.append(SourceHealth(source=str(label), ok=True, detail="no health check for this kind yet"))
        else:
            results.append(check(settings, digest, source))
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
            sources=tuple(source_health(settings, digest)),
        ))
    return statuses
