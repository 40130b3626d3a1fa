"""The only SQL: subscribers, editions and the delivery ledger, through SQLAlchemy Core."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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

# An edition that waits for an editor: pending → approved (by an editor or after auto_after) → sent; pending or
# held → expired when it is too late to send. `held` stops auto_after; `digest approve` still releases it.
approvals = sa.Table(
    "approvals", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("auto_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("decided_by", sa.String(20), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Scheduled runs skipped because they were later than misfire_grace: kept so each is logged once, and shown.
missed_runs = sa.Table(
    "missed_runs", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("scheduled_for", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("late_seconds", sa.Integer, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

PENDING_STATES = ("queued", "sending", "deferred")
# A delivery left in "sending" longer than this belongs to a process that died mid-send; another may take it over.
# Far longer than one SMTP transaction may take (the client times out after 30 s per command).
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int
    merged_duplicates: int


@dataclass(frozen=True)
class StoredEdition:
    id: int
    edition: Edition


@dataclass(frozen=True, kw_only=True)
class ApprovalRecord:
    """One edition's place in the approval gate."""

    digest: str
    key: str
    scheduled_for: datetime
    state: str
    auto_at: datetime | None
    decided_by: str | None
    created_at: datetime


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
        # Insert first, read after: a read-then-write transaction can lose a race on SQLite (a stale snapshot
        # cannot be upgraded to a writer), while a plain INSERT just waits for the lock and hits the primary key.
        try:
            with self.engine.begin() as conn:
                conn.execute(settings_table.insert().values(key=key, value=value))
            return value
        except sa.exc.IntegrityError:
            stored = self.setting(key)
            assert stored is not None
            return stored

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

    def claim_delivery(self, edition_id: int, subscriber_id: int, *, now: datetime | None = None) -> bool:
        """Mark the delivery "sending" if nobody else has it; True when this call won it.

        One conditional UPDATE, so of two processes racing for the same delivery exactly one sees a changed row:
        SQLite serialises writers, PostgreSQL re-checks the WHERE clause on the locked row. A "sending" row older
        than CLAIM_LEASE was left by a process that died mid-send and may be taken over (one possible duplicate,
        never a lost subscriber).
        """
        now = now or _now()
        stale = _utc(now - CLAIM_LEASE)
        with self.engine.begin() as conn:
            result = conn.execute(
                deliveries.update()
                .where(deliveries.c.edition_id == edition_id, deliveries.c.subscriber_id == subscriber_id,
                       sa.or_(deliveries.c.state.in_(("queued", "deferred")),
                              sa.and_(deliveries.c.state == "sending", deliveries.c.updated_at < stale)))
                .values(state="sending", attempts=deliveries.c.attempts + 1, updated_at=_utc(now))
            )
            return result.rowcount == 1

    def delivery_counts(self, edition_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.state, sa.func.count()).where(deliveries.c.edition_id == edition_id)
                .group_by(deliveries.c.state)
            ).all()
        return {state: count for state, count in rows}

    # -- schedule: editions in progress, missed runs, approvals ------------------------------------------------------
    def last_edition(self, digest: str) -> StoredEdition | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(editions).where(editions.c.digest == digest)
                .order_by(editions.c.day.desc(), editions.c.id.desc()).limit(1)
            ).first()
        return None if row is None else _stored_edition(row)

    def unfinished_editions(self, digest: str, *, started_after: datetime,
                            now: datetime | None = None) -> list[StoredEdition]:
        """Editions started after `started_after` with deliveries still queued or cut off mid-send (lease over)."""
        now = now or _now()
        open_delivery = sa.exists().where(
            deliveries.c.edition_id == editions.c.id,
            sa.or_(deliveries.c.state == "queued",
                   sa.and_(deliveries.c.state == "sending", deliveries.c.updated_at < _utc(now - CLAIM_LEASE))),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(editions).where(editions.c.digest == digest, editions.c.created_at > _utc(started_after),
                                          open_delivery).order_by(editions.c.day)
            ).all()
        return [_stored_edition(row) for row in rows]

    def last_success(self, digest: str) -> datetime | None:
        """When the latest delivery of the digest reached a server (or the outbox)."""
        with self.engine.connect() as conn:
            value = conn.scalar(
                sa.select(sa.func.max(deliveries.c.updated_at))
                .join(editions, editions.c.id == deliveries.c.edition_id)
                .where(editions.c.digest == digest, deliveries.c.state == "sent")
            )
        return None if value is None else _aware(value)

    def record_missed_run(self, digest: str, scheduled_for: datetime, late: timedelta) -> bool:
        """Remember a skipped run; False when it was recorded before (so it is logged once, not every hour)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(missed_runs.insert().values(
                    digest=digest, scheduled_for=_utc(scheduled_for), late_seconds=int(late.total_seconds()),
                    recorded_at=_now()))
        except sa.exc.IntegrityError:
            return False
        return True

    def last_missed_run(self, digest: str) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.scalar(sa.select(sa.func.max(missed_runs.c.scheduled_for))
                                .where(missed_runs.c.digest == digest))
        return None if value is None else _aware(value)

    def request_approval(self, digest: str, key: str, *, scheduled_for: datetime,
                         auto_at: datetime | None) -> tuple[ApprovalRecord, bool]:
        """Put the edition in the approval gate; the bool says whether this call did (and so sends the preview)."""
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(approvals.insert().values(
                    digest=digest, key=key, scheduled_for=_utc(scheduled_for), state="pending",
                    auto_at=None if auto_at is None else _utc(auto_at), created_at=now, updated_at=now))
            created = True
        except sa.exc.IntegrityError:
            created = False
        record = self.approval(digest, key)
        assert record is not None
        return record, created

    def approval(self, digest: str, key: str) -> ApprovalRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(approvals).where(approvals.c.digest == digest,
                                                          approvals.c.key == key)).first()
        return None if row is None else _approval(row)

    def approvals(self, digest: str | None = None, *, states: Iterable[str] = ("pending", "held", "approved")
                  ) -> list[ApprovalRecord]:
        query = sa.select(approvals).where(approvals.c.state.in_(tuple(states)))
        if digest is not None:
            query = query.where(approvals.c.digest == digest)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(approvals.c.scheduled_for)).all()
        return [_approval(row) for row in rows]

    def decide_approval(self, digest: str, key: str, *, to: str, allowed_from: Iterable[str],
                        by: str | None = None) -> bool:
        """Move the approval to state `to` if it is in one of `allowed_from`; True when this call moved it."""
        values: dict[str, object] = {"state": to, "updated_at": _now()}
        if by is not None:
            values["decided_by"] = by
        with self.engine.begin() as conn:
            result = conn.execute(
                approvals.update().where(approvals.c.digest == digest, approvals.c.key == key,
                                         approvals.c.state.in_(tuple(allowed_from))).values(**values))
            return result.rowcount == 1


def _approval(row: sa.Row) -> ApprovalRecord:
    return ApprovalRecord(
        digest=row.digest, key=row.key, scheduled_for=_aware(row.scheduled_for), state=row.state,
        auto_at=None if row.auto_at is None else _aware(row.auto_at), decided_by=row.decided_by,
        created_at=_aware(row.created_at),
    )


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
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
