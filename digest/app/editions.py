"""The edition as a stored thing: which edition a date means, its draft, and the state it is in.

An edition (digest × scheduled run) is worked out from the sources once, when something first acts on it for real
(the scheduled run, a test copy, an editor's change, a send), and stored as a draft that freezes its articles,
their order, the subject and the preheader. From then on the preview, test copies, approval, send, resume and
status all read that record; only an explicit refresh collects again. A preview of an edition nobody has acted on
yet is built fresh and shown as provisional.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time

from digest.config import DigestConfig, Settings
from digest.cron import digest_trigger, latest_run
from digest.errors import AllSourcesFailed
from digest.models import Article, Draft, DraftChange, Edition
from digest.render import preheader, subject_line
from digest.select import Exclusion, Selection, edition_key, select_explained
from digest.sources import Collection, SourceReport, collect
from digest.store import ApprovalRecord, Store

PROVISIONAL = "provisional"  # not stored: nothing has acted on it yet
DRAFT = "draft"
APPROVED = "approved"
HELD = "held"
EXPIRED = "expired"
SENDING = "sending"
SENT = "sent"
STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Which edition a date (or no date) means: its key, its day and the moment it covers up to."""

    day: date
    key: str
    until: datetime
    scheduled_for: datetime | None


def _first_run_on(digest: DigestConfig, day: date) -> datetime | None:
    start = datetime.combine(day, time.min, tzinfo=digest.timezone)
    fire = digest_trigger(digest).get_next_fire_time(None, start)
    if fire is None or fire.astimezone(digest.timezone).date() != day:
        return None
    return fire.astimezone(digest.timezone)


def edition_target(digest: DigestConfig, store: Store, name: str, as_of: date | datetime | None,
                   now: datetime) -> Target:
    """A moment means the edition of that moment; a date the edition of the scheduled run on that day (or, on a
    day without one, the whole day); nothing the scheduled run still within its grace and not yet sent, else the
    next scheduled run — the same edition whether the desk shows it or the scheduler sends it."""
    tz = digest.timezone
    if isinstance(as_of, datetime):
        local = as_of.replace(tzinfo=tz) if as_of.tzinfo is None else as_of.astimezone(tz)
        return Target(day=local.date(), key=edition_key(local.date()), until=local, scheduled_for=local)
    if isinstance(as_of, date):
        run = _first_run_on(digest, as_of)
        until = run if run is not None else datetime.combine(as_of, time.max, tzinfo=tz)
        return Target(day=as_of, key=edition_key(as_of), until=until, scheduled_for=run)
    trigger = digest_trigger(digest)
    latest = latest_run(trigger, now)
    if latest is not None and now - latest <= digest.schedule.misfire_grace:
        local = latest.astimezone(tz)
        if store.find_edition(name, edition_key(local.date())) is None:
            return Target(day=local.date(), key=edition_key(local.date()), until=local, scheduled_for=local)
    upcoming = trigger.get_next_fire_time(None, now)
    if upcoming is None:
        local = now.astimezone(tz)
        return Target(day=local.date(), key=edition_key(local.date()), until=local, scheduled_for=None)
    local = upcoming.astimezone(tz)
    return Target(day=local.date(), key=edition_key(local.date()), until=local, scheduled_for=local)


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """An edition with how it stands: the record it comes from, its state, and (when just collected) the sources'
    reports, what was left out and why it may be skipped."""

    edition: Edition
    state: str = PROVISIONAL
    draft: Draft | None = None
    approval: ApprovalRecord | None = None
    history: tuple[DraftChange, ...] = ()
    reports: tuple[SourceReport, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    skip_reason: str | None = None
    offered: tuple[Article, ...] | None = None  # every article the sources gave when collected now (for "what changed")

    @property
    def source_problems(self) -> list[str]:
        return [report.describe() for report in self.reports if not report.ok]

    @property
    def stored(self) -> bool:
        return self.state != PROVISIONAL


def with_frame(edition: Edition, digest: DigestConfig) -> Edition:
    """The edition with its subject and preheader worked out from its articles as they now stand."""
    if not edition.articles:
        return edition
    return replace(edition, subject=subject_line(edition, digest), preheader=preheader(edition))


def approval_state(approval: ApprovalRecord | None) -> str:
    if approval is None:
        return DRAFT
    return {"approved": APPROVED, "held": HELD, "expired": EXPIRED, "sent": APPROVED}.get(approval.state, DRAFT)


def sending_state(store: Store, edition_id: int, draft: Draft | None) -> str:
    pending = store.pending_count(edition_id)[0]
    refused = store.refused_count(edition_id)
    if not pending and not refused:
        return SENT
    if refused or (draft is not None and draft.stop_reason):
        return STOPPED
    return SENDING


def prepare(settings: Settings, store: Store, name: str, *, as_of: date | datetime | None, now: datetime,
            freeze: bool = False, made_by: str = "system") -> Prepared:
    """The edition that `as_of` means, from its stored record when there is one; else collected and selected now,
    and stored as a draft when `freeze` (an edition to be skipped is never stored).

    Raises AllSourcesFailed when no source gave anything: an edition must not go out just because the web was down.
    """
    digest = settings.digest(name)
    target = edition_target(digest, store, name, as_of, now)
    return prepare_target(settings, store, name, target, now=now, freeze=freeze, made_by=made_by)


def prepare_target(settings: Settings, store: Store, name: str, target: Target, *, now: datetime,
                   freeze: bool = False, made_by: str = "system") -> Prepared:
    stored = store.find_edition(name, target.key)
    draft = store.draft(name, target.key)
    approval = store.approval(name, target.key)
    history = tuple(store.draft_history(name, target.key)) if draft is not None else ()
    if stored is not None:
        edition = stored.edition if draft is None else replace(draft.edition, articles=stored.edition.articles,
                                                               sent=True)
        return Prepared(edition=edition, state=sending_state(store, stored.id, draft), draft=draft,
                        approval=approval, history=history)
    if draft is not None:
        return Prepared(edition=draft.edition, state=approval_state(approval), draft=draft, approval=approval,
                        history=history)
    fresh = collect_edition(settings, store, name, target, now=now)
    if not freeze or fresh.skip_reason is not None:
        return fresh
    made, _ = store.save_draft(
        Draft(edition=fresh.edition, revision=1, scheduled_for=target.scheduled_for, created_at=now,
              updated_at=now, collected_at=now),
        editor=made_by, detail=f"Utkast laget med {len(fresh.edition.articles)} artikler.")
    return replace(fresh, edition=made.edition, state=approval_state(approval), draft=made, approval=approval,
                   history=tuple(store.draft_history(name, target.key)))


def collect_edition(settings: Settings, store: Store, name: str, target: Target, *, now: datetime) -> Prepared:
    """Collect every source and select the edition for `target` anew (stores nothing but what collecting keeps)."""
    digest = settings.digest(name)
    collection = collect(settings, digest, store=store, now=now, digest_name=name)
    if collection.all_failed:
        raise AllSourcesFailed(name, [report.describe() for report in collection.failures])
    selection = _select(collection, store, digest, name, target, target.until)
    edition = with_frame(selection.edition, digest)
    skip_reason = None
    if not edition.articles:
        skip_reason = nothing_new_message(edition)
    elif selection.too_few:
        count = len(edition.articles)
        skip_reason = (f"Only {count} new article{'' if count == 1 else 's'} for '{name}' (min_articles is "
                       f"{digest.min_articles}); the edition is skipped, nothing to send.")
    return Prepared(edition=edition, reports=collection.reports, excluded=selection.excluded,
                    skip_reason=skip_reason, offered=collection.articles)


def _select(collection: Collection, store: Store, digest: DigestConfig, name: str, target: Target,
            until: datetime) -> Selection:
    return select_explained(
        collection,
        digest=name,
        day=target.day,
        until=until,
        previous_until=store.previous_until(name, until),
        max_articles=digest.max_articles,
        first_window_days=digest.first_window_days,
        already_sent=store.sent_articles(name, before=target.day),
        min_articles=digest.min_articles,
        first_seen=collection.first_seen,
        max_age_days=digest.max_age_days,
        previous_collected_at=store.previous_collected_at(name, target.day),
    )


def target_of_draft(digest: DigestConfig, draft: Draft) -> Target:
    """The edition a stored draft is for, as it was when made (for a refresh)."""
    edition = draft.edition
    until = draft.scheduled_for or datetime.combine(edition.date, time.max, tzinfo=digest.timezone)
    return Target(day=edition.date, key=edition.key, until=until, scheduled_for=draft.scheduled_for)


def nothing_new_message(edition: Edition) -> str:
    since = edition.since.astimezone(edition.until.tzinfo).strftime("%Y-%m-%d %H:%M")
    return f"No new articles for '{edition.digest}' since {since}; nothing to send."


def key_day(key: str) -> date | None:
    """The day an edition key names (keys are dates), or None for a key that is not one."""
    try:
        return date.fromisoformat(key)
    except ValueError:
        return None

