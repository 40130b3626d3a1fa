"""Send one edition to everyone still waiting for it: pooled connections, rate limits, retries, a crash-safe ledger.

The main thread is the only one that talks to the store. It hands jobs to the connections (one being sent and one
in reserve each) and collects the results; every outcome that came in and every job that starts are committed
together (group commit). A connection may build and transmit its next message meanwhile, but it sends the final
dot, which makes the server take the message, only after the outcome of its previous message is committed. So
when the process dies, even by `kill -9`, the ledger misses the fate of at most one delivered message per
connection, the one in flight: the next run sends those again (a duplicate is possible, at most `pool_size` of
them) and nothing else twice, and nobody is left out, because a row leaves the pending states only after 250.

Ledger moves: queued → sending (a connection is on it) → sent | deferred (4xx, timeout, dropped connection;
retried with backoff on another connection, and left for the next run after `max_attempts`) | failed (5xx, with
code and text; "no such user" also marks the subscriber bounced). A job whose connection could not be opened goes
back to queued untried.

A leave takes effect at once. The batch read from the store is only a list of candidates: a job goes to a
connection only once the store has claimed it (Ledger.claim), in the commit made before the job is handed over, and
the claim finds the subscriber still active, still receiving the digest and not suppressed. So whoever unsubscribed,
bounced, complained or was forgotten before that commit gets nothing; the job is skipped, its row stays as it was
(out of every count of who still waits) and the next candidate takes its place. A job handed over in reserve
starts at the latest when its connection's current message is done.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from digest.config import Sending
from digest.consent import mask
from digest.models import SendReport
from digest.ratelimit import RateLimiter
from digest.store import Ledger, LedgerUpdate, Store
from digest.transports import Envelope, Transport
from digest.transports.pool import ConnectionPool, Job, Result

Progress = Callable[[int, int], None]
Notice = Callable[[str], None]

@dataclass
class _Tally:
    done: int = 0
    consecutive_failures: int = 0
    left: int = 0  # skipped: the subscriber left after the batch was read
    last_failure: str = ""
    problems: list[str] = field(default_factory=list)


def backoff(attempt: int, config: Sending, rng: random.Random) -> float:
    """Exponential backoff with jitter: base · 2^(attempt-1), capped, then scaled by 0.5–1.5 so retries spread."""
    delay = min(config.max_retry_delay_seconds, config.retry_delay_seconds * 2 ** max(0, attempt - 1))
    return delay * rng.uniform(0.5, 1.5)


_ADDRESS = re.compile(r"([^\s<>@:;,\"']+)@([A-Za-z0-9.-]+)")


def mask_addresses(text: str) -> str:
    """Every address in a server's reply masked too: relays like to quote the recipient."""
    return _ADDRESS.sub(lambda m: mask(m.group(0)), text)


class Sender:
    """One run over one edition's pending deliveries. Use `run(report)` once."""

    def __init__(self, store: Store, edition_id: int, transport: Transport, build: Callable[[Job], Envelope],
                 config: Sending, *, progress: Progress | None = None, notice: Notice | None = None,
                 stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.edition_id = edition_id
        self.transport = transport
        self.build = build
        self.config = config
        self.progress = progress or (lambda done, total: None)
        self.notice = notice or (lambda text: None)
        self.stop = stop or (lambda: False)
        self.clock = clock
        self.rng = rng or random.Random()
        clone = getattr(transport, "clone", None)
        # A transport that can open more connections gets a pool; a folder of files needs only one writer.
        self.pool_size = config.pool_size if clone is not None else 1
        self._connect: Callable[[], Transport] = (
            (lambda: clone(timeout=config.timeout_seconds)) if clone is not None else (lambda: transport))

    def run(self, report: SendReport) -> SendReport:
        total = report.remaining_at_start
        if total == 0:
            return report
        config = self.config
        limiter = self._limiter()
        fresh = self._fresh_jobs()
        retries: list[tuple[float, int, Job]] = []  # (due, tie-breaker, job)
        order = itertools.count()
        workers = range(self.pool_size)
        # Jobs handed to each connection, oldest first: the first is being sent, the second waits in reserve.
        queues: dict[int, deque[Job]] = {w: deque() for w in workers}
        ready_at: dict[int, float] = dict.fromkeys(workers, 0.0)  # a connection that failed rests until then
        failures: dict[int, int] = dict.fromkeys(workers, 0)  # connection failures in a row, per connection
        writes: list[LedgerUpdate] = []
        outcomes: dict[int, int] = {}  # worker → outcomes in `writes`
        tally = _Tally()
        stopping = False
        announced_wait: str | None = None
        started = self.clock()

        pool = ConnectionPool(self._connect, size=self.pool_size, build=self.build,
                              max_messages_per_connection=config.max_messages_per_connection)
        with self.store.ledger(self.edition_id) as ledger, pool:
            while True:
                if not stopping and self.stop():
                    # SIGTERM from the scheduler: like Ctrl-C, the messages in flight finish and are recorded.
                    stopping = self._interrupted(stopping, report)
                now = self.clock()
                limited_until: float | None = None
                handed: list[tuple[int, Job]] = []
                # One commit for every outcome that came in and every job handed to a connection now; each job is
                # claimed in it (see Ledger.claim), so whoever left before this commit is skipped, never mailed.
                with ledger.transaction(writes) as claims:
                    # Idle connections first, then a reserve job for each busy one.
                    open_slots = [] if stopping else sorted((len(queues[w]), w) for w in workers
                                                            if len(queues[w]) < pool.depth and ready_at[w] <= now)
                    for position, (queued, worker) in enumerate(open_slots):
                        others = position + 1 < len(open_slots)
                        job = self._next_job(worker, now, retries, fresh, others)
                        wait = None if job is None else limiter.wait(now)
                        if job is not None and wait is not None:
                            self._put_back(job, now, retries, order, fresh)
                            limited_until = now + wait.seconds
                            # A relay's window can hold a run for an hour: say so. Per-second pacing is the rate.
                            if (wait.window or wait.seconds >= 1) and announced_wait != wait.limit:
                                announced_wait = wait.limit
                                until = (datetime.now(UTC) + timedelta(seconds=wait.seconds)).astimezone()
                                self.notice(f"Rate limit of {wait.limit} reached: waiting "
                                            f"{_human(wait.seconds)} (until {until:%H:%M:%S}).")
                            break
                        # A reserve job stays as it is until its connection starts on it (then "sending" below).
                        job = self._claimed(claims, job, worker, now, retries, fresh, others, not queued, tally)
                        if job is None:
                            if others:
                                continue
                            break
                        announced_wait = None
                        limiter.take(now)
                        queues[worker].append(job)
                        handed.append((worker, job))
                # Only now may the connections go on: the jobs start, and each connection sends the final dot of
                # a message only once the outcome of its previous one is committed (see CommitGates). Meanwhile
                # they build and transmit their next messages.
                if outcomes:
                    pool.gates.committed(outcomes)
                writes, outcomes = [], {}
                for worker, job in handed:
                    pool.submit(worker, job)
                try:
                    pool.run_inline()
                except KeyboardInterrupt:
                    # The one connection was cut off mid-message: its row stays "sending" for the next run.
                    report.paused = "interrupted"
                    report.interrupted = True
                    break

                in_flight = sum(len(q) for q in queues.values())
                work_left = bool(retries) or not fresh.exhausted
                if not in_flight and (stopping or not work_left):
                    break
                wake_at = self._wake_at(now, queues, ready_at, retries, work_left, limited_until, pool.depth)
                if not in_flight and retries and retries[0][0] - now >= 1 and announced_wait != "retry":
                    announced_wait = "retry"
                    self.notice(f"Waiting {_human(retries[0][0] - now)} to retry {len(retries)} deferred "
                                f"{'message' if len(retries) == 1 else 'messages'}.")
                try:
                    results = self._collect(pool, bool(in_flight), wake_at)
                except KeyboardInterrupt:
                    stopping = self._interrupted(stopping, report)
                    continue
                for result in results:
                    now = self.clock()
                    worker = result.worker
                    queue_ = queues[worker]
                    assert queue_ and queue_[0] is result.job, "results come back in the order jobs went out"
                    queue_.popleft()
                    if result.error is not None:
                        ledger.record(writes)
                        raise result.error
                    writes.append(self._settle(result, now, retries, order, report, tally, config))
                    outcomes[worker] = outcomes.get(worker, 0) + 1
                    if queue_:
                        writes.append(LedgerUpdate(queue_[0].subscriber_id, "sending"))  # the reserve is now on
                    if result.connection_failure:
                        failures[worker] += 1
                        tally.consecutive_failures += 1
                        tally.last_failure = mask_addresses(result.reason or "")
                        # This connection rests before its next try (it hands its reserve back); others go on.
                        ready_at[worker] = now + backoff(failures[worker], config, self.rng)
                    elif result.state != "unsent":
                        failures[worker] = 0
                        tally.consecutive_failures = 0
                self.progress(tally.done, total)
                fatal = next((r for r in results if r.fatal), None)
                if fatal is not None and not stopping:
                    stopping = True
                    report.paused = mask_addresses(fatal.reason or "")
                    self.notice(f"Stopping: {mask_addresses(fatal.reason or '')}")
                if not stopping and tally.consecutive_failures >= config.max_errors:
                    # The limit is what paused it: failures of other connections that came in with the one that
                    # reached it were already under way.
                    stopping = True
                    report.paused = (f"paused after {config.max_errors} connection failures in a row "
                                     f"(last: {tally.last_failure})")
                    self.notice(f"Pausing: {config.max_errors} connection failures in a row "
                                f"(last: {tally.last_failure}).")
            ledger.record(writes)
        report.elapsed = self.clock() - started
        report.problems.extend(tally.problems)
        report.left += tally.left
        return report

    # -- choosing the next job -----------------------------------------------------------------------------------
    def _next_job(self, worker: int, now: float, retries: list[tuple[float, int, Job]], fresh: _FreshJobs,
                  others_ready: bool) -> Job | None:
        """The earliest due retry, unless this very connection was the one that deferred it; else a new one.

        A deferred message goes on another connection: the one that deferred it takes a new subscriber instead, or
        leaves the retry to another idle connection; only when there is neither does it take the retry itself.
        """
        if retries and retries[0][0] <= now:
            if retries[0][2].avoid_worker != worker or self.pool_size == 1:
                return heapq.heappop(retries)[2]
            job = fresh.next()
            if job is not None or others_ready:
                return job
            return heapq.heappop(retries)[2]
        return fresh.next()

    def _claimed(self, claims: Ledger, job: Job | None, worker: int, now: float,
                 retries: list[tuple[float, int, Job]], fresh: _FreshJobs, others_ready: bool, start: bool,
                 tally: _Tally) -> Job | None:
        """`job`, or the next one after it, whose subscriber still receives the edition (claimed for `worker`).

        Whoever left since the batch was read (unsubscribed, bounced, complained, forgotten) is skipped: their
        row stays as it is, out of every count of who still waits, and they get no message.
        """
        while job is not None:
            if claims.claim(job.subscriber_id, job.email, start=start):
                return job
            tally.done += 1
            tally.left += 1
            job = self._next_job(worker, now, retries, fresh, others_ready)
        return None

    def _interrupted(self, stopping: bool, report: SendReport) -> bool:
        """Ctrl-C: finish what is in flight, record it, and stop; a second Ctrl-C stops at once."""
        if stopping:
            raise KeyboardInterrupt
        report.paused = "interrupted"
        report.interrupted = True
        self.notice("Stopping: finishing the messages in flight; the rest stays queued.")
        return True

    @staticmethod
    def _wake_at(now: float, queues: dict[int, deque[Job]], ready_at: dict[int, float],
                 retries: list[tuple[float, int, Job]], work_left: bool, limited_until: float | None,
                 depth: int) -> float | None:
        """When the dispatcher has something to do even if no result comes in (None: only a result wakes it)."""
        moments = [] if limited_until is None else [limited_until]
        has_room = any(len(q) < depth for q in queues.values())
        if has_room and retries and retries[0][0] > now:
            moments.append(retries[0][0])
        resting = [ready for ready in ready_at.values() if ready > now]
        if resting and work_left:
            moments.append(min(resting))
        return min(moments) if moments else None

    @staticmethod
    def _put_back(job: Job, now: float, retries: list[tuple[float, int, Job]], order: Iterator[int],
                  fresh: _FreshJobs) -> None:
        if job.attempt > 1 or job.avoid_worker is not None:
            heapq.heappush(retries, (now, next(order), job))
        else:
            fresh.push_front(job)

    # -- what a result means ---------------------------------------------------------------------------------------
    def _settle(self, result: Result, now: float, retries: list[tuple[float, int, Job]], order: Iterator[int],
                report: SendReport, tally: _Tally, config: Sending) -> LedgerUpdate:
        job = result.job
        subscriber = job.subscriber_id
        if result.state == "sent":
            report.sent += 1
            tally.done += 1
            return LedgerUpdate(subscriber, "sent", attempted=True)
        if result.state == "unsent":
            # Never reached a server: not an attempt. Another connection takes it now; this one rests.
            heapq.heappush(retries, (now, next(order), Job(job.subscriber_id, job.email, job.name, job.attempt,
                                                           avoid_worker=result.worker)))
            return LedgerUpdate(subscriber, "queued", reason=result.reason)
        if result.state == "deferred":
            if job.attempt < config.max_attempts:
                due = now + backoff(job.attempt, config, self.rng)
                heapq.heappush(retries, (due, next(order), Job(job.subscriber_id, job.email, job.name,
                                                               job.attempt + 1, avoid_worker=result.worker)))
            else:
                report.deferred += 1
                tally.done += 1
                tally.problems.append(f"{mask(job.email)}: deferred after {job.attempt} attempts: "
                                      f"{mask_addresses(result.reason or '')}")
            return LedgerUpdate(subscriber, "deferred", code=result.code, reason=result.reason, attempted=True)
        tally.done += 1
        if result.state == "bounced":
            report.bounced += 1
            tally.problems.append(f"{mask(job.email)}: bounced, no more mail to this address: "
                                  f"{mask_addresses(result.reason or '')}")
        else:
            report.failed += 1
            tally.problems.append(f"{mask(job.email)}: failed: {mask_addresses(result.reason or '')}")
        return LedgerUpdate(subscriber, "failed", code=result.code, reason=result.reason, attempted=True,
                            bounce=result.state == "bounced")

    def _collect(self, pool: ConnectionPool, in_flight: bool, wake_at: float | None) -> list[Result]:
        """Wait for at least one result (or until `wake_at`), then take every other one already there."""
        results: list[Result] = []
        if in_flight or wake_at is not None:
            timeout = None if wake_at is None else max(0.0, wake_at - self.clock())
            try:
                results.append(pool.results.get(timeout=timeout))
            except queue.Empty:
                return results
        while True:
            try:
                results.append(pool.results.get_nowait())
            except queue.Empty:
                return results

    def _limiter(self) -> RateLimiter:
        config = self.config
        history: list[float] = []
        if config.window_messages:
            # The relay counts what earlier runs sent within the window too.
            now_wall, now_mono = datetime.now(UTC), self.clock()
            since = now_wall - timedelta(seconds=config.window_seconds)
            history = [now_mono - (now_wall - sent).total_seconds() for sent in self.store.sent_times_since(since)]
        return RateLimiter(per_second=config.per_second, window_messages=config.window_messages,
                           window_seconds=config.window_seconds, history=history)

    def _fresh_jobs(self) -> _FreshJobs:
        return _FreshJobs(self.store, self.edition_id, self.config.batch_size)


class _FreshJobs:
    """Subscribers not yet tried in this run, read from the store a batch at a time."""

    def __init__(self, store: Store, edition_id: int, batch_size: int) -> None:
        self._store = store
        self._edition_id = edition_id
        self._batch_size = batch_size
        self._buffer: deque[Job] = deque()
        self._after = 0
        self._more = True

    @property
    def exhausted(self) -> bool:
        if not self._buffer and self._more:
            self._fill()
        return not self._buffer

    def next(self) -> Job | None:
        if not self._buffer and self._more:
            self._fill()
        return self._buffer.popleft() if self._buffer else None

    def push_front(self, job: Job) -> None:
        self._buffer.appendleft(job)

    def _fill(self) -> None:
        batch = self._store.pending_batch(self._edition_id, after_id=self._after, limit=self._batch_size)
        self._more = len(batch) == self._batch_size
        if batch:
            self._after = batch[-1].id
        self._buffer.extend(Job(s.id, s.email, s.name) for s in batch)


def _human(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
