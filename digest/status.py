"""What `digest status` shows per digest: next run, last edition and its counts, approvals, and each source as the
last collection found it (the same stored outcome `digest collect` printed and the desk checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from digest.app.editions import approval_state
from digest.config import DigestConfig, Settings
from digest.cron import format_duration, next_run
from digest.store import ApprovalRecord, Store, StoredEdition


@dataclass(frozen=True, kw_only=True)
class SourceHealth:
    source: str
    ok: bool | None  # None: no collection has reached it yet
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
    # The stored drafts no send has started yet (key, state, articles), and why the last edition is not out.
    drafts: tuple[tuple[str, str, int], ...] = ()
    refused: int = 0
    stop_reason: str | None = None

    def local(self, moment: datetime | None) -> str:
        return "—" if moment is None else format_moment(moment, self.timezone, self.locale)


def format_moment(moment: datetime, tz: ZoneInfo, locale: str = "nb_NO") -> str:
    """'mandag 6. april 2026 kl. 07:00 CEST': the digest's own time zone, in its language."""
    return format_datetime(moment, "EEEE d. MMMM y 'kl.' HH:mm z", tzinfo=tz, locale=locale)


def source_health(store: Store, digest: DigestConfig, name: str) -> list[SourceHealth]:
    """Each source as the digest's last collection found it (`digest collect`, a run, the desk all record it), in
    the collection's order; a source in schedule.yaml that no collection has reached yet says so."""
    when = "d. MMM y 'kl.' HH:mm"
    results = []
    reported = set()
    for outcome in store.source_outcomes(name):
        reported.add((outcome.kind, outcome.location))
        fetched = format_datetime(outcome.fetched_at, when, tzinfo=digest.timezone, locale=digest.locale)
        label = outcome.name if outcome.name == outcome.location else f"{outcome.name} ({outcome.location})"
        if outcome.error is not None:
            detail = f"failed: {outcome.error} (last fetched {fetched})"
        else:
            detail = f"{outcome.articles} article{'' if outcome.articles == 1 else 's'}"
            detail += f", {outcome.note}" if outcome.note else ""
            detail += f" (last fetched {fetched})"
        results.append(SourceHealth(source=label, ok=outcome.ok, detail=detail))
    for source in digest.sources:
        location = str(getattr(source, "url", None) or getattr(source, "path", ""))
        if (source.type, location) not in reported:
            results.append(SourceHealth(source=source.label or location, ok=None,
                                        detail=f"not fetched yet (digest collect {name} reads it)"))
    return results


def _stop_reason(store: Store, name: str, stored: StoredEdition | None) -> str | None:
    if stored is None:
        return None
    draft = store.draft(name, stored.edition.key)
    return None if draft is None else draft.stop_reason


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
            sources=tuple(source_health(store, digest, name)),
            drafts=tuple((draft.edition.key, approval_state(store.approval(name, draft.edition.key)),
                          len(draft.edition.articles)) for draft in store.unsent_drafts(name)),
            refused=0 if stored is None else store.refused_count(stored.id),
            stop_reason=_stop_reason(store, name, stored),
        ))
    return statuses
