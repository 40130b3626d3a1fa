"""The only SQL: subscribers, editions and the delivery ledger, through SQLAlchemy Core."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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

    def delivery_counts(self, edition_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.state, sa.func.count()).where(deliveries.c.edition_id == edition_id)
                .group_by(deliveries.c.state)
            ).all()
        return {state: count for state, count in rows}

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
