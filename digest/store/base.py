"""What every part of the store shares: the engine, settings, the suppression salt, time and upsert helpers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.errors import ConfigError
from digest.store.schema import (
    metadata,
    settings_table,
    suppressions,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # Stored as UTC: SQLite keeps no offset, so a local time would silently shift when read back.
    return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()


class StoreBase:
    """The engine and what every area of the store needs from it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Self:
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
