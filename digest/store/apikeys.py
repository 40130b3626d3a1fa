"""API keys (digest/api_keys.py): their name, scopes and SHA-256, never the key itself."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.api_keys import ApiKey
from digest.store.base import StoreBase, _aware, _utc
from digest.store.schema import metadata

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("name", sa.String(60), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.Text, nullable=False),  # space-separated
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    # A revoked key stays listed (who had access, until when) but no longer opens anything.
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


def _key(row: sa.Row) -> ApiKey:
    return ApiKey(name=row.name, scopes=tuple(row.scopes.split()), created_at=_aware(row.created_at),
                  last_used_at=None if row.last_used_at is None else _aware(row.last_used_at),
                  revoked_at=None if row.revoked_at is None else _aware(row.revoked_at))


class ApiKeyStore(StoreBase):
    """Adding, listing, revoking and checking API keys."""

    def add_api_key(self, name: str, key_hash: str, scopes: tuple[str, ...], *, now: datetime) -> bool:
        """Store a new key; False when the name has an active key already. A revoked key's name can be reused."""
        values = {"key_hash": key_hash, "scopes": " ".join(scopes), "created_at": _utc(now), "last_used_at": None,
                  "revoked_at": None}
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
            if row is not None and row.revoked_at is None:
                return False
            if row is None:
                conn.execute(api_keys.insert().values(name=name, **values))
            else:
                conn.execute(api_keys.update().where(api_keys.c.name == name).values(**values))
        return True

    def api_keys(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(sa.select(api_keys).order_by(api_keys.c.name))]

    def revoke_api_key(self, name: str, *, now: datetime) -> bool:
        """False when there is no active key of that name."""
        with self.engine.begin() as conn:
            done = conn.execute(api_keys.update().where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=_utc(now)))
        return bool(done.rowcount)

    def api_key_by_hash(self, key_hash: str, *, now: datetime | None = None) -> ApiKey | None:
        """The active key with this hash (None: unknown or revoked); with `now`, its use is recorded."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash,
                                                         api_keys.c.revoked_at.is_(None))).first()
            if row is None:
                return None
            last = None if row.last_used_at is None else _aware(row.last_used_at)
            # Written at most once a minute: a busy client must not turn every request into a write.
            if now is not None and (last is None or (now - last).total_seconds() >= 60):
                conn.execute(api_keys.update().where(api_keys.c.name == row.name).values(last_used_at=_utc(now)))
        return _key(row)
