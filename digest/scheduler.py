"""`digest run`: the digests of schedule.yaml on their cron schedules, safe to restart. All of APScheduler is here.

Each digest is one APScheduler 3 job with a cron trigger in its own time zone, kept in a job store in the state
database, so a restart remembers when the next run is due and notices runs it missed while it was down. The store
makes the rest safe: the edition key (the date of the scheduled run) is unique, and each delivery is claimed
atomically, so a second scheduler, a cron-driven `digest run --once` or a manual `digest send` never send twice.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.config import DigestConfig, Settings
from digest.consent import mask
from digest.errors import AllSourcesFailed, ContentError, DigestError, NotFound
from digest.events import log_event
from digest.metrics import DELIVERIES, EDITIONS, SOURCE_FAILURES
from digest.models import SendReport
from digest.pipeline import prepare_edition, send_edition, send_test
from digest.select import edition_key
from digest.store import ApprovalRecord, Store
from digest.transports import Transport, transport_from_url

JOB_TABLE = "apscheduler_jobs"
HOUSEKEEPING_SECONDS = 60.0

# -- cron expressions ------------------------------------------------------------------------------------------------

# Crontab numbers weekdays from Sunday (0 and 7), APScheduler 3 from Monday (0). Translating every weekday to its
# name keeps "0 7 * * 1" meaning Monday, as any crontab reader expects.
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str, *, range_end: bool) -> int:
    text = text.strip().lower()
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text in CRON_DAYS:
        # "mon-sun": a range may end on Sunday, which is 7 there.
        return 7 if range_end and text == "sun" else CRON_DAYS.index(text)
    raise ValueError(f"{text!r} is not a weekday (0-7 or sun-sat)")


def crontab_weekdays(field: str) -> str:
    """The weekday field of a crontab line as APScheduler day names, e.g. '1-5' → 'mon,tue,wed,thu,fri'."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        part, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{item!r}: the step after '/' must be a positive number")
        step = int(step_text) if slash else 1
        if part == "*":
            first, last = 0, 6
        elif "-" in part:
            start, _, end = part.partition("-")
            first, last = _cron_day(start, range_end=False), _cron_day(end, range_end=True)
        else:
            first = last = _cron_day(part, range_end=False)
            if slash:
                last = 6
        if first > last:
            raise ValueError(f"{item!r}: the range runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(CRON_DAYS[day] for day in sorted(days, key=lambda day: (day - 1) % 7))


class CronSchedule(CronTrigger):
    """A cron trigger that fires once, not twice, when the clocks go back and a wall-clock time happens twice.

    APScheduler 3.11 fires 02:30 at 02:30+02:00 and again at 02:30+01:00 on the last Sunday of October, and given
    the second as the previous fire time it returns that same time again, for ever. Here the search always starts
    from an instant in UTC (no fold to lose), and a time whose wall clock repeats the previous one is skipped.
    In the gap of the spring change it fires an hour late, at 03:30, which is what cron does too.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            # Like APScheduler: from just after the previous run, so runs missed meanwhile are found and coalesced.
            start = min(start, _after(previous_fire_time))
        fire = super().get_next_fire_time(None, start)
        if fire is not None and previous_fire_time is not None and (
                fire <= previous_fire_time or _wall(fire, self.timezone) == _wall(previous_fire_time, self.timezone)):
            fire = super().get_next_fire_time(None, _after(fire))
        return fire


def _after(moment: datetime) -> datetime:
    # In UTC: adding to a local time in the repeated hour would drop its fold and land an hour earlier.
    return moment.astimezone(UTC) + timedelta(microseconds=1)


def _wall(moment: datetime, tz: Any) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def cron_trigger(expression: str, timezone: str | ZoneInfo) -> CronSchedule:
    """A trigger for a five-field crontab expression in `timezone`; ValueError says what is wrong with it."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} is not a cron expression of five fields (minute hour day month weekday)")
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    try:
        fields[4] = crontab_weekdays(fields[4])
        trigger = CronSchedule.from_crontab(" ".join(fields), timezone=tz)
    except ValueError as err:
        raise ValueError(f"{expression!r} is not a valid cron expression: {err}") from None
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(f"{expression!r} never fires (e.g. 30 February)")
    return trigger


def digest_trigger(digest: DigestConfig) -> CronSchedule:
    return cron_trigger(digest.schedule.cron, digest.timezone)


def next_run(digest: DigestConfig, now: datetime) -> datetime | None:
    """When the digest is due next, in its own time zone."""
    fire = digest_trigger(digest).get_next_fire_time(None, now)
    return None if fire is None else fire.astimezone(digest.timezone)


def latest_run(trigger: CronTrigger, at: datetime, *, horizon: timedelta = timedelta(days=400)) -> datetime | None:
    """The latest time the trigger fired at or before `at` (cron triggers only look forward, so search back)."""
    window = timedelta(minutes=1)
    while window <= horizon:
        fire = trigger.get_next_fire_time(None, at - window)
        if fire is not None and fire <= at:
            while True:
                later = trigger.get_next_fire_time(fire, _after(fire))
                if later is None or later > at:
                    return fire
                fire = later
        window *= 2
    return None


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


def _local(digest: DigestConfig, moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(digest.timezone).isoformat(timespec="minutes")


def _count(name: str, outcome: str) -> str:
    if outcome != "up_to_date":
        EDITIONS.labels(name, outcome).inc()
    return outcome


def run_edition(rt: Runtime, name: str, scheduled_for: datetime) -> str:
    """The scheduled run of `name` at `scheduled_for`: through the approval gate if the digest has one, then send.

    Returns the outcome (sent, interrupted, up_to_date, nothing_new, awaiting_approval, expired, failed).
    """
    digest = rt.settings.digest(name)
    key = _key(digest, scheduled_for)
    try:
        if digest.approval is not None and rt.store.find_edition(name, key) is None:
            waiting = _approval_gate(rt, name, key, scheduled_for)
            if waiting is not None:
                return _count(name, waiting)
        return _send(rt, name, key, as_of=scheduled_for)
    except DigestError as err:
        return _failed(rt, name, key, err)


def _failed(rt: Runtime, name: str, key: str, err: DigestError) -> str:
    log_event("edition_failed", logging.ERROR, digest=name, edition=key, error=str(err))
    digest = rt.settings.digest(name)
    if isinstance(err, ContentError):
        SOURCE_FAILURES.labels(name, _content_source(rt.settings, digest, err.path)).inc()
    elif isinstance(err, AllSourcesFailed):
        for problem in err.problems:
            SOURCE_FAILURES.labels(name, _reported_source(digest, problem)).inc()
    return _count(name, "failed")


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


def _send(rt: Runtime, name: str, key: str, *, as_of: date | datetime) -> str:
    with rt.sending_edition(name, key):
        report = send_edition(rt.settings, rt.store, rt.transport(), name, as_of=as_of, now=rt.clock(),
                              stop=rt.stopping.is_set)
    for state in ("sent", "deferred", "failed"):
        if getattr(report, state):
            DELIVERIES.labels(name, state).inc(getattr(report, state))
    if not report.articles:
        log_event("nothing_new", digest=name, edition=report.edition_key)
        _settle_approval(rt, name, report.edition_key)
        return _count(name, "nothing_new")
    for problem in report.source_problems:
        # The edition went out without this source; ops should hear of it.
        log_event("source_failed", logging.WARNING, digest=name, edition=report.edition_key, problem=problem)
        SOURCE_FAILURES.labels(name, _reported_source(rt.settings.digest(name), problem)).inc()
    for problem in report.problems[:20]:
        log_event("delivery_problem", logging.WARNING, digest=name, edition=report.edition_key, problem=problem)
    for line in report.guards:  # digest/guards.py: insecure or clipped sends; refused when sending.require says so
        log_event("send_guard", logging.ERROR if report.refused else logging.WARNING, digest=name,
                  edition=report.edition_key, problem=line)
    if report.refused:
        return _count(name, "refused")
    if report.busy:
        log_event("edition_busy", digest=name, edition=report.edition_key,
                  note="another process is sending this edition; left to it")
        return "up_to_date"
    if report.interrupted:
        log_event("edition_interrupted", logging.WARNING, **_report_fields(rt, report),
                  note="stopped on request; the rest stay queued for the next start")
        return _count(name, "interrupted")
    if not (report.sent or report.deferred or report.failed):
        log_event("edition_up_to_date", **_report_fields(rt, report))
        _settle_approval(rt, name, report.edition_key)
        return "up_to_date"
    log_event("edition_sent", **_report_fields(rt, report))
    _settle_approval(rt, name, report.edition_key)
    return _count(name, "sent")


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


def missed_run(rt: Runtime, name: str, scheduled_for: datetime, late: timedelta) -> str:
    """A run later than misfire_grace: skip it, and say so once."""
    digest = rt.settings.digest(name)
    key = _key(digest, scheduled_for)
    if rt.store.find_edition(name, key) is not None or rt.store.approval(name, key) is not None:
        return "up_to_date"  # another process (or a manual send) did it in time
    if not rt.store.record_missed_run(name, scheduled_for, late):
        return "up_to_date"
    log_event("run_missed", logging.WARNING, digest=name, edition=key,
              scheduled_for=_local(digest, scheduled_for), late_by=format_duration(late),
              misfire_grace=format_duration(digest.schedule.misfire_grace), note="skipped; not sent late")
    return _count(name, "missed")


def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text or f"{int(value.total_seconds())}s"


# -- the approval gate -----------------------------------------------------------------------------------------------


def _approval_gate(rt: Runtime, name: str, key: str, scheduled_for: datetime) -> str | None:
    """None when the edition may go; else why it waits. The first run builds it and sends editors the preview."""
    digest = rt.settings.digest(name)
    assert digest.approval is not None
    record = rt.store.approval(name, key)
    if record is None:
        edition = prepare_edition(rt.settings, rt.store, name, as_of=scheduled_for, now=rt.clock())
        if not edition.articles:
            log_event("nothing_new", digest=name, edition=key)
            return "nothing_new"
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
                      editors=len(digest.editors), auto_at=_local(digest, record.auto_at) or "never",
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


def release_due(rt: Runtime, name: str) -> list[str]:
    """Send approved editions, and pending ones whose auto_after has passed (unless held)."""
    outcomes = []
    for record in rt.store.approvals(name, states=("pending", "approved")):
        if rt.stopping.is_set():
            break
        if record.state == "pending" and (record.auto_at is None or rt.clock() < record.auto_at):
            continue
        try:
            waiting = _gate(rt, record)
            outcomes.append(_count(name, waiting) if waiting else _send(rt, name, record.key,
                                                                         as_of=record.scheduled_for))
        except DigestError as err:
            outcomes.append(_failed(rt, name, record.key, err))
    return outcomes


def approve(rt: Runtime, name: str, key: str | None) -> tuple[ApprovalRecord, str]:
    """An editor releases the edition (the only one waiting, or `key`) and it is sent now. Returns the outcome."""
    record = _waiting(rt, name, key, states=("pending", "held"))
    if not rt.store.decide_approval(name, record.key, to="approved", allowed_from=("pending", "held"), by="editor"):
        raise NotFound(f"edition {record.key} of {name!r} is no longer waiting for approval")
    log_event("approval_given", digest=name, edition=record.key)
    return record, _send(rt, name, record.key, as_of=record.scheduled_for)


def hold(rt: Runtime, name: str) -> ApprovalRecord:
    """Stop auto_after from sending the waiting edition; `digest approve` still can."""
    record = _waiting(rt, name, None, states=("pending",))
    if not rt.store.decide_approval(name, record.key, to="held", allowed_from=("pending",), by="editor"):
        raise NotFound(f"edition {record.key} of {name!r} is no longer waiting for approval")
    log_event("approval_held", digest=name, edition=record.key)
    return record


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


def resume_unfinished(rt: Runtime, name: str) -> list[str]:
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


def run_due(rt: Runtime) -> list[str]:
    """Everything due now, without a scheduler: the latest scheduled run of each digest (if within its grace),
    released approvals, and editions left unfinished. Safe to run every few minutes from cron."""
    outcomes: list[str] = []
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


# -- the long-running scheduler --------------------------------------------------------------------------------------

_runtime: Runtime | None = None


def _current() -> Runtime:
    if _runtime is None:
        raise RuntimeError("no digest scheduler is running in this process")
    return _runtime


def _guarded(what: str, name: str, work: Callable[[], object]) -> None:
    # A bug in one run must not take the scheduler down, nor print a traceback over several lines.
    try:
        work()
    except Exception as err:
        log_event("job_crashed", logging.ERROR, job=what, digest=name, error=f"{type(err).__name__}: {err}")


def scheduled_run(name: str) -> None:
    """The job APScheduler runs at each cron time (stored by reference as 'digest.scheduler:scheduled_run')."""
    rt = _current()
    digest = rt.settings.digests.get(name)
    if digest is None or rt.stopping.is_set():
        return
    now = rt.clock()
    scheduled = latest_run(digest_trigger(digest), now)
    if scheduled is None or now - scheduled > digest.schedule.misfire_grace:
        return  # APScheduler let it through, but the schedule in the file changed meanwhile
    _guarded("edition", name, lambda: run_edition(rt, name, scheduled))


def housekeeping() -> None:
    """Every minute: send released approvals and finish editions a stop cut off."""
    rt = _current()
    for name in rt.settings.digests:
        if rt.stopping.is_set():
            return
        _guarded("release", name, lambda name=name: release_due(rt, name))
        _guarded("resume", name, lambda name=name: resume_unfinished(rt, name))


class DigestScheduler:
    """APScheduler's BackgroundScheduler with one persistent cron job per digest and a minute tick."""

    def __init__(self, rt: Runtime, *, housekeeping_seconds: float = HOUSEKEEPING_SECONDS) -> None:
        self.rt = rt
        self.housekeeping_seconds = housekeeping_seconds
        self.jobstore = SQLAlchemyJobStore(engine=rt.store.engine, tablename=JOB_TABLE)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": self.jobstore, "memory": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    @staticmethod
    def job_id(name: str) -> str:
        return f"edition:{name}"

    def start(self) -> None:
        global _runtime
        _runtime = self.rt
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        # Two processes starting on a new database: the other may create the table between check and create.
        with contextlib.suppress(sa.exc.OperationalError):
            self.jobstore.jobs_t.create(self.rt.store.engine, checkfirst=True)
        self.scheduler.start(paused=True)
        self._sync_jobs()
        self.scheduler.add_job(housekeeping, IntervalTrigger(seconds=self.housekeeping_seconds), id="housekeeping",
                               jobstore="memory", next_run_time=self.rt.clock(), replace_existing=True)
        self.scheduler.resume()
        for name, when in self.next_runs().items():
            log_event("scheduled", digest=name, next_run=_local(self.rt.settings.digest(name), when))

    def _sync_jobs(self) -> None:
        """Make the stored jobs match schedule.yaml, keeping each unchanged job's next run (and so its misfires)."""
        wanted = {self.job_id(name): name for name in self.rt.settings.digests}
        for job in self.scheduler.get_jobs(jobstore="default"):
            if job.id not in wanted:
                job.remove()
                log_event("schedule_removed", job=job.id)
        for job_id, name in wanted.items():
            digest = self.rt.settings.digest(name)
            trigger = digest_trigger(digest)
            grace = int(digest.schedule.misfire_grace.total_seconds())
            job = self.scheduler.get_job(job_id, jobstore="default")
            if job is None:
                # A digest new to this database: a run due within the grace right now goes now, as with --once.
                now = self.rt.clock()
                due = latest_run(trigger, now)
                first = due if due is not None and now - due <= digest.schedule.misfire_grace else None
                # A second `digest run` on this database may have added it a moment ago; the store keeps us safe.
                with contextlib.suppress(ConflictingIdError):
                    self.scheduler.add_job("digest.scheduler:scheduled_run", trigger=trigger, args=[name],
                                           id=job_id, name=f"{name} edition", jobstore="default",
                                           misfire_grace_time=grace, coalesce=True, max_instances=1,
                                           **({"next_run_time": first} if first is not None else {}))
                continue
            if repr(job.trigger) != repr(trigger):
                self.scheduler.reschedule_job(job_id, jobstore="default", trigger=trigger)
                log_event("schedule_changed", digest=name, cron=digest.schedule.cron,
                          timezone=digest.schedule.timezone)
            if job.misfire_grace_time != grace:
                self.scheduler.modify_job(job_id, jobstore="default", misfire_grace_time=grace)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        name = event.job_id.removeprefix("edition:")
        if name in self.rt.settings.digests:
            _guarded("missed", name, lambda: missed_run(self.rt, name, event.scheduled_run_time,
                                                        self.rt.clock() - event.scheduled_run_time))

    def next_runs(self) -> dict[str, datetime | None]:
        runs: dict[str, datetime | None] = {}
        for name in self.rt.settings.digests:
            job = self.scheduler.get_job(self.job_id(name), jobstore="default")
            runs[name] = None if job is None else job.next_run_time
        return runs

    def health(self) -> tuple[bool, dict[str, str]]:
        facts = {"scheduler": "running" if self.scheduler.running else "stopped"}
        try:
            with self.rt.store.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            facts["database"] = "ok"
        except sa.exc.SQLAlchemyError as err:
            facts["database"] = f"failing: {type(err).__name__}"
        ok = facts["scheduler"] == "running" and facts["database"] == "ok" and not self.rt.stopping.is_set()
        return ok, facts

    def shutdown(self) -> None:
        """Let the running batch finish (it checks `stopping` between messages), then stop."""
        global _runtime
        self.rt.stopping.set()
        self.scheduler.shutdown(wait=True)
        _runtime = None


def serve(rt: Runtime, *, once: bool, metrics_port: int | None = None) -> int:
    """`digest run`: until SIGTERM/Ctrl-C (or, with `once`, what is due now). Returns the exit code."""
    from digest import metrics

    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only raise the flag: the batch in flight finishes, its ledger rows are written, then we exit.
        received.append(signal.Signals(signum).name)
        rt.stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop_metrics: Callable[[], None] | None = None
    try:
        if once:
            log_event("run_once", digests=",".join(rt.settings.digests))
            outcomes = run_due(rt)
            if received:
                log_event("stopped", signal=received[0])
            return 1 if "failed" in outcomes else 0
        scheduler = DigestScheduler(rt)
        metrics.watch_store(rt.store, rt.settings.digests, rt.clock)
        if metrics_port is not None:
            port, stop_metrics = metrics.serve(metrics_port, scheduler.health)
            log_event("metrics_serving", url=f"http://127.0.0.1:{port}/metrics", health=f"http://127.0.0.1:{port}/healthz")
        scheduler.start()
        while not rt.stopping.wait(0.5):
            pass
        log_event("stopping", signal=received[0] if received else "", note="letting the running batch finish")
        scheduler.shutdown()
        log_event("stopped")
        return 0
    finally:
        if stop_metrics is not None:
            stop_metrics()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
