"""A leave takes effect at once (issue 10): whoever leaves while `digest send` is under way gets nothing more.

`digest send` runs as its own process against a real relay on 127.0.0.1 that notes when each RCPT arrives; one-click
unsubscribes are real POSTs to the web app (uvicorn on 127.0.0.1), aimed at addresses a little ahead of the send,
in the batch the sender has already read. Each may have at most the message already on its way at the 200: no RCPT
to an address more than 1 s after its 200, apart from at most `pool_size` in flight.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

from digest.config import load_settings
from digest.consent import COMPLAINED
from digest.store import Store
from digest.tokens import make_token
from digest.web import create_app
from digest.web.server import ServerThread
from tests.conftest import free_port
from tests.sending_helpers import AS_OF, add_sending, import_people, ledger

SECRET = b"test-secret"  # the project fixture's DIGEST_SECRET
LATE = 1.0  # seconds after the 200 from which an RCPT to that address counts as late


@dataclass
class TimedRelay:
    """Takes every message after `delay` seconds and notes when each RCPT arrived (time.monotonic, this process)."""

    delay: float
    rcpts: list[tuple[str, float]] = field(default_factory=list)
    on_rcpt: Callable[[str], None] | None = None  # runs in the relay's loop: the whole relay waits for it

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd's hook names
        self.rcpts.append((address, time.monotonic()))
        if self.on_rcpt is not None:
            self.on_rcpt(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return "250 2.0.0 Accepted"

    def copies(self) -> Counter[str]:
        return Counter(address for address, _ in self.rcpts)


@contextmanager
def relay(handler: TimedRelay) -> Iterator[int]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def start_send(project: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_TRANSPORT": f"smtp://127.0.0.1:{port}"}
    return subprocess.Popen([sys.executable, "-m", "digest", "send", "kultur", "--as-of", AS_OF], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def subscriber_ids(project: Path) -> dict[str, int]:
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    try:
        return {s.email: s.id for s in store.list_subscribers()}
    finally:
        store.close()


def unsubscribe_during_send(project: Path, people: list[str], handler: TimedRelay, sender: subprocess.Popen[str],
                            *, count: int, every: int, ahead: tuple[int, int]) -> dict[str, float]:
    """One-click POSTs while the send runs, each to an address `ahead` places past the last one mailed, after every
    `every` messages; address → when its 200 came."""
    ids = subscriber_ids(project)
    settings = load_settings(project / "schedule.yaml")
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    answered: dict[str, float] = {}
    rng = random.Random(10)
    try:
        with ServerThread(create_app(settings, store), port=free_port()) as url, httpx.Client() as client:
            next_at = every
            while len(answered) < count and sender.poll() is None:
                mailed = len(handler.rcpts)
                if mailed < next_at:
                    time.sleep(0.002)
                    continue
                seen = set(handler.copies())
                candidates = [address for address in people[mailed + ahead[0]:mailed + ahead[1]]
                              if address not in seen and address not in answered]
                if not candidates:
                    break
                address = rng.choice(candidates)
                token = make_token(SECRET, ids[address], "kultur")
                response = client.post(f"{url}/avmeld/{token}", data={"List-Unsubscribe": "One-Click"})
                assert response.status_code == 200, response.text
                assert "Du er meldt av" in response.text
                answered[address] = time.monotonic()
                next_at = mailed + every
    finally:
        store.close()
    return answered


def late_rcpts(handler: TimedRelay, answered: dict[str, float]) -> list[tuple[str, float]]:
    """(address, seconds after its 200) of every RCPT that came more than LATE seconds after the 200."""
    return [(address, at - answered[address]) for address, at in handler.rcpts
            if address in answered and at - answered[address] > LATE]


def check_everyone_else_got_it_once(handler: TimedRelay, people: list[str], answered: dict[str, float],
                                    stdout: str) -> None:
    copies = handler.copies()
    assert {a for a in people if a not in answered} <= set(copies), "somebody who stayed was left out"
    assert max(copies.values()) == 1
    left_unmailed = len(set(answered) - set(copies))
    assert left_unmailed > 0, "no unsubscribe came in time to test anything"
    assert f"sent {len(people) - left_unmailed}, deferred 0, failed 0." in stdout


def test_one_click_unsubscribes_during_a_send_of_3000_stop_the_mail_at_once(project, run_cli):
    pool_size = 4
    add_sending(project, pool_size=pool_size)
    people = import_people(project, run_cli, 3000)
    # 20 ms a message: at most 200 a second over 4 connections, so an address 200 to 300 places ahead, in the
    # batch of 500 the sender has read, is more than a second from its turn.
    handler = TimedRelay(delay=0.02)
    with relay(handler) as port:
        sender = start_send(project, port)
        try:
            answered = unsubscribe_during_send(project, people, handler, sender, count=100, every=25,
                                               ahead=(3 * pool_size, 300))
            stdout, stderr = sender.communicate(timeout=300)
        finally:
            sender.kill()
    assert sender.returncode == 0, stderr
    assert len(answered) == 100
    late = late_rcpts(handler, answered)
    assert len(late) <= pool_size, f"mailed more than {LATE} s after the 200: {late}"
    check_everyone_else_got_it_once(handler, people, answered, stdout)

    # They stay out of every count of who still waits: the next run finds nothing to do.
    again = run_cli("send", "kultur", "--as-of", AS_OF)
    assert again.exit_code == 0, again.stderr
    assert "Every subscriber already has this edition; nothing new was sent." in again.stdout


def test_with_per_second_20_an_unsubscribe_from_the_batch_already_read_is_honoured_at_once(project, run_cli):
    pool_size = 4
    add_sending(project, pool_size=pool_size, per_second=20)
    people = import_people(project, run_cli, 120)
    handler = TimedRelay(delay=0.0)
    with relay(handler) as port:
        sender = start_send(project, port)
        try:
            # 25 to 60 places ahead: at 20 a second, 1.25 to 3 s before their turn, and long since read.
            answered = unsubscribe_during_send(project, people, handler, sender, count=20, every=3,
                                               ahead=(25, 60))
            stdout, stderr = sender.communicate(timeout=120)
        finally:
            sender.kill()
    assert sender.returncode == 0, stderr
    assert len(answered) >= 10
    late = late_rcpts(handler, answered)
    assert len(late) <= pool_size, f"mailed more than {LATE} s after the 200: {late}"
    check_everyone_else_got_it_once(handler, people, answered, stdout)


def test_a_bounce_a_complaint_or_a_forget_recorded_mid_send_stops_the_mail(project, run_cli):
    add_sending(project, pool_size=2)
    people = import_people(project, run_cli, 60)
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    ids = subscriber_ids(project)
    bounced, complained, forgotten, soft = people[30], people[31], people[32], people[33]
    recorded = threading.Event()

    def leaves_at_the_tenth(address: str) -> None:
        # The relay holds every connection while this runs; the sender has read the whole list long before.
        if address != people[10] or recorded.is_set():
            return
        now = datetime.now(UTC)
        assert store.record_bounce(bounced, hard=True, message_ref="dsn-1", edition_id=None, now=now) == "bounced"
        assert store.leave(ids[complained], status=COMPLAINED, source="complaint", now=now)
        assert store.forget_address(forgotten, now=now)
        # One soft bounce is counted, not a leave: that subscriber still gets the edition.
        assert store.record_bounce(soft, hard=False, message_ref="dsn-2", edition_id=None, now=now) == "counted"
        recorded.set()

    handler = TimedRelay(delay=0.01, on_rcpt=leaves_at_the_tenth)
    try:
        with relay(handler) as port:
            sender = start_send(project, port)
            stdout, stderr = sender.communicate(timeout=120)
    finally:
        store.close()
    assert recorded.is_set()
    assert sender.returncode == 0, stderr
    copies = handler.copies()
    assert set(copies) == set(people) - {bounced, complained, forgotten}
    assert max(copies.values()) == 1
    assert "sent 57, deferred 0, failed 0." in stdout
    rows = ledger(project)
    assert rows[bounced][0] == rows[complained][0] == "queued"  # left as they were: never handed to the relay
    assert forgotten not in rows
    assert rows[soft][0] == "sent"

    again = run_cli("send", "kultur", "--as-of", AS_OF)
    assert again.exit_code == 0, again.stderr
    assert "Every subscriber already has this edition; nothing new was sent." in again.stdout
