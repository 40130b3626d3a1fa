"""The only SQL: subscribers, editions and the delivery ledger, through SQLAlchemy Core."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.consent import (
    ACTIVE,
    COMPLAINED,
    CONFIRMATION_RESEND_AFTER_SECONDS,
    CONFIRMATION_VALID_DAYS,
    SUPPRESSING_STATUSES,
    UNSUBSCRIBED,
    PendingResult,
    PendingSignUp,
    Profile,
    Segment,
    SignUp,
    UnsubscribeResult,
)
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

# -- the subscriber side (issue 4): per-digest subscriptions, profiles, consent, sign-ups, suppression, bounces --

# Which digests a subscriber receives. A subscriber without any row receives every digest (as every active
# subscriber did before per-digest subscriptions existed); one who chose digests has a row per digest.
subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

profiles = sa.Table(
    "profiles", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("municipality", sa.String(100), nullable=False, default=""),
    sa.Column("topics", sa.Text, nullable=False, default="[]"),  # JSON list of topic keys
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The proof of consent (GDPR art. 7): when, for which digests, from which form or import, and the words agreed to;
# withdrawals are kept beside it.
consents = sa.Table(
    "consents", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False, index=True),
    sa.Column("event", sa.String(20), nullable=False),  # consent | withdrawal
    sa.Column("digests", sa.Text, nullable=False),      # JSON list
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("text", sa.Text, nullable=False, default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

pending_signups = sa.Table(
    "pending_signups", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("municipality", sa.String(100), nullable=False, default=""),
    sa.Column("topics", sa.Text, nullable=False, default="[]"),
    sa.Column("digests", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("consent_text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
)

# Addresses never to be mailed again, as salted hashes: a forgotten address leaves nothing readable behind.
suppressions = sa.Table(
    "suppressions", metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(20), nullable=False),  # unsubscribed | bounced | complained | forgotten
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

bounce_counters = sa.Table(
    "bounce_counters", metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("soft_in_row", sa.Integer, nullable=False, default=0),
    sa.Column("soft_total", sa.Integer, nullable=False, default=0),
    sa.Column("hard_total", sa.Integer, nullable=False, default=0),
    sa.Column("last_soft_message", sa.String(300), nullable=False, default=""),
    sa.Column("last_soft_edition_id", sa.Integer, nullable=True),
    sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
)

PENDING_STATES = ("queued", "sending", "deferred")
# The scheduler's tick resumes an edition with deliveries left in "sending" only after this long: a live run that
# holds the edition's sending lock may still be on them (the lock decides in the end; see Store.sending_lock).
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int
    merged_duplicates: int
    suppressed: tuple[str, ...] = ()  # addresses on the suppression list, not resubscribed


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
    def import_subscribers(self, rows: Iterable[tuple[str, str]], *, source: str, digests: Sequence[str] = (),
                           consent_text: str | None = None) -> ImportReport:
        """Add or update (email, name) rows in one transaction. Statuses are never changed by an import.

        An import counts as consent held by the organisation: each new subscriber gets a consent record naming the
        source and time, and `digests` (none: every digest). Suppressed addresses (unsubscribed, bounced,
        complained, forgotten) are left alone and listed in the report's `suppressed`.
        """
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
        suppressed: list[str] = []
        text = consent_text or f"Samtykke innhentet av organisasjonen; importert fra {source}."
        with self._begin() as conn:
            existing = {
                row.email.lower(): row
                for row in conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                                                  subscribers.c.status))
            }
            on_list = set(conn.scalars(sa.select(suppressions.c.email_hash)))
            # Everyone's explicit digests in one query, not one per existing row (a re-import of a long list).
            explicit: dict[int, set[str]] = {}
            if digests:
                for subscriber_id, digest in conn.execute(sa.select(subscriptions.c.subscriber_id,
                                                                    subscriptions.c.digest)):
                    explicit.setdefault(subscriber_id, set()).add(digest)
            now = _now()
            for email, name in merged.items():
                row = existing.get(email)
                if (row is not None and row.status in SUPPRESSING_STATUSES) or self.email_hash(email) in on_list:
                    suppressed.append(email)
                    continue
                if row is None:
                    subscriber_id = conn.execute(subscribers.insert().values(
                        email=email, name=name, status="active", source=source, created_at=now,
                    )).inserted_primary_key[0]
                    if digests:
                        self._set_digests(conn, subscriber_id, digests, now)
                    self._record_consent(conn, subscriber_id, "consent", sorted(digests) or ["*"], source, text, now)
                    added += 1
                    continue
                changed = False
                current = explicit.get(row.id)
                if digests and current is not None and set(digests) - current:
                    self._set_digests(conn, row.id, current | set(digests), now)
                    self._record_consent(conn, row.id, "consent", sorted(set(digests) - current), source, text,
                                         now)
                    changed = True
                if name and name != row.name:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(name=name))
                    changed = True
                if changed:
                    updated += 1
                else:
                    unchanged += 1
        return ImportReport(added, updated, unchanged, duplicates, tuple(suppressed))

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

    def create_edition(self, edition: Edition, *, segment: Segment | None = None) -> tuple[StoredEdition, bool]:
        """Record the edition and queue one delivery per subscriber of its audience, in one transaction.

        The audience: active subscribers of this digest, inside its segment, whose address is not suppressed.
        Returns the stored edition and whether this call created it. When the edition exists already (another
        process, an earlier run), nothing is queued again: its audience was fixed when it was created.
        """
        try:
            with self._begin() as conn:
                now = _now()
                edition_id = conn.execute(editions.insert().values(
                    digest=edition.digest, key=edition.key, day=edition.date, since=_utc(edition.since),
                    until=_utc(edition.until), created_at=now,
                    articles=json.dumps([a.to_json() for a in edition.articles], ensure_ascii=False),
                )).inserted_primary_key[0]
                audience = self._audience(conn, edition.digest, segment)
                if audience:
                    conn.execute(deliveries.insert(), [
                        {"edition_id": edition_id, "subscriber_id": person.id, "state": "queued", "attempts": 0,
                         "updated_at": now}
                        for person in audience
                    ])
        except sa.exc.IntegrityError:
            stored = self.find_edition(edition.digest, edition.key)
            assert stored is not None
            return stored, False
        stored = self.find_edition(edition.digest, edition.key)
        assert stored is not None
        return stored, True

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

    # -- schedule: editions in progress, missed runs, approvals ------------------------------------------------------
    def last_edition(self, digest: str) -> StoredEdition | None:
        return next(iter(self.sent_editions(digest, limit=1)), None)

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


    # -- the subscriber side: subscriptions, profiles, consent, sign-ups, suppression, bounces, GDPR --------------
    def email_hash(self, email: str) -> str:
        """HMAC-SHA256 of the lower-cased address under a salt generated once for this database."""
        salt = getattr(self, "_suppression_salt", None)
        if salt is None:
            # Read (or made) outside any caller's transaction: a second writer inside one would wait on itself.
            salt = self.set_setting_once("suppression_salt", secrets.token_hex(32)).encode()
            self._suppression_salt = salt
        return hmac.new(salt, email.strip().lower().encode(), hashlib.sha256).hexdigest()

    def _begin(self) -> Any:
        """A write transaction, with the suppression salt loaded first (see email_hash)."""
        self.email_hash("")
        return self.engine.begin()

    def suppression_reason(self, email: str) -> str | None:
        """Why the address must never be mailed (unsubscribed, bounced, complained, forgotten), or None."""
        digest = self.email_hash(email)
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(suppressions.c.reason).where(suppressions.c.email_hash == digest))

    def subscriber_by_email(self, email: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            r = self._subscriber_row(conn, email)
        return None if r is None else Subscriber(id=r.id, email=r.email, name=r.name, status=r.status)

    def profile(self, subscriber_id: int) -> Profile | None:
        with self.engine.connect() as conn:
            return self._profile(conn, subscriber_id)

    def audience(self, digest: str, segment: Segment | None = None) -> list[Subscriber]:
        """Who a new edition of `digest` goes to (what create_edition would queue)."""
        self.email_hash("")
        with self.engine.connect() as conn:
            return self._audience(conn, digest, segment)

    def add_pending_signup(self, signup: SignUp, *, now: datetime) -> PendingResult:
        """Keep a sign-up until it is confirmed. Within the hour after a confirmation was sent to the same address,
        the existing sign-up takes the new choices and no second e-mail is asked for."""
        recent = _utc(now) - timedelta(seconds=CONFIRMATION_RESEND_AFTER_SECONDS)
        values = {
            "email": signup.email, "name": signup.name, "municipality": signup.municipality,
            "topics": json.dumps(list(signup.topics)), "digests": json.dumps(list(signup.digests)),
            "source": signup.source, "consent_text": signup.consent_text,
        }
        with self._begin() as conn:
            existing = conn.scalar(
                sa.select(pending_signups.c.id)
                .where(sa.func.lower(pending_signups.c.email) == signup.email.lower(),
                       pending_signups.c.confirmed_at.is_(None), pending_signups.c.created_at > recent)
                .order_by(pending_signups.c.id.desc()).limit(1)
            )
            if existing is not None:
                conn.execute(pending_signups.update().where(pending_signups.c.id == existing).values(**values))
                return PendingResult(pending_id=existing, send=False)
            pending_id = conn.execute(
                pending_signups.insert().values(**values, created_at=_utc(now))).inserted_primary_key[0]
        return PendingResult(pending_id=pending_id, send=True)

    def discard_pending_signup(self, pending_id: int) -> None:
        """Forget a sign-up whose confirmation e-mail could not be sent, so that trying again sends one."""
        with self.engine.begin() as conn:
            conn.execute(pending_signups.delete().where(pending_signups.c.id == pending_id,
                                                        pending_signups.c.confirmed_at.is_(None)))

    def pending_signup(self, pending_id: int) -> PendingSignUp | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(pending_signups).where(pending_signups.c.id == pending_id)).first()
        if r is None:
            return None
        return PendingSignUp(
            id=r.id,
            signup=SignUp(email=r.email, name=r.name, municipality=r.municipality,
                          topics=tuple(json.loads(r.topics)), digests=tuple(json.loads(r.digests)),
                          source=r.source, consent_text=r.consent_text),
            created_at=_aware(r.created_at),
            confirmed_at=None if r.confirmed_at is None else _aware(r.confirmed_at),
        )

    def confirm_signup(self, pending_id: int, *, now: datetime) -> Profile | None:
        """Turn a pending sign-up into an active subscriber with a consent record; None if it is unknown or expired.

        Following the same link again changes nothing: a person who left afterwards is not brought back by an old
        confirmation e-mail.
        """
        pending = self.pending_signup(pending_id)
        if pending is None:
            return None
        if pending.confirmed_at is not None:
            found = self.subscriber_by_email(pending.signup.email)
            return None if found is None else self.profile(found.id)
        if pending.created_at + timedelta(days=CONFIRMATION_VALID_DAYS) < now:
            return None
        signup = pending.signup
        at = _utc(now)
        with self._begin() as conn:
            row = self._subscriber_row(conn, signup.email)
            if row is None:
                subscriber_id = conn.execute(subscribers.insert().values(
                    email=signup.email, name=signup.name, status=ACTIVE, source=signup.source, created_at=at,
                )).inserted_primary_key[0]
                chosen = set(signup.digests)
            else:
                subscriber_id = row.id
                current = self._explicit_digests(conn, subscriber_id)
                if row.status != ACTIVE:
                    chosen = set(signup.digests)   # coming back: exactly what they asked for now
                elif current is None:
                    chosen = None                  # already receives every digest
                else:
                    chosen = set(current) | set(signup.digests)
                conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                             .values(status=ACTIVE, name=signup.name or row.name))
            if chosen is not None:
                self._set_digests(conn, subscriber_id, chosen, at)
            self._set_profile(conn, subscriber_id, signup.municipality, signup.topics, at)
            # A new, confirmed consent outweighs an earlier "never again".
            conn.execute(suppressions.delete().where(suppressions.c.email_hash == self.email_hash(signup.email)))
            self._record_consent(conn, subscriber_id, "consent", sorted(signup.digests), signup.source,
                                 signup.consent_text, at)
            conn.execute(pending_signups.update().where(pending_signups.c.id == pending_id).values(confirmed_at=at))
            return self._profile(conn, subscriber_id)

    def update_preferences(self, subscriber_id: int, *, name: str, municipality: str, topics: Sequence[str],
                           digests: Sequence[str], all_digests: Sequence[str], source: str, consent_text: str,
                           now: datetime) -> Profile | None:
        """Save a subscriber's choices. Added digests get a consent record, dropped ones a withdrawal; no digest
        left means leaving altogether."""
        at = _utc(now)
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None or row.status != ACTIVE:
                return None
            before = set(self._explicit_digests(conn, subscriber_id) or all_digests)
            after = set(digests)
            conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(name=name))
            self._set_profile(conn, subscriber_id, municipality, tuple(topics), at)
            if not after:
                self._leave(conn, row, UNSUBSCRIBED, source, at)
            else:
                self._set_digests(conn, subscriber_id, after, at)
                if after - before:
                    self._record_consent(conn, subscriber_id, "consent", sorted(after - before), source,
                                         consent_text, at)
                if before - after:
                    self._record_consent(conn, subscriber_id, "withdrawal", sorted(before - after), source, "", at)
            return self._profile(conn, subscriber_id)

    def unsubscribe(self, subscriber_id: int, digest: str, *, all_digests: Sequence[str], source: str,
                    now: datetime) -> UnsubscribeResult | None:
        """Stop `digest` for the subscriber; the last digest going means leaving (and suppression). Idempotent.
        None when no such subscriber exists (a test copy's token, or an address that was forgotten)."""
        at = _utc(now)
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return None
            if row.status != ACTIVE:
                return UnsubscribeResult(subscriber_id=row.id, email=row.email, digest=digest, changed=False,
                                         remaining=())
            explicit = self._explicit_digests(conn, subscriber_id)
            before = set(all_digests) if explicit is None else set(explicit)
            # A token for a digest no longer configured still stops the mail it came with: leave altogether.
            remaining = before - {digest} if digest in before else set()
            if remaining and digest not in before:
                return UnsubscribeResult(subscriber_id=row.id, email=row.email, digest=digest, changed=False,
                                         remaining=tuple(sorted(remaining)))
            if remaining:
                self._set_digests(conn, subscriber_id, remaining, at)
                self._record_consent(conn, subscriber_id, "withdrawal", [digest], source, "", at)
            else:
                self._leave(conn, row, UNSUBSCRIBED, source, at)
            return UnsubscribeResult(subscriber_id=row.id, email=row.email, digest=digest, changed=True,
                                     remaining=tuple(sorted(remaining)))

    def leave(self, subscriber_id: int, *, status: str = UNSUBSCRIBED, source: str, now: datetime) -> bool:
        """Stop every digest and suppress the address. False if the subscriber had already left (or is unknown)."""
        assert status in SUPPRESSING_STATUSES
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return False
            if row.status != ACTIVE:
                # A complaint outranks an earlier unsubscribe in the record, but changes nothing else.
                if status == COMPLAINED and row.status != COMPLAINED:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(status=status))
                return False
            self._leave(conn, row, status, source, _utc(now))
            return True

    def record_bounce(self, email: str, *, hard: bool, message_ref: str, edition_id: int | None,
                      now: datetime) -> str:
        """Count a returned message. Hard → bounced at once; three soft bounces in a row → bounced.

        Returns what happened: "bounced", "counted" (soft, below the limit), "duplicate" (the same returned message
        seen before), "inactive" (not mailed anyway) or "unknown" (no such subscriber). "In a row" means no
        message to the subscriber was sent without bouncing between two soft bounces.
        """
        at = _utc(now)
        with self._begin() as conn:
            row = self._subscriber_row(conn, email)
            if row is None:
                return "unknown"
            counter = conn.execute(
                sa.select(bounce_counters).where(bounce_counters.c.subscriber_id == row.id)).first()
            if counter is None:
                conn.execute(bounce_counters.insert().values(
                    subscriber_id=row.id, soft_in_row=0, soft_total=0, hard_total=0, last_soft_message="",
                    last_at=at))
                counter = conn.execute(
                    sa.select(bounce_counters).where(bounce_counters.c.subscriber_id == row.id)).first()
            assert counter is not None
            if not hard and message_ref and message_ref == counter.last_soft_message:
                return "duplicate"
            if hard:
                conn.execute(bounce_counters.update().where(bounce_counters.c.subscriber_id == row.id)
                             .values(hard_total=counter.hard_total + 1, last_at=at))
                if row.status != ACTIVE:
                    return "inactive"
                self._leave(conn, row, "bounced", "bounce:hard", at)
                return "bounced"
            in_row = counter.soft_in_row
            if in_row and self._sent_between(conn, row.id, counter.last_soft_edition_id, edition_id):
                in_row = 0
            in_row += 1
            conn.execute(bounce_counters.update().where(bounce_counters.c.subscriber_id == row.id).values(
                soft_in_row=in_row, soft_total=counter.soft_total + 1, last_soft_message=message_ref,
                last_soft_edition_id=edition_id if edition_id is not None else counter.last_soft_edition_id,
                last_at=at))
            if row.status != ACTIVE:
                return "inactive"
            if in_row >= 3:
                self._leave(conn, row, "bounced", "bounce:soft", at)
                return "bounced"
            return "counted"

    def edition_id(self, digest: str, key: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(editions.c.id).where(editions.c.digest == digest, editions.c.key == key))

    def export_address(self, email: str) -> dict[str, Any]:
        """Everything stored about an address (GDPR art. 15), as JSON-ready data."""
        with self._begin() as conn:
            row = self._subscriber_row(conn, email)
            suppressed = conn.scalar(sa.select(suppressions.c.reason)
                                     .where(suppressions.c.email_hash == self.email_hash(email)))
            pending = conn.execute(sa.select(pending_signups)
                                   .where(sa.func.lower(pending_signups.c.email) == email.lower())
                                   .order_by(pending_signups.c.id)).all()
            result: dict[str, Any] = {
                "email": email,
                "subscriber": None,
                "suppressed": suppressed,
                "pending_signups": [
                    {"name": p.name, "municipality": p.municipality, "topics": json.loads(p.topics),
                     "digests": json.loads(p.digests), "source": p.source, "consent_text": p.consent_text,
                     "created_at": _iso(p.created_at), "confirmed_at": _iso(p.confirmed_at)}
                    for p in pending
                ],
            }
            if row is None:
                return result
            profile = self._profile(conn, row.id)
            assert profile is not None
            result["subscriber"] = {
                "name": row.name, "status": row.status, "source": row.source, "created_at": _iso(row.created_at),
                "municipality": profile.municipality, "topics": list(profile.topics),
                # null: every digest (a subscriber from before per-digest choices); [] once they have left.
                "digests": [] if row.status != ACTIVE else None if profile.digests is None else list(profile.digests),
            }
            result["consents"] = [
                {"event": c.event, "digests": json.loads(c.digests), "source": c.source, "text": c.text,
                 "at": _iso(c.at)}
                for c in conn.execute(sa.select(consents).where(consents.c.subscriber_id == row.id)
                                      .order_by(consents.c.id))
            ]
            result["deliveries"] = [
                {"digest": d.digest, "edition": d.key, "state": d.state, "attempts": d.attempts, "code": d.code,
                 "reason": d.reason, "updated_at": _iso(d.updated_at)}
                for d in conn.execute(
                    sa.select(editions.c.digest, editions.c.key, deliveries)
                    .join(editions, editions.c.id == deliveries.c.edition_id)
                    .where(deliveries.c.subscriber_id == row.id).order_by(editions.c.id))
            ]
            counter = conn.execute(sa.select(bounce_counters)
                                   .where(bounce_counters.c.subscriber_id == row.id)).first()
            result["bounces"] = None if counter is None else {
                "soft_in_row": counter.soft_in_row, "soft_total": counter.soft_total,
                "hard_total": counter.hard_total, "last_at": _iso(counter.last_at)}
        return result

    def forget_address(self, email: str, *, now: datetime) -> bool:
        """Erase everything about the address (GDPR art. 17) but a salted hash on the suppression list, so it is
        still never mailed. Returns whether anything besides that hash was stored."""
        at = _utc(now)
        with self._begin() as conn:
            row = self._subscriber_row(conn, email)
            found = row is not None
            if row is not None:
                for table in (deliveries, subscriptions, profiles, consents, bounce_counters):
                    conn.execute(table.delete().where(table.c.subscriber_id == row.id))
                conn.execute(subscribers.delete().where(subscribers.c.id == row.id))
            gone = conn.execute(pending_signups.delete()
                                .where(sa.func.lower(pending_signups.c.email) == email.lower()))
            found = found or gone.rowcount > 0
            self._suppress(conn, email, "forgotten", at, replace=True)
        return found

    # The helpers below run inside a caller's transaction.
    def _subscriber_row(self, conn: sa.Connection, email: str) -> sa.Row | None:
        return conn.execute(sa.select(subscribers)
                            .where(sa.func.lower(subscribers.c.email) == email.strip().lower())).first()

    def _explicit_digests(self, conn: sa.Connection, subscriber_id: int) -> tuple[str, ...] | None:
        names = conn.scalars(sa.select(subscriptions.c.digest).where(subscriptions.c.subscriber_id == subscriber_id)
                             .order_by(subscriptions.c.digest)).all()
        return tuple(names) if names else None

    def _set_digests(self, conn: sa.Connection, subscriber_id: int, digests: Iterable[str], at: datetime) -> None:
        wanted = set(digests)
        current = set(self._explicit_digests(conn, subscriber_id) or ())
        if current - wanted:
            conn.execute(subscriptions.delete().where(subscriptions.c.subscriber_id == subscriber_id,
                                                      subscriptions.c.digest.in_(current - wanted)))
        if wanted - current:
            conn.execute(subscriptions.insert(), [{"subscriber_id": subscriber_id, "digest": d, "created_at": at}
                                                  for d in sorted(wanted - current)])

    def _set_profile(self, conn: sa.Connection, subscriber_id: int, municipality: str, topics: Sequence[str],
                     at: datetime) -> None:
        values = {"municipality": municipality, "topics": json.dumps(sorted(set(topics))), "updated_at": at}
        done = conn.execute(profiles.update().where(profiles.c.subscriber_id == subscriber_id).values(**values))
        if done.rowcount == 0:
            conn.execute(profiles.insert().values(subscriber_id=subscriber_id, **values))

    def _profile(self, conn: sa.Connection, subscriber_id: int) -> Profile | None:
        row = conn.execute(
            sa.select(subscribers, profiles.c.municipality, profiles.c.topics)
            .outerjoin(profiles, profiles.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            return None
        return Profile(subscriber_id=row.id, email=row.email, name=row.name, status=row.status,
                       municipality=row.municipality or "", topics=tuple(json.loads(row.topics or "[]")),
                       digests=self._explicit_digests(conn, subscriber_id))

    def _record_consent(self, conn: sa.Connection, subscriber_id: int, event: str, digests: Sequence[str],
                        source: str, text: str, at: datetime) -> None:
        conn.execute(consents.insert().values(subscriber_id=subscriber_id, event=event,
                                              digests=json.dumps(list(digests)), source=source, text=text, at=at))

    def _suppress(self, conn: sa.Connection, email: str, reason: str, at: datetime, *, replace: bool = False) -> None:
        key = self.email_hash(email)
        exists = conn.scalar(sa.select(sa.func.count()).where(suppressions.c.email_hash == key))
        if exists and replace:
            conn.execute(suppressions.update().where(suppressions.c.email_hash == key).values(reason=reason))
        elif not exists:
            conn.execute(suppressions.insert().values(email_hash=key, reason=reason, created_at=at))

    def _leave(self, conn: sa.Connection, row: sa.Row, status: str, source: str, at: datetime) -> None:
        had = self._explicit_digests(conn, row.id)
        conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(status=status))
        conn.execute(subscriptions.delete().where(subscriptions.c.subscriber_id == row.id))
        self._record_consent(conn, row.id, "withdrawal", list(had) if had else ["*"], source, "", at)
        self._suppress(conn, row.email, status, at)

    def _sent_between(self, conn: sa.Connection, subscriber_id: int, after: int | None, before: int | None) -> bool:
        """Did an edition between two soft bounces reach the subscriber without bouncing (so the row is broken)?"""
        if after is None or before is None:
            return False
        return bool(conn.scalar(
            sa.select(sa.func.count()).select_from(deliveries)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.state == "sent",
                   deliveries.c.edition_id > after, deliveries.c.edition_id < before)))

    def _audience(self, conn: sa.Connection, digest: str, segment: Segment | None) -> list[Subscriber]:
        rows = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status,
                      profiles.c.municipality, profiles.c.topics)
            .outerjoin(profiles, profiles.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.status == ACTIVE, _receives_digest(sa.literal(digest)))
            .order_by(subscribers.c.id)
        ).all()
        # Suppression is checked by hash here too, not only by status: an address on the list is never queued,
        # whatever put it back into the subscribers table.
        suppressed = set(conn.scalars(sa.select(suppressions.c.email_hash)))
        chosen: list[Subscriber] = []
        for r in rows:
            if segment is not None and not segment.admits(r.municipality or "", tuple(json.loads(r.topics or "[]"))):
                continue
            if suppressed and self.email_hash(r.email) in suppressed:
                continue
            chosen.append(Subscriber(id=r.id, email=r.email, name=r.name, status=r.status))
        return chosen

    # -- web sources: HTTP cache, first-seen times, articles sent before -------------------------------------------
    def cached_response(self, url: str) -> CachedResponse | None:
        """The last full answer for `url`, with the validators that let the server answer 304 next time."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(http_cache).where(http_cache.c.url == url)).first()
        if row is None:
            return None
        return CachedResponse(url=row.url, final_url=row.final_url, etag=row.etag, last_modified=row.last_modified,
                              content_type=row.content_type, body=row.body, fetched_at=_aware(row.fetched_at))

    def remember_responses(self, responses: Iterable[CachedResponse]) -> None:
        """Keep these answers (one transaction), replacing what was cached for the same URLs."""
        with self.engine.begin() as conn:
            for response in responses:
                values = {"final_url": response.final_url, "etag": response.etag,
                          "last_modified": response.last_modified, "content_type": response.content_type,
                          "body": response.body, "fetched_at": _utc(response.fetched_at)}
                _upsert(conn, http_cache, {"url": response.url, **values}, update=list(values))

    def first_seen(self, urls: Iterable[str], now: datetime) -> dict[str, datetime]:
        """When each URL was first seen, recording `now` for those never seen before.

        Undated articles get this as their date, so an item does not look new again in every edition.
        """
        wanted = set(urls)
        if not wanted:
            return {}
        with self.engine.begin() as conn:
            known = {
                row.url: _aware(row.first_seen)
                for chunk in _chunks(sorted(wanted), 500)
                for row in conn.execute(sa.select(seen_articles).where(seen_articles.c.url.in_(chunk)))
            }
            missing = sorted(wanted - set(known))
            for url in missing:
                # Another process may record the same URL meanwhile: keep whichever time got there first.
                _upsert(conn, seen_articles, {"url": url, "first_seen": _utc(now)}, update=[])
            for chunk in _chunks(missing, 500):
                for row in conn.execute(sa.select(seen_articles).where(seen_articles.c.url.in_(chunk))):
                    known[row.url] = _aware(row.first_seen)
        return known

    def sent_articles(self, digest: str, *, before: date) -> list[Article]:
        """Every article of the digest's editions dated before `before`: they must never return."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(editions.c.articles).where(editions.c.digest == digest, editions.c.day < before)
            ).all()
        return [Article.from_json(item) for row in rows for item in json.loads(row.articles)]

    # -- the editors' desk (issue 7): sent editions for the archive, editor accounts ---------------------------------
    def sent_editions(self, digest: str, *, before: date | None = None, limit: int | None = None
                      ) -> list[StoredEdition]:
        """The digest's editions, newest first (optionally only those dated before `before`)."""
        query = sa.select(editions).where(editions.c.digest == digest)
        if before is not None:
            query = query.where(editions.c.day < before)
        query = query.order_by(editions.c.day.desc(), editions.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_stored_edition(row) for row in conn.execute(query)]

    def save_editor(self, name: str, password_hash: str, *, now: datetime, replace: bool = False) -> bool:
        """Add an editor (or, with `replace`, set a new password). Returns False when the name is taken."""
        with self.engine.begin() as conn:
            exists = conn.scalar(sa.select(sa.func.count()).where(editors.c.name == name))
            if exists and not replace:
                return False
            if exists:
                conn.execute(editors.update().where(editors.c.name == name)
                             .values(password_hash=password_hash, updated_at=_utc(now)))
            else:
                conn.execute(editors.insert().values(name=name, password_hash=password_hash, created_at=_utc(now),
                                                     updated_at=_utc(now)))
        return True

    def editor_password_hash(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(editors.c.password_hash).where(editors.c.name == name))

    def list_editors(self) -> list[tuple[str, datetime]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(editors.c.name, editors.c.created_at).order_by(editors.c.name)).all()
        return [(row.name, _aware(row.created_at)) for row in rows]

    def remove_editor(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(editors.delete().where(editors.c.name == name)).rowcount > 0


def _approval(row: sa.Row) -> ApprovalRecord:
    return ApprovalRecord(
        digest=row.digest, key=row.key, scheduled_for=_aware(row.scheduled_for), state=row.state,
        auto_at=None if row.auto_at is None else _aware(row.auto_at), decided_by=row.decided_by,
        created_at=_aware(row.created_at),
    )


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


def _receives_digest(digest: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The subscriber has a subscription to `digest`, or no subscription rows at all (which means every digest)."""
    mine = subscriptions.c.subscriber_id == subscribers.c.id
    return sa.or_(
        sa.exists().where(mine, subscriptions.c.digest == digest),
        ~sa.exists().where(mine),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()

# -- web sources --------------------------------------------------------------------------------------------------
http_cache = sa.Table(
    "http_cache", metadata,
    sa.Column("url", sa.String(2000), primary_key=True),
    sa.Column("final_url", sa.String(2000), nullable=False),
    sa.Column("etag", sa.String(500), nullable=True),
    sa.Column("last_modified", sa.String(100), nullable=True),
    sa.Column("content_type", sa.String(200), nullable=True),
    # The body is kept so that a 304 can still yield the articles (a preview may have fetched the feed first).
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)

seen_articles = sa.Table(
    "seen_articles", metadata,
    sa.Column("url", sa.String(2000), primary_key=True),  # the canonical URL
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

# Editors of the desk: a name and a salted scrypt hash (digest/editors.py), never the password itself.
editors = sa.Table(
    "editors", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, kw_only=True)
class CachedResponse:
    url: str
    final_url: str
    etag: str | None
    last_modified: str | None
    content_type: str | None
    body: bytes
    fetched_at: datetime


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _upsert(conn: sa.Connection, table: sa.Table, values: dict[str, object], *, update: list[str]) -> None:
    """Insert a row, or on a primary-key clash update the `update` columns (none: keep the existing row)."""
    name = conn.dialect.name
    if name in {"sqlite", "postgresql"}:
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(table).values(**values)
        keys = [column.name for column in table.primary_key]
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={column: statement.excluded[column] for column in update})
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        conn.execute(statement)
        return
    key = {column.name: values[column.name] for column in table.primary_key}
    where = [table.c[column] == value for column, value in key.items()]
    if conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar():
        if update:
            conn.execute(table.update().where(*where).values({column: values[column] for column in update}))
    else:
        conn.execute(table.insert().values(**values))
