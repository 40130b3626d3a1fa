"""Sessions of the editors' desk, kept server-side: logging out or removing an editor ends them at once.

The signed cookie alone cannot be taken back: a copy saved before `/redaksjon/logg-ut` would still open the desk
for its eight hours. So the cookie carries a random session id, and a session counts only while its row is here
(and its editor still exists). Only a SHA-256 of the id is stored: the database alone opens no session.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.store.base import StoreBase, _utc
from digest.store.schema import editors, metadata

desk_sessions = sa.Table(
    "desk_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("editor", sa.String(100), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


class DeskSessionStore(StoreBase):
    """Open desk sessions by the hash of their id."""

    def start_desk_session(self, id_hash: str, editor: str, *, now: datetime, expires_at: datetime) -> None:
        with self.engine.begin() as conn:
            # Expired sessions go whenever a new one starts, so the table holds only the open ones.
            conn.execute(desk_sessions.delete().where(desk_sessions.c.expires_at <= _utc(now)))
            conn.execute(desk_sessions.insert().values(id_hash=id_hash, editor=editor, created_at=_utc(now),
                                                       expires_at=_utc(expires_at)))

    def desk_session_editor(self, id_hash: str, *, now: datetime) -> str | None:
        """The editor of an open session, or None (ended, expired, or the editor was removed)."""
        query = (sa.select(desk_sessions.c.editor)
                 .join(editors, editors.c.name == desk_sessions.c.editor)
                 .where(desk_sessions.c.id_hash == id_hash, desk_sessions.c.expires_at > _utc(now)))
        with self.engine.connect() as conn:
            return conn.scalar(query)

    def end_desk_session(self, id_hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(desk_sessions.delete().where(desk_sessions.c.id_hash == id_hash))

    def end_desk_sessions(self, editor: str) -> int:
        """End every session of the editor; how many were open."""
        with self.engine.begin() as conn:
            return conn.execute(desk_sessions.delete().where(desk_sessions.c.editor == editor)).rowcount
