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


class CommitClock:
    """Counts the sender's ledger commits, so a connection can wait for the one that recorded its last message.

    Each job carries a ticket: the number of the commit that records the outcome of the connection's previous
    message. The connection may prepare and transmit its new message while that commit runs, but it sends the
    final dot (which makes the server take the message) only once the commit is done.
    """

    def __init__(self) -> None:
        self._done = 0
        self._closed = False
        self._changed = threading.Condition()

    def advance(self, ticket: int) -> None:
        with self._changed:
            self._done = ticket
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, ticket: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._done >= ticket or self._closed)
            if self._done < ticket:
                raise GateClosed("the sender stopped before the ledger recorded the previous message")


class ConnectionPool:
    """`size` workers, each with its own transport from `connect()`; jobs in by worker id, results out in a queue."""

    def __init__(self, connect: Callable[[], Transport], *, size: int, build: Callable[[Job], Envelope],
                 max_messages_per_connection: int) -> None:
        self.size = size
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.clock = CommitClock()
        self._connect = connect
        self._build = build
        self._max_messages = max_messages_per_connection
        self._inboxes: list[queue.SimpleQueue[tuple[Job, int] | None]] = [queue.SimpleQueue() for _ in range(size)]
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"smtp-{i}", daemon=True)
                         for i in range(size)]

    def __enter__(self) -> ConnectionPool:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, worker: int, job: Job, ticket: int) -> None:
        """Hand `job` to `worker`; it completes the message only after commit number `ticket`."""
        self._inboxes[worker].put((job, ticket))

    def stop(self) -> None:
        """Let each worker finish its job, say QUIT and end."""
        self.clock.close()
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _work(self, worker: int) -> None:
        transport = self._connect()
        used = 0  # messages on the current connection
        try:
            while (item := self._inboxes[worker].get()) is not None:
                job, ticket = item
                try:
                    envelope = self._build(job)
                except Exception as err:  # a bug, not a delivery problem: hand it to the main thread
                    self.results.put(Result(job, worker, "failed", reason=str(err), error=err))
                    continue
                if used >= self._max_messages:
                    # Relays cap messages per connection, and a fresh one spreads load across their front ends.
                    transport.close()
                    used = 0
                if not getattr(transport, "connected", True):
                    used = 0
                self.results.put(self._send(transport, worker, job, envelope, partial(self.clock.wait_for, ticket)))
                used += 1
        finally:
            transport.close()

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
