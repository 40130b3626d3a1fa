"""A pool of connections: each worker thread owns one transport and sends the jobs it is handed, one at a time.

Threads rather than asyncio because the work per message is a few socket writes and reads, which release the GIL,
and (with DKIM) an RSA signature, which `cryptography` computes without holding it. The pool decides nothing about
retries, limits or the ledger: it reports one `Result` per job to the sender (`digest.sender`), which does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from digest.errors import RecipientRefused, SendError, TransportError, TransportRefused
from digest.transports import Envelope, Transport
from digest.transports.smtp import SMTPTransport


@dataclass(frozen=True)
class Job:
    """One recipient's message, to be built and sent by a worker."""

    subscriber_id: int
    email: str
    name: str
    attempt: int = 1                 # 1 for the first try in this run
    avoid_worker: int | None = None  # a retry goes to another connection than the one that was refused


@dataclass(frozen=True)
class Result:
    """What became of one job. `state` is sent, deferred, failed, bounced, or unsent (no connection: not tried)."""

    job: Job
    worker: int
    state: str
    code: int | None = None
    reason: str | None = None
    connection_failure: bool = False  # could not connect, connection dropped, timed out, or 421
    fatal: bool = False  # the relay refused us (login, certificate, STARTTLS): no point trying any further
    error: BaseException | None = None  # a bug while building the message: the sender re-raises it


class GateClosed(Exception):
    """The sender stopped (its ledger could not be written): no message may be completed any more."""


class CommitGates:
    """How many of each connection's outcomes the sender has committed to its ledger.

    A connection may build and transmit its next message while the outcome of its previous one is being committed,
    but it sends the final dot (which makes the server take the message) only once every earlier outcome of that
    connection is on disk. So a crash can leave at most one delivered-but-unrecorded message per connection.
    """

    def __init__(self, size: int) -> None:
        self._committed = [0] * size
        self._closed = False
        self._changed = threading.Condition()

    def committed(self, counts: dict[int, int]) -> None:
        """The sender committed `counts[worker]` more outcomes of each worker."""
        with self._changed:
            for worker, count in counts.items():
                self._committed[worker] += count
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait(self, worker: int, outcomes: int) -> None:
        """Block until the first `outcomes` outcomes of `worker` are committed."""
        with self._changed:
            self._changed.wait_for(lambda: self._committed[worker] >= outcomes or self._closed)
            if self._committed[worker] < outcomes:
                raise GateClosed("the sender stopped before the ledger recorded the previous message")


class ConnectionPool:
    """`size` workers, each with its own transport from `connect()`; jobs in by worker id, results out in a queue.

    A worker may be handed its next job while it still works on the current one (the sender keeps one in reserve
    per connection, so a connection never waits for the sender between messages). After a connection failure the
    worker hands its reserve back untried (state "unsent"), so that a resting connection does not try again at once.

    A pool of one connection runs inline instead: `submit` only queues the job and the caller runs it with
    `run_inline()` after committing the previous outcome. Two threads taking turns at the GIL for every message
    cost more than they overlap, and the order (commit, then send) is the same one the gates enforce.
    """

    def __init__(self, connect: Callable[[], Transport], *, size: int, build: Callable[[Job], Envelope],
                 max_messages_per_connection: int) -> None:
        self.size = size
        self.inline = size == 1
        self.depth = 1 if self.inline else 2  # jobs a connection may hold: the one it sends, and one in reserve
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.gates = CommitGates(size)
        self._connect = connect
        self._build = build
        self._max_messages = max_messages_per_connection
        self._inboxes: list[queue.SimpleQueue[Job | None]] = [queue.SimpleQueue() for _ in range(size)]
        self._threads = [] if self.inline else [
            threading.Thread(target=self._work, args=(i,), name=f"smtp-{i}", daemon=True) for i in range(size)]
        self._inline_transport: Transport | None = None
        self._inline_used = 0
        self._inline_reported = 0

    def __enter__(self) -> ConnectionPool:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, worker: int, job: Job) -> None:
        self._inboxes[worker].put(job)

    def run_inline(self) -> None:
        """Run the jobs submitted to an inline pool, in the caller's thread (the previous outcome is committed)."""
        if not self.inline:
            return
        if self._inline_transport is None:
            self._inline_transport = self._connect()
        inbox = self._inboxes[0]
        while True:
            try:
                job = inbox.get_nowait()
            except queue.Empty:
                return
            if job is None:
                return
            result, self._inline_used = self._one(self._inline_transport, 0, job, self._inline_used,
                                                  self._inline_reported)
            self.results.put(result)
            self._inline_reported += 1
            if result.connection_failure:
                self._inline_reported += self._hand_back(0, inbox)

    def stop(self) -> None:
        """Let each worker finish its jobs, say QUIT and end."""
        if self._inline_transport is not None:
            self._inline_transport.close()
        self.gates.close()
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _work(self, worker: int) -> None:
        transport = self._connect()
        inbox = self._inboxes[worker]
        used = 0  # messages on the current connection
        reported = 0  # results this worker has handed to the sender
        try:
            while (job := inbox.get()) is not None:
                result, used = self._one(transport, worker, job, used, reported)
                self.results.put(result)
                reported += 1
                if result.connection_failure:
                    reported += self._hand_back(worker, inbox)
        finally:
            transport.close()

    def _one(self, transport: Transport, worker: int, job: Job, used: int, reported: int) -> tuple[Result, int]:
        """Build and send one job; `used` counts messages on the current connection, `reported` earlier results."""
        try:
            envelope = self._build(job)
        except Exception as err:  # a bug, not a delivery problem: hand it to the main thread
            return Result(job, worker, "failed", reason=str(err), error=err), used
        if used >= self._max_messages:
            # Relays cap messages per connection, and a new one spreads load across their front ends.
            transport.close()
            used = 0
        if not getattr(transport, "connected", True):
            used = 0
        result = self._send(transport, worker, job, envelope, partial(self.gates.wait, worker, reported))
        return result, used + 1

    def _hand_back(self, worker: int, inbox: queue.SimpleQueue[Job | None]) -> int:
        returned = 0
        while True:
            try:
                job = inbox.get_nowait()
            except queue.Empty:
                return returned
            if job is None:
                inbox.put(None)  # keep the stop signal for the main loop of this worker
                return returned
            self.results.put(Result(job, worker, "unsent", reason="not tried: its connection had just failed"))
            returned += 1

    @staticmethod
    def _send(transport: Transport, worker: int, job: Job, envelope: Envelope, gate: Callable[[], None]) -> Result:
        try:
            transport.open()
        except TransportError as err:
            return Result(job, worker, "unsent", reason=str(err), connection_failure=True,
                          fatal=isinstance(err, TransportRefused))
        try:
            if isinstance(transport, SMTPTransport):
                transport.send(envelope, gate=gate)
            else:
                gate()
                transport.send(envelope)
        except GateClosed as err:
            return Result(job, worker, "unsent", reason=str(err))
        except RecipientRefused as err:
            if err.temporary:
                return Result(job, worker, "deferred", code=err.code, reason=str(err))
            return Result(job, worker, "bounced" if err.unknown_user else "failed", code=err.code, reason=str(err))
        except SendError as err:
            if err.temporary:
                return Result(job, worker, "deferred", code=err.code, reason=str(err),
                              connection_failure=err.code is None or err.code == 421)
            return Result(job, worker, "failed", code=err.code, reason=str(err))
        return Result(job, worker, "sent")
