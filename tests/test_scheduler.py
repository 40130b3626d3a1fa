"""The scheduler in-process, over real SQLite files and a real aiosmtpd server: due runs, misfires, restarts,
concurrent runs of one edition, and the approval gate."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.cli import _store
from digest.config import load_settings
from digest.events import configure_logging
from digest.scheduler import DigestScheduler, Runtime, run_due, run_edition
from tests.conftest import SMTPServer
from tests.scheduling import cron_at, edit_schedule, kinds, recipients, write_subscribers

OSLO = ZoneInfo("Europe/Oslo")
MONDAY_RUN = datetime(2026, 11, 23, 7, 0, tzinfo=OSLO)
SUBSCRIBERS = ["bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]


@pytest.fixture
def log() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("text", stream)
    return stream


@pytest.fixture
def smtp_project(project, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    edit_schedule(project)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    return project


def runtime(project, at: datetime | None = None) -> Runtime:
    settings = load_settings(project / "schedule.yaml")
    clock = (lambda: at) if at is not None else (lambda: datetime.now(UTC))
    return Runtime(settings=settings, store=_store(settings), clock=clock)


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


# -- due runs and misfires (the logic of `digest run --once`) ---------------------------------------------------------

def test_due_run_sends_the_edition_once_however_often_it_runs(smtp_project, smtp_server, log):
    rt = runtime(smtp_project, MONDAY_RUN + timedelta(minutes=5))
    assert kinds(run_due(rt)) == ["sent"]
    assert kinds(run_due(rt)) == ["up_to_date"]
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)
    assert rt.store.find_edition("kultur", "2026-11-23") is not None
    assert "edition_sent digest=kultur edition=2026-11-23 articles=6 sent=3" in log.getvalue()


def test_run_later_than_the_grace_is_skipped_and_logged_once(smtp_project, smtp_server, log, run_cli):
    edit_schedule(smtp_project, schedule={"cron": "0 7 * * mon", "timezone": "Europe/Oslo", "misfire_grace": "6h"})
    rt = runtime(smtp_project, MONDAY_RUN + timedelta(hours=6, minutes=1))
    assert kinds(run_due(rt)) == ["missed"]
    assert kinds(run_due(rt)) == ["up_to_date"]  # the next cron tick does not log it again
    assert smtp_server.received == []
    assert rt.store.find_edition("kultur", "2026-11-23") is None
    lines = [line for line in log.getvalue().splitlines() if "run_missed" in line]
    assert len(lines) == 1
    assert ("WARNING run_missed digest=kultur edition=2026-11-23 scheduled_for=2026-11-23T07:00+01:00 "
            "late_by=6h1m misfire_grace=6h") in lines[0]
    assert "Last missed run  mandag 23. november 2026 kl. 07:00 CET" in run_cli("status").stdout


def test_runs_missed_for_weeks_are_coalesced_into_one_skip(smtp_project, smtp_server, log):
    rt = runtime(smtp_project, MONDAY_RUN + timedelta(days=16))  # Wednesday two weeks later
    assert kinds(run_due(rt)) == ["missed"]
    assert smtp_server.received == []
    assert log.getvalue().count("run_missed") == 1
    assert "edition=2026-12-07" in log.getvalue()  # only the latest missed Monday is mentioned


def test_one_edition_run_twice_at_once_on_one_database_delivers_once(project, monkeypatch, run_cli, log):
    # Two schedulers fire the same job at the same moment: two runtimes, two engines, one SQLite file.
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port
    from tests.test_run_processes import SlowHandler

    handler = SlowHandler(delay=0.02)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{controller.port}")
        edit_schedule(project)
        assert run_cli("subscribers", "import", str(write_subscribers(project, 30))).exit_code == 0
        at = MONDAY_RUN + timedelta(minutes=1)
        first, second = runtime(project, at), runtime(project, at)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def fire(rt: Runtime) -> None:
            barrier.wait()
            outcomes.append(run_edition(rt, "kultur", MONDAY_RUN).kind)

        threads = [threading.Thread(target=fire, args=(rt,)) for rt in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        controller.stop()
    got = recipients(handler.received)
    assert len(got) == 30 and set(got.values()) == {1}, got
    stored = first.store.find_edition("kultur", "2026-11-23")
    assert first.store.delivery_counts(stored.id) == {"sent": 30}
    # The second either found the edition done or another process still sending it (left to it).
    assert sorted(outcomes) in (["sent", "sent"], ["sent", "up_to_date"], ["busy", "sent"])


# -- the persistent job store -----------------------------------------------------------------------------------------

def _stored_job(rt: Runtime):
    """The job as the job store holds it, read without starting a scheduler."""
    scheduler = DigestScheduler(rt)
    scheduler.jobstore.start(scheduler.scheduler, "default")
    (job,) = scheduler.jobstore.get_all_jobs()
    return scheduler.jobstore, job


def test_restart_keeps_the_persistent_schedule(smtp_project, smtp_server, log):
    first = DigestScheduler(runtime(smtp_project))
    first.start()
    planned = first.next_runs()["kultur"]
    first.shutdown()
    assert planned is not None and planned.astimezone(OSLO).strftime("%a %H:%M") == "Mon 07:00"

    _, job = _stored_job(runtime(smtp_project))
    assert (job.id, job.next_run_time) == ("edition:kultur", planned)
    assert "day_of_week='mon', hour='7', minute='0'" in repr(job.trigger) and "Europe/Oslo" in repr(job.trigger)

    second = DigestScheduler(runtime(smtp_project))  # a new process: new engine, same file
    second.start()
    try:
        assert second.next_runs() == {"kultur": planned}
        assert len(second.scheduler.get_jobs(jobstore="default")) == 1
    finally:
        second.shutdown()
    assert smtp_server.received == []


def _down_over(project, run_time: datetime, grace: str) -> None:
    """As if `digest run` had scheduled the job for `run_time` and then been down while that time passed."""
    edit_schedule(project, schedule={"cron": cron_at(run_time), "timezone": "UTC", "misfire_grace": grace})
    before = DigestScheduler(runtime(project, run_time - timedelta(minutes=1)))
    before.start()
    before.shutdown()
    jobstore, job = _stored_job(runtime(project))
    assert job.next_run_time > run_time  # scheduled for next year: the process is "down" while run_time passes
    job.next_run_time = run_time
    jobstore.update_job(job)


def test_restart_runs_what_it_missed_within_the_grace(smtp_project, smtp_server, log):
    run_time = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    _down_over(smtp_project, run_time, grace="1h")
    assert smtp_server.received == []

    after = DigestScheduler(runtime(smtp_project))
    after.start()
    try:
        wait_for(lambda: len(recipients(smtp_server.received)) == 3)
        wait_for(lambda: "edition_sent" in log.getvalue())
        next_run = after.next_runs()["kultur"]
        assert next_run is not None and next_run.year == run_time.year + 1
    finally:
        after.shutdown()
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)
    assert f"edition={run_time.date().isoformat()}" in log.getvalue()


def test_restart_skips_and_logs_a_run_beyond_the_grace(smtp_project, smtp_server, log):
    run_time = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    _down_over(smtp_project, run_time, grace="5m")

    after = DigestScheduler(runtime(smtp_project))
    after.start()
    try:
        wait_for(lambda: "run_missed" in log.getvalue())
    finally:
        after.shutdown()
    assert smtp_server.received == []
    line = next(line for line in log.getvalue().splitlines() if "run_missed" in line)
    assert "late_by=10m misfire_grace=5m" in line
    assert after.rt.store.find_edition("kultur", run_time.date().isoformat()) is None


# -- the approval gate ------------------------------------------------------------------------------------------------

def test_required_approval_previews_to_editors_and_waits_for_approve(smtp_project, smtp_server, run_cli, log):
    edit_schedule(smtp_project, approval="required", editors=["redaksjon@ks.no", "vakt@ks.no"])
    rt = runtime(smtp_project, MONDAY_RUN + timedelta(minutes=1))

    assert kinds(run_due(rt)) == ["awaiting_approval"]
    assert kinds(run_due(rt)) == ["awaiting_approval"]  # one preview per editor, not one per tick
    assert recipients(smtp_server.received, tests=True) == {"redaksjon@ks.no": 1, "vakt@ks.no": 1}
    assert recipients(smtp_server.received) == {}
    assert "approval_requested digest=kultur edition=2026-11-23 articles=6 editors=2 auto_at=never" in log.getvalue()
    status = run_cli("status").stdout
    assert "2026-11-23 pending" in status and "digest approve kultur 2026-11-23" in status

    result = run_cli("approve", "kultur")
    assert result.exit_code == 0, result.stderr
    assert "kultur 2026-11-23 approved; sent: sent 3, deferred 0, failed 0." in result.stdout
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)

    assert kinds(run_due(rt)) == ["up_to_date"]
    again = run_cli("approve", "kultur")
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines()[-1] == "error: no edition of 'kultur' is waiting for approval"
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)
    assert rt.store.approval("kultur", "2026-11-23").state == "sent"


def test_auto_after_sends_by_itself_after_the_delay(smtp_project, smtp_server, log):
    edit_schedule(smtp_project, approval={"auto_after": "2h"}, editors=["redaksjon@ks.no"])
    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(minutes=1)))) == ["awaiting_approval"]
    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(hours=1, minutes=59)))) == ["awaiting_approval"]
    assert recipients(smtp_server.received) == {}

    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(hours=2, minutes=1)))) == ["sent"]
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)
    assert "approval_auto digest=kultur edition=2026-11-23" in log.getvalue()


def test_hold_stops_auto_after_until_an_editor_approves(smtp_project, smtp_server, run_cli, log):
    edit_schedule(smtp_project, approval={"auto_after": "2h"}, editors=["redaksjon@ks.no"])
    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(minutes=1)))) == ["awaiting_approval"]
    held = run_cli("hold", "kultur")
    assert held.exit_code == 0, held.stderr
    assert "kultur 2026-11-23 (scheduled mandag 23. november 2026 kl. 07:00 CET) is held" in held.stdout

    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(hours=3)))) == ["awaiting_approval"]
    assert recipients(smtp_server.received) == {}

    assert run_cli("approve", "kultur", "2026-11-23").exit_code == 0
    assert recipients(smtp_server.received) == dict.fromkeys(SUBSCRIBERS, 1)


def test_auto_approval_found_too_late_expires_instead_of_sending(smtp_project, smtp_server, log):
    edit_schedule(smtp_project, approval={"auto_after": "2h"}, editors=["redaksjon@ks.no"])
    assert kinds(run_due(runtime(smtp_project, MONDAY_RUN + timedelta(minutes=1)))) == ["awaiting_approval"]
    rt = runtime(smtp_project, MONDAY_RUN + timedelta(days=2))
    assert "expired" in kinds(run_due(rt))
    assert recipients(smtp_server.received) == {}
    assert rt.store.approval("kultur", "2026-11-23").state == "expired"
    assert "approval_expired digest=kultur edition=2026-11-23" in log.getvalue()
