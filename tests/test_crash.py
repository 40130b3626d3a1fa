"""`kill -9` in the middle of a send, then `digest send` again: everyone gets the edition, duplicates ≤ pool_size."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.sending_helpers import AS_OF, add_sending, import_people
from tests.smtp_scripted import ScriptedHandler, scripted_server


@pytest.mark.parametrize("pool_size", [4, 1], ids=["pool-4", "pool-1-inline"])
def test_killed_send_resumes_and_everyone_gets_exactly_the_edition(project, run_cli, monkeypatch, pool_size):
    # The server takes a while per message, so the run is still busy when we kill it.
    handler = ScriptedHandler(delay=0.04 if pool_size > 1 else 0.01)
    add_sending(project, pool_size=pool_size, batch_size=10)
    people = import_people(project, run_cli, 60)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        process = subprocess.Popen([sys.executable, "-m", "digest", "send", "kultur", "--as-of", AS_OF],
                                   cwd=project, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(handler.received) < 15 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL
        received_before = len(handler.received)
        assert 15 <= received_before < 60, "the kill came too late to test anything"

        with sqlite3.connect(project / "digest.db") as db:
            states = dict(db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall())
            in_flight = {email for (email,) in db.execute(
                "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.state = 'sending'")}
        remaining = 60 - states.get("sent", 0)
        assert remaining > 0
        assert len(in_flight) <= pool_size

        resumed = run_cli("send", "kultur", "--as-of", AS_OF)

    assert resumed.exit_code == 0, resumed.stderr
    expected = f"Resuming kultur 2019-07-01: {remaining} of 60 subscribers remain"
    if in_flight:
        verb = "was" if len(in_flight) == 1 else "were"
        expected += f" ({len(in_flight)} {verb} being sent when the last run stopped and may get a second copy)"
    assert expected + "." in resumed.stdout
    assert f"sent {remaining}, deferred 0, failed 0, already sent before {60 - remaining}." in resumed.stdout

    copies = handler.copies()
    assert set(copies) == set(people)  # nobody left out
    duplicated = {address for address, count in copies.items() if count > 1}
    assert sum(copies.values()) - len(people) <= pool_size
    # Only a message in flight at the kill can arrive twice, and both copies are the same message.
    assert duplicated <= in_flight
    for address in duplicated:
        assert len({d.message["Message-ID"] for d in handler.received if d.recipient == address}) == 1
    with sqlite3.connect(project / "digest.db") as db:
        assert db.execute("SELECT DISTINCT state FROM deliveries").fetchall() == [("sent",)]
