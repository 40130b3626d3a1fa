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

from digest.errors import RecipientRefused, SendError, TransportError
from digest.transports import Envelope, Transport


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
    error: BaseException | None = None  # a bug while building the message: the sender re-raises it


class ConnectionPool:
    """`size` workers, each with its own transport from `connect()`; jobs in by worker id, results out in a queue."""

    def __init__(self, connect: Callable[[], Transport], *, size: int, build: Callable[[Job], Envelope],
                 max_messages_per_connection: int) -> None:
        self.size = size
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._connect = connect
        self._build = build
        self._max_messages = max_messages_per_connection
        self._inboxes: list[queue.SimpleQueue[Job | None]] = [queue.SimpleQueue() for _ in range(size)]
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"smtp-{i}", daemon=True)
                         for i in range(size)]

    def __enter__(self) -> ConnectionPool:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, worker: int, job: Job) -> None:
        self._inboxes[worker].put(job)

    def stop(self) -> None:
        """Let each worker finish its job, say QUIT and end."""
        for inbox in self._inboxes:
            inbox.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _work(self, worker: int) -> None:
        transport = self._connect()
        used = 0  # messages on the current connection
        try:
            while (job := self._inboxes[worker].get()) is not None:
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
                self.results.put(self._send(transport, worker, job, envelope))
                used += 1
        finally:
            transport.close()

    @staticmethod
    def _send(transport: Transport, worker: int, job: Job, envelope: Envelope) -> Result:
        try:
            transport.open()
        except TransportError as err:
            return Result(job, worker, "unsent", reason=str(err), connection_failure=True)
        try:
            transport.send(envelope)
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
