"""The only SQL: subscribers, editions and the delivery ledger, through SQLAlchemy Core."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.errors import ConfigError
from digest.models import Article, Edition, Subscriber

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("source", sa.String(200), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

editions = sa.Table(
    "editions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("key", sa.String(40), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("articles", sa.Text, nullable=False),  # JSON: the articles exactly as sent
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The idempotency key: one edition per digest and key, whoever asks and however often.
    sa.UniqueConstraint("digest", "key", name="uq_edition_digest_key"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id"), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    # queued → sending → sent | deferred | failed
    sa.Column("state", sa.String(20), nullable=False, default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deliveries_state", "edition_id", "state"),
)

settings_table = sa.Table(
    "settings", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

PENDING_STATES = ("queued", "sending", "deferred")


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int
    merged_duplicates: int


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


@dataclass(frozen=True)
class StoredEdition:
    id: int
    edition: Edition


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # Stored as UTC: SQLite keeps no offset, so a local time would silently shift when read back.
    return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Store:
    """All state of kulturdigest behind one SQLAlchemy URL (a SQLite file by default)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise ConfigError(f"cannot use state URL {url!r}: {err}", key="state") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(engine)
        except sa.exc.OperationalError as err:
            raise ConfigError(f"cannot open the state database {url!r}: {err.orig}", key="state") from None
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- settings -------------------------------------------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(settings_table.c.value).where(settings_table.c.key == key))

    def set_setting_once(self, key: str, value: str) -> str:
        """Store `value` unless another process got there first; return whichever value is stored."""
        with self.engine.begin() as conn:
            existing = conn.scalar(sa.select(settings_table.c.value).where(settings_table.c.key == key))
            if existing is not None:
                return existing
            conn.execute(settings_table.insert().values(key=key, value=value))
            return value

    # -- subscribers ----------------------------------------------------------------------------------------------
    def import_subscribers(self, rows: Iterable[tuple[str, str]], *, source: str) -> ImportReport:
        """Add or update (email, name) rows in one transaction. Statuses are never changed by an import."""
        merged: dict[str, str] = {}
        duplicates = 0
        for email, name in rows:
            key = email.lower()
            if key in merged:
                duplicates += 1
                merged[key] = name or merged[key]
            else:
                merged[key] = name
        added = updated = unchanged = 0
        with self.engine.begin() as conn:
            existing = {
                row.email.lower(): row
                for row in conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name))
            }
            now = _now()
            for email, name in merged.items():
                row = existing.get(email)
                if row is None:
                    conn.execute(subscribers.insert().values(
                        email=email, name=name, status="active", source=source, created_at=now))
                    added += 1
                elif name and name != row.name:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(name=name))
                    updated += 1
                else:
                    unchanged += 1
        return ImportReport(added, updated, unchanged, duplicates)

    def list_subscribers(self) -> list[Subscriber]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(subscribers).order_by(subscribers.c.email)).all()
        return [Subscriber(id=r.id, email=r.email, name=r.name, status=r.status) for r in rows]

    def subscriber(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return None if r is None else Subscriber(id=r.id, email=r.email, name=r.name, status=r.status)

    # -- editions -------------------------------------------------------------------------------------------------
    def find_edition(self, digest: str, key: str) -> StoredEdition | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(editions).where(editions.c.digest == digest, editions.c.key == key)
            ).first()
        return None if row is None else _stored_edition(row)

    def previous_until(self, digest: str, before: datetime) -> datetime | None:
        """Where the last edition before `before` stopped: the next one starts there."""
        with self.engine.connect() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(editions.c.until)).where(editions.c.digest == digest,
                                                                editions.c.until < _utc(before))
            )
        return None if value is None else _aware(value)

    def create_edition(self, edition: Edition) -> tuple[StoredEdition, bool]:
        """Record the edition and queue one delivery per active subscriber, in one transaction.

        Returns the stored edition and whether this call created it. When the edition exists already (another
        process, an earlier run), nothing is queued again: its audience was fixed when it was created.
        """
        try:
            with self.engine.begin() as conn:
                now = _now()
                edition_id = conn.execute(editions.insert().values(
                    digest=edition.digest, key=edition.key, day=edition.date, since=_utc(edition.since),
                    until=_utc(edition.until), created_at=now,
                    articles=json.dumps([a.to_json() for a in edition.articles], ensure_ascii=False),
                )).inserted_primary_key[0]
                conn.execute(
                    deliveries.insert().from_select(
                        ["edition_id", "subscriber_id", "state", "attempts", "updated_at"],
                        sa.select(sa.literal(edition_id), subscribers.c.id, sa.literal("queued"),
                                  sa.literal(0), sa.literal(now, sa.DateTime(timezone=True)))
                        .where(subscribers.c.status == "active"),
                    )
                )
        except sa.exc.IntegrityError:
            stored = self.find_edition(edition.digest, edition.key)
            assert stored is not None
            return stored, False
        stored = self.find_edition(edition.digest, edition.key)
        assert stored is not None
        return stored, True

    # -- deliveries -----------------------------------------------------------------------------------------------
    def pending_deliveries(self, edition_id: int) -> Iterator[Subscriber]:
        """Subscribers of the edition who have not got it yet (queued, deferred, or cut off mid-send)."""
        query = (
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status)
            .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
            .where(deliveries.c.edition_id == edition_id, deliveries.c.state.in_(PENDING_STATES),
                   subscribers.c.status == "active")
            .order_by(subscribers.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        for r in rows:
            yield Subscriber(id=r.id, email=r.email, name=r.name, status=r.status)

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
            .where(deliveries.c.edition_id == edition_id, deliveries.c.state.in_(PENDING_STATES),
                   subscribers.c.status == "active", subscribers.c.id > after_id)
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
            .where(deliveries.c.edition_id == edition_id, deliveries.c.state.in_(PENDING_STATES),
                   subscribers.c.status == "active")
            .group_by(deliveries.c.state)
        )
        with self.engine.connect() as conn:
            counts = dict(conn.execute(query).all())
        return sum(counts.values()), counts.get("sending", 0)

    def active_subscribers_batch(self, *, after_id: int = 0, limit: int = 500) -> list[Subscriber]:
        query = (
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status)
            .where(subscribers.c.status == "active", subscribers.c.id > after_id)
            .order_by(subscribers.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Subscriber(id=r.id, email=r.email, name=r.name, status=r.status) for r in rows]

    def active_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).where(subscribers.c.status == "active")) or 0)

    def record_deliveries(self, edition_id: int, updates: Sequence[LedgerUpdate]) -> None:
        """Apply many ledger moves in one transaction (one commit for a whole group of results)."""
        with self.ledger(edition_id) as ledger:
            ledger.record(updates)

    @contextmanager
    def ledger(self, edition_id: int) -> Iterator[Ledger]:
        """One connection held for a send's many small commits (checking one out per commit costs more)."""
        with self.engine.connect() as conn:
            yield Ledger(conn, edition_id)

    def sent_times_since(self, since: datetime) -> list[datetime]:
        """When each message of any edition went out since `since`: a relay's hourly limit counts them all."""
        with self.engine.connect() as conn:
            rows = conn.scalars(
                sa.select(deliveries.c.updated_at)
                .where(deliveries.c.state == "sent", deliveries.c.updated_at >= _utc(since))
                .order_by(deliveries.c.updated_at)
            ).all()
        return [_aware(value) for value in rows]

    def delivery_counts(self, edition_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.state, sa.func.count()).where(deliveries.c.edition_id == edition_id)
                .group_by(deliveries.c.state)
            ).all()
        return {state: count for state, count in rows}


# Built once: the sender applies these thousands of times a minute, and building a statement costs more than running it.
_LEDGER_MOVE = (
    deliveries.update()
    .where(deliveries.c.edition_id == sa.bindparam("b_edition"), deliveries.c.subscriber_id == sa.bindparam("b_id"))
    .values(state=sa.bindparam("b_state"), code=sa.bindparam("b_code"), reason=sa.bindparam("b_reason"),
            attempts=deliveries.c.attempts + sa.bindparam("b_tries"),
            updated_at=sa.bindparam("b_now", type_=sa.DateTime(timezone=True)))
)
_MARK_BOUNCED = subscribers.update().where(subscribers.c.id == sa.bindparam("b_id")).values(status="bounced")


class Ledger:
    """Writes ledger moves for one edition over one held connection; each `record` is one transaction.

    The sender commits after nearly every message, and SQLAlchemy's per-execution work (cache lookup, parameter
    processing, transaction bookkeeping) cost more than SQLite's own. So the statement is compiled once for the
    connection's dialect and run on the driver's cursor; it is still the one statement built with SQLAlchemy
    below, and the connection is used for nothing else while the ledger holds it.
    """

    def __init__(self, conn: sa.Connection, edition_id: int) -> None:
        self._conn = conn
        self._edition_id = edition_id
        dialect = conn.dialect
        compiled = _LEDGER_MOVE.compile(dialect=dialect)
        self._sql = str(compiled)
        self._order = compiled.positiontup if compiled.positional else None
        self._timestamp = sa.DateTime(timezone=True).bind_processor(dialect) or (lambda value: value)
        self._driver = conn.connection.dbapi_connection
        assert self._driver is not None

    def record(self, updates: Sequence[LedgerUpdate]) -> None:
        if not updates:
            return
        now = self._timestamp(_now())
        rows = [{"b_edition": self._edition_id, "b_id": u.subscriber_id, "b_state": u.state, "b_code": u.code,
                 "b_reason": u.reason, "b_tries": int(u.attempted), "b_now": now} for u in updates]
        params = rows if self._order is None else [tuple(row[name] for name in self._order) for row in rows]
        bounced = [{"b_id": u.subscriber_id} for u in updates if u.bounce]
        cursor = self._driver.cursor()
        try:
            cursor.executemany(self._sql, params)
            self._driver.commit()
        except BaseException:
            self._driver.rollback()
            raise
        finally:
            cursor.close()
        if bounced:
            # Suppressed from every later edition; this edition's ledger row says why (code and text). Rare, so
            # through SQLAlchemy, after the moves are committed: a crash in between leaves a failed delivery and
            # an active subscriber, which the next edition would try again.
            with self._conn.begin():
                self._conn.execute(_MARK_BOUNCED, bounced)


def _stored_edition(row: sa.Row) -> StoredEdition:
    day: date = row.day
    return StoredEdition(
        id=row.id,
        edition=Edition(
            digest=row.digest,
            key=row.key,
            date=day,
            since=_aware(row.since),
            until=_aware(row.until),
            articles=tuple(Article.from_json(a) for a in json.loads(row.articles)),
            sent=True,
        ),
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets a reader (status, preview) work while a send writes; busy_timeout makes writers wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # In WAL mode NORMAL still survives a killed process (the OS has the pages); only a power cut may lose the
    # last commits, and for the ledger that means a resend, never a lost subscriber. FULL would fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
