"""Editor accounts of the desk: names and password hashes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.store.base import StoreBase, _aware, _utc
from digest.store.schema import (
    editors,
)


class EditorStore(StoreBase):
    """Editors."""

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

