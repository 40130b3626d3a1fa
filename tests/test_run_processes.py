"""`digest run` as real processes on one SQLite file: two at once deliver once, SIGTERM mid-send loses and doubles
nothing, /healthz and /metrics answer."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import RecordingHandler, SMTPServer, free_port
from tests.scheduling import cron_at, edit_schedule, recipients, start_digest, write_subscribers


@dataclass
class SlowHandler(RecordingHandler):
    """A server that takes `delay` seconds per message, so a batch is long enough to be interrupted."""

    delay: float = 0.05

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SMTPServer]:
    handler = SlowHandler(delay=0.05)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


def due_now(project) -> str:
    """A schedule whose run was a minute ago (well within the grace). Returns the edition key."""
    run_time = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    edit_schedule(project, schedule={"cron": cron_at(run_time), "timezone": "UTC"})
    return run_time.date().isoformat()


def import_subscribers(project, smtp_url: str, count: int) -> None:
    proc = start_digest(project, smtp_url, "subscribers", "import", str(write_subscribers(project, count)))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr


def ledger(project, key: str) -> dict[str, int]:
    with sqlite3.connect(project / "digest.db") as db:
        rows = db.execute("SELECT d.state, count(*) FROM deliveries d JOIN editions e ON e.id = d.edition_id "
                          "WHERE e.key = ? GROUP BY d.state", (key,)).fetchall()
    return dict(rows)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_two_run_once_processes_at_the_same_moment_deliver_once_per_subscriber(project, slow_smtp):
    key = due_now(project)
    import_subscribers(project, slow_smtp.url, 40)

    procs = [start_digest(project, slow_smtp.url, "run", "--once") for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs

    got = recipients(slow_smtp.received)
    assert len(got) == 40 and set(got.values()) == {1}, got
    assert ledger(project, key) == {"sent": 40}
    # Together they sent each message once: whichever holds the edition's sending lock sends, the other leaves it
    # to it (edition_busy) or finds it done.
    sent_by = [int(line.split(" sent=")[1].split()[0]) for _, err in outputs for line in err.splitlines()
               if "edition_sent" in line]
    assert sum(sent_by) == 40


def test_two_schedulers_on_one_database_send_once(project, slow_smtp):
    key = due_now(project)
    import_subscribers(project, slow_smtp.url, 20)

    procs = [start_digest(project, slow_smtp.url, "run") for _ in range(2)]
    try:
        wait_for(lambda: ledger(project, key).get("sent", 0) == 20)
        time.sleep(0.5)  # anything doubled would arrive now
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    got = recipients(slow_smtp.received)
    assert len(got) == 20 and set(got.values()) == {1}, got
    for _, stderr in outputs:
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1].endswith("INFO stopped")


@pytest.mark.parametrize("mode", ["daemon", "once"])
def test_sigterm_during_a_send_then_restart_loses_and_doubles_nothing(project, slow_smtp, mode):
    key = due_now(project)
    import_subscribers(project, slow_smtp.url, 30)
    args = ["run"] if mode == "daemon" else ["run", "--once"]
    stop = signal.SIGTERM if mode == "daemon" else signal.SIGINT  # Ctrl-C behaves the same

    first = start_digest(project, slow_smtp.url, *args)
    wait_for(lambda: len(slow_smtp.received) >= 5)
    first.send_signal(stop)
    _, stderr = first.communicate(timeout=30)
    # The scheduler stops cleanly (0); a `--once` run stopped mid-send says that some still wait (2: some sent).
    assert first.returncode == (0 if mode == "daemon" else 2), stderr
    assert "edition_interrupted" in stderr and "Traceback" not in stderr

    interrupted = ledger(project, key)
    delivered = len(slow_smtp.received)
    # The message in flight was finished and recorded; nothing is left half-way.
    assert interrupted.get("sent") == delivered and "sending" not in interrupted
    assert 5 <= delivered < 30 and interrupted.get("queued") == 30 - delivered

    second = start_digest(project, slow_smtp.url, *args)
    try:
        wait_for(lambda: ledger(project, key) == {"sent": 30})
    finally:
        if mode == "daemon":
            second.send_signal(signal.SIGTERM)
        _, stderr2 = second.communicate(timeout=60)
    assert second.returncode == 0, stderr2
    got = recipients(slow_smtp.received)
    assert len(got) == 30 and set(got.values()) == {1}, got


def test_healthz_and_metrics_are_served_on_loopback(project, smtp_server):
    key = due_now(project)
    import_subscribers(project, smtp_server.url, 3)
    port = free_port()
    proc = start_digest(project, smtp_server.url, "run", "--metrics-port", str(port), "--log-format", "json")
    try:
        wait_for(lambda: ledger(project, key).get("sent", 0) == 3)
        wait_for(lambda: b"digest_editions_total" in _get(port, "/metrics")[1])
        status, body = _get(port, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "scheduler": "running", "database": "ok"}
        metrics = _get(port, "/metrics")[1].decode()
        assert 'digest_editions_total{digest="kultur",outcome="sent"} 1.0' in metrics
        assert f'digest_last_edition_deliveries{{digest="kultur",edition="{key}",state="sent"}} 3.0' in metrics
        assert 'digest_deliveries_total{digest="kultur",state="sent"} 3.0' in metrics
        assert 'digest_seconds_since_last_success{digest="kultur"}' in metrics
        assert 'digest_pending_approvals{digest="kultur"} 0.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines()]
    assert {"metrics_serving", "scheduled", "edition_sent", "stopping", "stopped"} <= {e["event"] for e in events}
    sent = next(e for e in events if e["event"] == "edition_sent")
    assert sent["digest"] == "kultur" and sent["sent"] == 3 and sent["level"] == "info"


def _get(port: int, path: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""
