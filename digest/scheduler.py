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
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from digest.app.outcome import worst
from digest.app.runs import Runtime, approve, hold, missed_run, release_due, resume_unfinished, run_due, run_edition
from digest.cron import (
    CRON_DAYS,
    CronSchedule,
    cron_trigger,
    crontab_weekdays,
    digest_trigger,
    format_duration,
    latest_run,
    local_iso,
    next_run,
)
from digest.events import log_event

JOB_TABLE = "apscheduler_jobs"
HOUSEKEEPING_SECONDS = 60.0

__all__ = ['CRON_DAYS', 'CronSchedule', 'DigestScheduler', 'Runtime', 'approve', 'cron_trigger', 'crontab_weekdays',
           'digest_trigger', 'format_duration', 'hold', 'latest_run', 'missed_run', 'next_run', 'release_due',
           'resume_unfinished', 'run_due', 'run_edition', 'serve']


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
            log_event("scheduled", digest=name, next_run=local_iso(self.rt.settings.digest(name), when))

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
            code = worst(outcomes)
            if code:
                # Said last (but for a stop on request): why the run did not get the edition to everyone.
                failing = next(o for o in reversed(outcomes) if o.exit_code == code)
                log_event("run_incomplete", logging.ERROR, exit_code=code, reason=failing.reason)
            if received:
                log_event("stopped", signal=received[0])
            return code
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
