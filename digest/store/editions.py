"""Editions: stored once per digest and key, with their audience queued, and what they held."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from digest.consent import (
    Segment,
)
from digest.models import Article, Edition
from digest.store.base import _aware, _now, _utc
from digest.store.ledger import CLAIM_LEASE
from digest.store.schema import (
    deliveries,
    editions,
    subscribers,
)
from digest.store.subscribers import SubscriberRows, _receives_digest


@dataclass(frozen=True)
class StoredEdition:
    id: int
    edition: Edition



class EditionStore(SubscriberRows):
    """Editions and their delivery counts."""

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

    def edition_id(self, digest: str, key: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(editions.c.id).where(editions.c.digest == digest, editions.c.key == key))

    def sent_articles(self, digest: str, *, before: date) -> list[Article]:
        """Every article of the digest's editions dated before `before`: they must never return."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(editions.c.articles).where(editions.c.digest == digest, editions.c.day < before)
            ).all()
        return [Article.from_json(item) for row in rows for item in json.loads(row.articles)]

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


    def refused_count(self, edition_id: int) -> int:
        """Subscribers still with us whom a server refused this edition for good (5xx): they do not have it."""
        query = (sa.select(sa.func.count()).select_from(deliveries)
                 .join(subscribers, deliveries.c.subscriber_id == subscribers.c.id).where(_refused_for(edition_id)))
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def requeue_refused(self, edition_id: int) -> int:
        """Queue the refused deliveries again (`digest send --retry-failed`); returns how many."""
        still_with_us = sa.select(subscribers.c.id).where(
            subscribers.c.id == deliveries.c.subscriber_id, _refused_for(edition_id)).exists()
        with self.engine.begin() as conn:
            done = conn.execute(deliveries.update().where(deliveries.c.edition_id == edition_id, still_with_us)
                                .values(state="queued", updated_at=_now()))
        return int(done.rowcount or 0)


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


def _refused_for(edition_id: int) -> sa.ColumnElement[bool]:
    """Failed deliveries of the edition to subscribers who are still active and still receive its digest (a
    bounced address is no longer active, so it is not counted: it must not be retried)."""
    return sa.and_(
        deliveries.c.edition_id == edition_id,
        deliveries.c.state == "failed",
        subscribers.c.status == "active",
        _receives_digest(sa.select(editions.c.digest).where(editions.c.id == edition_id).scalar_subquery()),
    )
