"""Finding subscribers: by status, digest and part of the address or name, a page at a time (keyset on the
address, which has a unique index, so page 1 000 costs what page 1 does)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from digest.store.base import _aware
from digest.store.schema import profiles, subscribers, subscriptions
from digest.store.subscribers import SubscriberRows, _receives_digest


@dataclass(frozen=True, kw_only=True)
class SubscriberRow:
    id: int
    email: str
    name: str
    status: str
    digests: tuple[str, ...] | None  # None: every digest
    municipality: str
    topics: tuple[str, ...]
    created_at: datetime


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.casefold()}%"


class SubscriberSearchStore(SubscriberRows):
    def search_subscribers(self, *, status: str | None = None, digest: str | None = None, search: str | None = None,
                           after: str | None = None, limit: int | None = None) -> list[SubscriberRow]:
        """Subscribers ordered by address; `after` an address to continue after (the last of the previous page)."""
        query = (sa.select(subscribers, profiles.c.municipality, profiles.c.topics)
                 .outerjoin(profiles, profiles.c.subscriber_id == subscribers.c.id).order_by(subscribers.c.email))
        if status:
            query = query.where(subscribers.c.status == status)
        if digest:
            query = query.where(_receives_digest(sa.literal(digest)))
        if search and search.strip():
            pattern = _like_pattern(search.strip())
            query = query.where(sa.or_(sa.func.lower(subscribers.c.email).like(pattern, escape="\\"),
                                       sa.func.lower(subscribers.c.name).like(pattern, escape="\\")))
        if after is not None:
            query = query.where(subscribers.c.email > after)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            ids = [row.id for row in rows]
            chosen: dict[int, list[str]] = {}
            for subscriber_id, name in conn.execute(
                    sa.select(subscriptions.c.subscriber_id, subscriptions.c.digest)
                    .where(subscriptions.c.subscriber_id.in_(ids)).order_by(subscriptions.c.digest)):
                chosen.setdefault(subscriber_id, []).append(name)
        return [SubscriberRow(id=row.id, email=row.email, name=row.name, status=row.status,
                              digests=tuple(chosen[row.id]) if row.id in chosen else None,
                              municipality=row.municipality or "", topics=tuple(json.loads(row.topics or "[]")),
                              created_at=_aware(row.created_at)) for row in rows]
