"""The delivery ledger: pending deliveries read in batches, the sending lock, and the sender's commits and claims."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from digest.consent import ACTIVE
from digest.models import Subscriber
from digest.store.base import StoreBase, _aware, _now, _utc
from digest.store.schema import (
    deliveries,
    editions,
    subscribers,
    suppressions,
)
from digest.store.subscribers import _receives_digest

PENDING_STATES = ("queued", "sending", "deferred")
# The scheduler's tick resumes an edition with deliveries left in "sending" only after this long: a live run that
# holds the edition's sending lock may still be on them (the lock decides in the end; see Store.sending_lock).
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class LedgerUpdate:
    """One move of one (edition, subscriber) in the delivery ledger."""

    subscriber_id: int
    state: str                 # queued | sending | sent | deferred | failed
    code: int | None = None    # the SMTP reply code, when the server gave one
    reason: str | None = None  # the server's reply text, or what went wrong
    attempted: bool = False    # the message was handed to the server (attempts + 1)
    bounce: bool = False       # the address does not exist: mark the subscriber bounced

    def params(self) -> dict[str, object]:
        return {"b_id": self.subscriber_id, "b_state": self.state, "b_code": self.code, "b_reason": self.reason}


class LedgerStore(StoreBase):
    """Deliveries of an edition as the sender sees them."""

    # -- deliveries -----------------------------------------------------------------------------------------------
    def mark_delivery(self, edition_id: int, subscriber_id: int, state: str, *, code: int | None = None,
                      reason: str | None = None) -> None:
        values: dict[str, object] = {"state": state, "code": code, "reason": reason, "updated_at": _now()}
        if state == "sending":
            values["attempts"] = deliveries.c.attempts + 1
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.edition_id == edition_id,
                                                   deliveries.c.subscriber_id == subscriber_id).values(**values))

    # -- sending in batches (digest.sender) ------------------------------------------------------------------------
    def pending_batch(self, edition_id: int, *, after_id: int = 0, limit: int = 500) -> list[Subscriber]:
        """The next `limit` subscribers (by id, after `after_id`) who have not got the edition yet.

        Keyset pages rather than one big result: memory stays flat however long the list, and rows the sender
        updates meanwhile cannot shift the pages.
        """
        query = (
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status)
            .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
            .where(_pending_for(edition_id), subscribers.c.id > after_id)
            .order_by(subscribers.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Subscriber(id=r.id, email=r.email, name=r.name, status=r.status) for r in rows]

    def pending_count(self, edition_id: int) -> tuple[int, int]:
        """(subscribers still waiting for the edition, of whom were being sent to when a run stopped)."""
        query = (
            sa.select(deliveries.c.state, sa.func.count())
            .join(subscribers, deliveries.c.subscriber_id == subscribers.c.id)
            .where(_pending_for(edition_id))
            .group_by(deliveries.c.state)
        )
        with self.engine.connect() as conn:
            counts = dict(conn.execute(query).all())
        return sum(counts.values()), counts.get("sending", 0)

    @contextmanager
    def sending_lock(self, edition_id: int) -> Iterator[bool]:
        """Hold the right to send one edition; yields False when another live process holds it.

        The lock dies with its holder, even on `kill -9`: a POSIX byte-range lock (one byte per edition) on a file
        beside a SQLite database, a session advisory lock on PostgreSQL. So a delivery found in "sending" by the
        holder was left by a run that is gone and is retried at once (at most the messages it had in flight get a
        second copy), while two live processes never send one edition side by side.
        """
        # POSIX locks belong to the process, so threads of one process (two schedulers in a test, the web app)
        # first take a lock of their own.
        with _thread_lock(str(self.engine.url), edition_id) as ours:
            if not ours:
                yield False
                return
            with self._process_lock(edition_id) as ours:
                yield ours

    @contextmanager
    def _process_lock(self, edition_id: int) -> Iterator[bool]:
        dialect = self.engine.dialect.name
        database = self.engine.url.database
        if dialect == "sqlite" and database and database != ":memory:":
            fd = os.open(f"{database}.send-lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, edition_id)
                except OSError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, edition_id)
            finally:
                os.close(fd)
        elif dialect == "postgresql":
            key = (0x6B64 << 32) | edition_id  # "kd": our namespace among the database's advisory locks
            with self.engine.connect() as conn:
                if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))):
                    yield False
                    return
                try:
                    yield True
                finally:
                    conn.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
        else:
            yield True

    @contextmanager
    def ledger(self, edition_id: int) -> Iterator[Ledger]:
        """One connection held for a send's many small commits (checking one out per commit costs more)."""
        self.email_hash("")  # the suppression salt, read before the ledger's transactions (see email_hash)
        with self.engine.connect() as conn:
            digest = conn.scalar(sa.select(editions.c.digest).where(editions.c.id == edition_id))
        with self.engine.connect() as conn:
            yield Ledger(conn, edition_id, digest=digest or "", email_hash=self.email_hash)

    def sent_times_since(self, since: datetime) -> list[datetime]:
        """When each message of any edition went out since `since`: a relay's hourly limit counts them all."""
        with self.engine.connect() as conn:
            rows = conn.scalars(
                sa.select(deliveries.c.updated_at)
                .where(deliveries.c.state == "sent", deliveries.c.updated_at >= _utc(since))
                .order_by(deliveries.c.updated_at)
            ).all()
        return [_aware(value) for value in rows]


# Built once: the sender applies these thousands of times a minute, and building a statement costs more than running it.
_LEDGER_MOVE = (
    deliveries.update()
    .where(deliveries.c.edition_id == sa.bindparam("b_edition"), deliveries.c.subscriber_id == sa.bindparam("b_id"))
    .values(state=sa.bindparam("b_state"), code=sa.bindparam("b_code"), reason=sa.bindparam("b_reason"),
            attempts=deliveries.c.attempts + sa.bindparam("b_tries"),
            updated_at=sa.bindparam("b_now", type_=sa.DateTime(timezone=True)))
)
_MARK_BOUNCED = subscribers.update().where(subscribers.c.id == sa.bindparam("b_id")).values(status="bounced")


def _literal(value: str) -> sa.ColumnElement[str]:
    # Fixed words written into the statement: the ledger runs it on the driver's cursor with its own parameters.
    return sa.literal_column("'" + value.replace("'", "''") + "'")


def _still_wanted() -> sa.ColumnElement[bool]:
    """The delivery is pending, to a subscriber who is active, still receives the digest (b_digest) and whose
    address (b_hash) is not on the suppression list."""
    return sa.and_(
        deliveries.c.edition_id == sa.bindparam("b_edition"),
        deliveries.c.subscriber_id == sa.bindparam("b_id"),
        sa.or_(*(deliveries.c.state == _literal(state) for state in PENDING_STATES)),
        sa.exists().where(subscribers.c.id == deliveries.c.subscriber_id, subscribers.c.status == _literal(ACTIVE),
                          _receives_digest(sa.bindparam("b_digest", type_=sa.String))),
        ~sa.exists().where(suppressions.c.email_hash == sa.bindparam("b_hash", type_=sa.String)),
    )


# A job goes to a connection only if one of these finds its delivery still wanted. The sender runs it in the
# transaction it commits before handing the job over, so a leave committed before (the 200 of a one-click
# unsubscribe, a bounce or complaint recorded, an address forgotten) always wins. A job its connection starts on
# moves to "sending" in the same statement; one put in reserve behind another is only looked at (no write), and
# moves to "sending" when its connection starts on it.
_CLAIM_START = (
    deliveries.update().where(_still_wanted())
    .values(state=_literal("sending"), updated_at=sa.bindparam("b_now", type_=sa.DateTime(timezone=True)))
)
_CLAIM_RESERVE = sa.select(deliveries.c.subscriber_id).where(_still_wanted())


class Ledger:
    """Writes ledger moves for one edition over one held connection; each transaction is one commit.

    The sender commits after nearly every message, and SQLAlchemy's per-execution work (cache lookup, parameter
    processing, transaction bookkeeping) cost more than SQLite's own. So the statements are compiled once for the
    connection's dialect and run on the driver's cursor; they are still the statements built with SQLAlchemy
    above, and the connection is used for nothing else while the ledger holds it.
    """

    def __init__(self, conn: sa.Connection, edition_id: int, *, digest: str,
                 email_hash: Callable[[str], str]) -> None:
        self._conn = conn
        self._edition_id = edition_id
        self._digest = digest
        self._email_hash = email_hash
        dialect = conn.dialect
        self._move = _Compiled(_LEDGER_MOVE, dialect)
        self._claim_start = _Compiled(_CLAIM_START, dialect)
        self._claim_reserve = _Compiled(_CLAIM_RESERVE, dialect)
        self._timestamp = sa.DateTime(timezone=True).bind_processor(dialect) or (lambda value: value)
        self._driver = conn.connection.dbapi_connection
        assert self._driver is not None
        self._cursor: Any = None  # the open transaction's cursor, inside `transaction`
        self._now: object = None  # the transaction's timestamp, once it writes anything

    def record(self, updates: Sequence[LedgerUpdate]) -> None:
        """Commit `updates` (one transaction)."""
        if updates:
            with self.transaction(updates):
                pass

    @contextmanager
    def transaction(self, updates: Sequence[LedgerUpdate]) -> Iterator[Ledger]:
        """One transaction: the moves in `updates`, then every `claim` made inside the block; committed at its end
        (rolled back if the block raises). Nothing to write, nothing claimed: no commit either."""
        self._now = self._timestamp(_now()) if updates else None
        bounced = [{"b_id": u.subscriber_id} for u in updates if u.bounce]
        cursor = self._driver.cursor()
        try:
            if updates:
                rows = [{"b_edition": self._edition_id, "b_id": u.subscriber_id, "b_state": u.state,
                         "b_code": u.code, "b_reason": u.reason, "b_tries": int(u.attempted), "b_now": self._now}
                        for u in updates]
                cursor.executemany(self._move.sql, [self._move.params(row) for row in rows])
            self._cursor = cursor
            yield self
            if self._now is not None:
                self._driver.commit()
        except BaseException:
            self._driver.rollback()
            raise
        finally:
            self._cursor = None
            cursor.close()
        if bounced:
            # Suppressed from every later edition; this edition's ledger row says why (code and text). Rare, so
            # through SQLAlchemy, after the moves are committed: a crash in between leaves a failed delivery and
            # an active subscriber, which the next edition would try again.
            with self._conn.begin():
                self._conn.execute(_MARK_BOUNCED, bounced)

    def claim(self, subscriber_id: int, email: str, *, start: bool) -> bool:
        """Inside `transaction`: may this delivery go to a connection? True if it is still wanted (then, with
        `start`, it is "sending" from the commit on); False if the subscriber left, or it is no longer pending."""
        assert self._cursor is not None, "claims are made inside Ledger.transaction"
        row = {"b_edition": self._edition_id, "b_id": subscriber_id, "b_digest": self._digest,
               "b_hash": self._email_hash(email)}
        if not start:
            self._cursor.execute(self._claim_reserve.sql, self._claim_reserve.params(row))
            return bool(self._cursor.fetchall())
        if self._now is None:
            self._now = self._timestamp(_now())
        row["b_now"] = self._now
        self._cursor.execute(self._claim_start.sql, self._claim_start.params(row))
        return bool(self._cursor.rowcount == 1)


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect, and how to pass it parameters by name."""

    sql: str
    order: tuple[str, ...] | None  # positional parameters (SQLite's "?"), in this order; None: by name

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        object.__setattr__(self, "sql", str(compiled))
        object.__setattr__(self, "order", tuple(compiled.positiontup) if compiled.positional else None)

    def params(self, row: dict[str, object]) -> dict[str, object] | tuple[object, ...]:
        return row if self.order is None else tuple(row[name] for name in self.order)


_THREAD_LOCKS: dict[tuple[str, int], threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _thread_lock(database: str, edition_id: int) -> Iterator[bool]:
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault((database, edition_id), threading.Lock())
    if not lock.acquire(blocking=False):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _pending_for(edition_id: int) -> sa.ColumnElement[bool]:
    """Deliveries of the edition still to make (queued, deferred, cut off mid-send), to active subscribers who
    still receive the digest: whoever left it after the edition was queued is skipped, too."""
    return sa.and_(
        deliveries.c.edition_id == edition_id,
        deliveries.c.state.in_(PENDING_STATES),
        subscribers.c.status == "active",
        _receives_digest(sa.select(editions.c.digest).where(editions.c.id == edition_id).scalar_subquery()),
    )

