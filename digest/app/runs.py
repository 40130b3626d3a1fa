"""Scheduled runs as rules: what is due, the approval gate, missed runs, resuming, and what each run means.

The scheduler (APScheduler), `digest run --once` and `digest approve` all call these; none holds a rule of its own.
Each function returns Outcomes (digest.app.outcome), which say the exit code and the log level too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from digest.app import outcome as kinds
from digest.app.editions import prepare
from digest.app.outcome import Outcome, outcome_of
from digest.app.sending import send_edition, send_test
from digest.config import DigestConfig, Settings
from digest.consent import mask
from digest.cron import digest_trigger, format_duration, latest_run, local_iso
from digest.errors import AllSourcesFailed, ContentError, DigestError, NotFound
from digest.events import log_event
from digest.metrics import DELIVERIES, EDITIONS, SOURCE_FAILURES
from digest.models import DraftChange, SendReport
from digest.select import edition_key
from digest.store import ApprovalRecord, Store
from digest.transports import Transport, transport_from_url

# -- one run ---------------------------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What a run needs: settings, store, the clock, and the flag SIGTERM raises."""

    settings: Settings
    store: Store
    stopping: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = _utcnow
    # Editions this process is sending right now, so the minute tick does not "resume" one still in progress.
    sending: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def sending_edition(self, name: str, key: str) -> Iterator[None]:
        with self._lock:
            self.sending.add((name, key))
        try:
            yield
        finally:
            with self._lock:
                self.sending.discard((name, key))

    def transport(self) -> Transport:
        return transport_from_url(self.settings.transport, root=self.settings.root)


def _key(digest: DigestConfig, scheduled_for: datetime) -> str:
    return edition_key(scheduled_for.astimezone(digest.timezone).date())


def _count(name: str, outcome: Outcome) -> Outcome:
    if outcome.kind not in (kinds.UP_TO_DATE, kinds.BUSY):
        EDITIONS.labels(name, outcome.kind).inc()
    return outcome


def _plain(kind: str, reason: str, *, code: int = 0, level: int = logging.INFO) -> Outcome:
    return Outcome(kind=kind, exit_code=code, reason=reason, level=level)


def _waiting_outcome(name: str, key: str, kind: str) -> Outcome:
    if kind == kinds.EXPIRED:
        return _plain(kind, f"{name} {key} expired without approval and will not be sent.", code=1,
                      level=logging.WARNING)
    if kind == kinds.NOTHING_NEW:
        return _plain(kind, f"No new articles for {name!r}; nothing to send.")
    return _plain(kind, f"{name} {key} waits for approval: `digest approve {name} {key}` sends it.")


def run_edition(rt: Runtime, name: str, scheduled_for: datetime) -> Outcome:
    """The scheduled run of `name` at `scheduled_for`: through the approval gate if the digest has one, then send.

    Its kind is one of sent, partial, stopped, interrupted, up_to_date, busy, nothing_new, awaiting_approval,
    expired, failed.
    """
    digest = rt.settings.digest(name)
    key = _key(digest, scheduled_for)
    try:
        if digest.approval is not None and rt.store.find_edition(name, key) is None:
            waiting = _approval_gate(rt, name, key, scheduled_for)
            if waiting is not None:
                return _count(name, _waiting_outcome(name, key, waiting))
        return _send(rt, name, key, as_of=scheduled_for)
    except DigestError as err:
        return _failed(rt, name, key, err)


def _failed(rt: Runtime, name: str, key: str, err: DigestError) -> Outcome:
    log_event("edition_failed", logging.ERROR, digest=name, edition=key, error=str(err))
    digest = rt.settings.digest(name)
    if isinstance(err, ContentError):
        SOURCE_FAILURES.labels(name, _content_source(rt.settings, digest, err.path)).inc()
    elif isinstance(err, AllSourcesFailed):
        for problem in err.problems:
            SOURCE_FAILURES.labels(name, _reported_source(digest, problem)).inc()
    return _count(name, _plain(kinds.FAILED, f"{name} {key} failed: {err}", code=1, level=logging.ERROR))


def _content_source(settings: Settings, digest: DigestConfig, path: str) -> str:
    for source in digest.sources:
        if source.type == "files" and Path(path).resolve().is_relative_to(settings.resolve(source.path).resolve()):
            return source.label or source.path
    return "unknown"


def _reported_source(digest: DigestConfig, problem: str) -> str:
    """Which configured source a collection problem ("feed <name> (<url>): failed: …") is about."""
    for source in digest.sources:
        name = source.label or getattr(source, "url", None) or getattr(source, "path", "")
        if problem.startswith(f"{source.type} {name}"):
            return name
    return "unknown"


def _send(rt: Runtime, name: str, key: str, *, as_of: date | datetime) -> Outcome:
    with rt.sending_edition(name, key):
        report = send_edition(rt.settings, rt.store, rt.transport(), name, as_of=as_of, now=rt.clock(),
                              stop=rt.stopping.is_set)
    for state in ("sent", "deferred", "failed"):
        if getattr(report, state):
            DELIVERIES.labels(name, state).inc(getattr(report, state))
    outcome = outcome_of(report)
    if outcome.kind == kinds.NOTHING_NEW:
        log_event("nothing_new", digest=name, edition=report.edition_key)
        _settle_approval(rt, name, report.edition_key)
        return _count(name, outcome)
    for problem in report.source_problems:
        # The edition went out without this source; ops should hear of it.
        log_event("source_failed", logging.WARNING, digest=name, edition=report.edition_key, problem=problem)
        SOURCE_FAILURES.labels(name, _reported_source(rt.settings.digest(name), problem)).inc()
    for problem in report.problems[:20]:
        log_event("delivery_problem", logging.WARNING, digest=name, edition=report.edition_key, problem=problem)
    for line in report.guards:  # digest/guards.py: insecure or clipped sends; refused when sending.require says so
        log_event("send_guard", logging.ERROR if report.guard_refused else logging.WARNING, digest=name,
                  edition=report.edition_key, problem=line)
    event = {kinds.REFUSED: "edition_refused", kinds.BUSY: "edition_busy", kinds.INTERRUPTED: "edition_interrupted",
             kinds.UP_TO_DATE: "edition_up_to_date", kinds.SENT: "edition_sent", kinds.PARTIAL: "edition_incomplete",
             kinds.STOPPED: "edition_stopped"}[outcome.kind]
    fields = {"digest": name, "edition": report.edition_key} if outcome.kind == kinds.BUSY else _report_fields(
        rt, report)
    log_event(event, outcome.level, **fields, reason=outcome.reason)
    if outcome.kind in (kinds.SENT, kinds.UP_TO_DATE):
        _settle_approval(rt, name, report.edition_key)
    return _count(name, outcome)


def _report_fields(rt: Runtime, report: SendReport) -> dict[str, Any]:
    fields: dict[str, Any] = {"digest": report.digest, "edition": report.edition_key, "articles": report.articles,
                              "sent": report.sent, "deferred": report.deferred, "failed": report.failed}
    stored = rt.store.find_edition(report.digest, report.edition_key)
    if stored is not None:
        counts = rt.store.delivery_counts(stored.id)
        fields["total_sent"] = counts.get("sent", 0)
        fields["still_queued"] = counts.get("queued", 0) + counts.get("sending", 0)
    return fields


def _settle_approval(rt: Runtime, name: str, key: str) -> None:
    rt.store.decide_approval(name, key, to="sent", allowed_from=("approved",))


def missed_run(rt: Runtime, name: str, scheduled_for: datetime, late: timedelta) -> Outcome:
    """A run later than misfire_grace: skip it, and say so once."""
    digest = rt.settings.digest(name)
    key = _key(digest, scheduled_for)
    done = _plain(kinds.UP_TO_DATE, f"{name} {key}: nothing due.")
    if rt.store.find_edition(name, key) is not None or rt.store.approval(name, key) is not None:
        return done  # another process (or a manual send) did it in time
    if not rt.store.record_missed_run(name, scheduled_for, late):
        return done
    log_event("run_missed", logging.WARNING, digest=name, edition=key,
              scheduled_for=local_iso(digest, scheduled_for), late_by=format_duration(late),
              misfire_grace=format_duration(digest.schedule.misfire_grace), note="skipped; not sent late")
    return _count(name, _plain(kinds.MISSED, f"{name} {key} was due {format_duration(late)} ago, beyond "
                                             "misfire_grace; skipped, not sent late.", code=1,
                               level=logging.WARNING))




# -- the approval gate -----------------------------------------------------------------------------------------------


def _approval_gate(rt: Runtime, name: str, key: str, scheduled_for: datetime) -> str | None:
    """None when the edition may go; else why it waits. The first run builds it and sends editors the preview."""
    digest = rt.settings.digest(name)
    assert digest.approval is not None
    record = rt.store.approval(name, key)
    if record is None:
        prepared = prepare(rt.settings, rt.store, name, as_of=scheduled_for, now=rt.clock(), freeze=True)
        edition = prepared.edition
        if prepared.skip_reason is not None and not prepared.stored:
            log_event("nothing_new", digest=name, edition=key)
            return kinds.NOTHING_NEW
        auto_after = digest.approval.auto_after
        record, created = rt.store.request_approval(
            name, key, scheduled_for=scheduled_for, auto_at=None if auto_after is None else scheduled_for + auto_after)
        if created:
            for older in rt.store.approvals(name, states=("pending", "held")):
                if older.key != key and rt.store.decide_approval(name, older.key, to="expired",
                                                                 allowed_from=("pending", "held")):
                    log_event("approval_expired", logging.WARNING, digest=name, edition=older.key,
                              reason=f"superseded by {key}")
            _send_previews(rt, name, scheduled_for)
            log_event("approval_requested", digest=name, edition=key, articles=len(edition.articles),
                      editors=len(digest.editors), auto_at=local_iso(digest, record.auto_at) or "never",
                      next_step=f"digest approve {name} {key}")
    return _gate(rt, record)


def _gate(rt: Runtime, record: ApprovalRecord) -> str | None:
    digest = rt.settings.digest(record.digest)
    if record.state == "approved":
        return None
    if record.state == "pending" and record.auto_at is not None and rt.clock() >= record.auto_at:
        late = rt.clock() - record.auto_at
        if late > digest.schedule.misfire_grace:
            if rt.store.decide_approval(record.digest, record.key, to="expired", allowed_from=("pending",)):
                log_event("approval_expired", logging.WARNING, digest=record.digest, edition=record.key,
                          reason=f"auto_after passed {format_duration(late)} ago, beyond misfire_grace")
            return "expired"
        if rt.store.decide_approval(record.digest, record.key, to="approved", allowed_from=("pending",), by="auto"):
            log_event("approval_auto", digest=record.digest, edition=record.key,
                      note="no editor held it within auto_after")
            return None
        fresh = rt.store.approval(record.digest, record.key)  # an editor decided at the same moment
        return None if fresh is not None and fresh.state == "approved" else "awaiting_approval"
    return "expired" if record.state == "expired" else "awaiting_approval"


def _send_previews(rt: Runtime, name: str, scheduled_for: datetime) -> None:
    digest = rt.settings.digest(name)
    transport = rt.transport()
    for editor in digest.editors:
        try:
            send_test(rt.settings, rt.store, transport, name, as_of=scheduled_for, now=rt.clock(), to=editor)
        except DigestError as err:
            log_event("preview_failed", logging.ERROR, digest=name, editor=mask(editor), error=str(err))
        else:
            log_event("preview_sent", digest=name, editor=mask(editor))


def release_due(rt: Runtime, name: str) -> list[Outcome]:
    """Send approved editions, and pending ones whose auto_after has passed (unless held)."""
    outcomes = []
    for record in rt.store.approvals(name, states=("pending", "approved")):
        if rt.stopping.is_set():
            break
        if record.state == "pending" and (record.auto_at is None or rt.clock() < record.auto_at):
            continue
        try:
            waiting = _gate(rt, record)
            outcomes.append(_count(name, _waiting_outcome(name, record.key, waiting)) if waiting else
                            _send(rt, name, record.key, as_of=record.scheduled_for))
        except DigestError as err:
            outcomes.append(_failed(rt, name, record.key, err))
    return outcomes


def approve(rt: Runtime, name: str, key: str | None, *, by: str = "editor") -> tuple[ApprovalRecord, Outcome]:
    """An editor releases the edition (the only one waiting, or `key`) and it is sent now. Returns the outcome."""
    record = _waiting(rt, name, key, states=("pending", "held"))
    if not rt.store.decide_approval(name, record.key, to="approved", allowed_from=("pending", "held"), by=by):
        raise NotFound(f"edition {record.key} of {name!r} is no longer waiting for approval")
    _note(rt, name, record.key, by, "approved", "Godkjent for utsending.")
    log_event("approval_given", digest=name, edition=record.key)
    return record, _send(rt, name, record.key, as_of=record.scheduled_for)


def hold(rt: Runtime, name: str, key: str | None = None, *, by: str = "editor") -> ApprovalRecord:
    """Stop auto_after from sending the waiting edition; `digest approve` still can."""
    record = _waiting(rt, name, key, states=("pending",))
    if not rt.store.decide_approval(name, record.key, to="held", allowed_from=("pending",), by=by):
        raise NotFound(f"edition {record.key} of {name!r} is no longer waiting for approval")
    _note(rt, name, record.key, by, "held", "Holdt tilbake.")
    log_event("approval_held", digest=name, edition=record.key)
    return record


def _note(rt: Runtime, name: str, key: str, by: str, action: str, detail: str) -> None:
    """An approval or hold in the draft's history (editions approved before drafts existed have none)."""
    draft = rt.store.draft(name, key)
    if draft is not None:
        rt.store.record_draft_event(name, key, DraftChange(revision=draft.revision, at=rt.clock(), editor=by,
                                                           action=action, detail=detail))


def _waiting(rt: Runtime, name: str, key: str | None, *, states: tuple[str, ...]) -> ApprovalRecord:
    rt.settings.digest(name)  # an unknown digest is a config error naming the known ones
    records = [r for r in rt.store.approvals(name, states=states) if key is None or r.key == key]
    if records:
        return records[-1]
    if key is None:
        raise NotFound(f"no edition of {name!r} is waiting for approval")
    existing = rt.store.approval(name, key)
    state = f"is {existing.state}" if existing is not None else "was never held for approval"
    raise NotFound(f"edition {key} of {name!r} {state}; nothing to do")


# -- what is due now (`digest run --once`, and the scheduler's minute ticks) ----------------------------------------


def resume_unfinished(rt: Runtime, name: str) -> list[Outcome]:
    """Finish editions that a stop or a crash cut off, if they started within misfire_grace."""
    digest = rt.settings.digest(name)
    outcomes = []
    for stored in rt.store.unfinished_editions(name, started_after=rt.clock() - digest.schedule.misfire_grace):
        if rt.stopping.is_set():
            break
        if (name, stored.edition.key) in rt.sending:
            continue
        log_event("edition_resumed", digest=name, edition=stored.edition.key)
        try:
            outcomes.append(_send(rt, name, stored.edition.key, as_of=stored.edition.date))
        except DigestError as err:
            outcomes.append(_failed(rt, name, stored.edition.key, err))
    return outcomes


def run_due(rt: Runtime) -> list[Outcome]:
    """Everything due now, without a scheduler: the latest scheduled run of each digest (if within its grace),
    released approvals, and editions left unfinished. Safe to run every few minutes from cron."""
    outcomes: list[Outcome] = []
    for name, digest in rt.settings.digests.items():
        if rt.stopping.is_set():
            break
        now = rt.clock()
        scheduled = latest_run(digest_trigger(digest), now)
        if scheduled is not None:
            late = now - scheduled
            if late <= digest.schedule.misfire_grace:
                outcomes.append(run_edition(rt, name, scheduled))
            else:
                outcomes.append(missed_run(rt, name, scheduled, late))
        outcomes += release_due(rt, name)
        outcomes += resume_unfinished(rt, name)
    return outcomes

