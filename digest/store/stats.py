"""The figures behind `digest stats` and the desk's numbers page, read from what the product already keeps: the
delivery ledger, the consent record (consents and withdrawals, with their source and time), subscriber statuses.
No tracking: nothing here knows who opened or clicked anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from digest.consent import ACTIVE, BOUNCED
from digest.store.base import _aware, _utc
from digest.store.schema import consents, deliveries, editions, subscribers
from digest.store.subscribers import SubscriberRows, _receives_digest


@dataclass(frozen=True, kw_only=True)
class EditionCounts:
    """One edition's ledger and what its recipients did in the days after it was sent."""

    key: str
    day: date
    sent_at: datetime  # when its send started (the edition was stored with its audience)
    states: dict[str, int]
    bounced: int
    complaints: int
    unsubscribes: int


@dataclass(frozen=True, kw_only=True)
class ListEvent:
    """A subscriber joining (consent) or leaving (withdrawal) a digest, at a moment."""

    at: datetime
    joined: bool


def _covers(digests_json: str, digest: str) -> bool:
    names = json.loads(digests_json or "[]")
    return digest in names or "*" in names


class StatsStore(SubscriberRows):
    """Counts for the numbers; each query reads one table or one join, grouped in SQL where it can be."""

    def edition_counts(self, digest: str, *, window: timedelta, limit: int | None = None) -> list[EditionCounts]:
        """The digest's editions, newest first, each with its delivery states and, among its recipients, who
        bounced, complained or unsubscribed from this digest within `window` of the send."""
        query = (sa.select(editions.c.id, editions.c.key, editions.c.day, editions.c.created_at)
                 .where(editions.c.digest == digest).order_by(editions.c.day.desc(), editions.c.id.desc()))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            ids = [row.id for row in rows]
            states: dict[int, dict[str, int]] = {edition_id: {} for edition_id in ids}
            for edition_id, state, count in conn.execute(
                    sa.select(deliveries.c.edition_id, deliveries.c.state, sa.func.count())
                    .where(deliveries.c.edition_id.in_(ids)).group_by(deliveries.c.edition_id, deliveries.c.state)):
                states[edition_id][state] = count
            # A "no such user" refusal during the send marks the subscriber bounced without a withdrawal record:
            # the ledger's failed row is the trace.
            refused = {(edition_id, subscriber_id) for edition_id, subscriber_id in conn.execute(
                sa.select(deliveries.c.edition_id, deliveries.c.subscriber_id)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.edition_id.in_(ids), deliveries.c.state == "failed",
                       subscribers.c.status == BOUNCED))}
            withdrawals = conn.execute(
                sa.select(deliveries.c.edition_id, consents.c.subscriber_id, consents.c.source, consents.c.digests,
                          consents.c.at, editions.c.created_at)
                .join(consents, consents.c.subscriber_id == deliveries.c.subscriber_id)
                .join(editions, editions.c.id == deliveries.c.edition_id)
                .where(deliveries.c.edition_id.in_(ids), consents.c.event == "withdrawal",
                       consents.c.at >= editions.c.created_at)).all()
        bounced: dict[int, set[int]] = {edition_id: set() for edition_id in ids}
        complained: dict[int, set[int]] = {edition_id: set() for edition_id in ids}
        left: dict[int, set[int]] = {edition_id: set() for edition_id in ids}
        for edition_id, subscriber_id in refused:
            bounced[edition_id].add(subscriber_id)
        for row in withdrawals:
            if _aware(row.at) >= _aware(row.created_at) + window or not _covers(row.digests, digest):
                continue
            if row.source.startswith("bounce:"):
                bounced[row.edition_id].add(row.subscriber_id)
            elif row.source == "complaint":
                complained[row.edition_id].add(row.subscriber_id)
            else:
                left[row.edition_id].add(row.subscriber_id)
        return [EditionCounts(key=row.key, day=row.day, sent_at=_aware(row.created_at), states=states[row.id],
                              bounced=len(bounced[row.id]), complaints=len(complained[row.id]),
                              unsubscribes=len(left[row.id] - bounced[row.id] - complained[row.id]))
                for row in rows]

    def list_events(self, digest: str, *, until: datetime) -> list[ListEvent]:
        """Every consent to and withdrawal from the digest up to `until`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(consents.c.event, consents.c.digests, consents.c.at)
                                .where(consents.c.at <= _utc(until)).order_by(consents.c.at)).all()
            # Those a server refused for good ("no such user") left without a withdrawal record: the failed
            # delivery of this digest is when.
            withdrew = sa.exists().where(consents.c.subscriber_id == subscribers.c.id, consents.c.event == "withdrawal")
            refused = conn.execute(
                sa.select(sa.func.max(deliveries.c.updated_at))
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .join(editions, editions.c.id == deliveries.c.edition_id)
                .where(editions.c.digest == digest, deliveries.c.state == "failed", subscribers.c.status == BOUNCED,
                       ~withdrew, deliveries.c.updated_at <= _utc(until))
                .group_by(deliveries.c.subscriber_id)).scalars().all()
        events = [ListEvent(at=_aware(row.at), joined=row.event == "consent") for row in rows
                  if _covers(row.digests, digest)]
        events += [ListEvent(at=_aware(at), joined=False) for at in refused]
        return sorted(events, key=lambda event: event.at)

    def active_count(self, digest: str) -> int:
        """Active subscribers who receive the digest (before any segment)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(subscribers)
                                   .where(subscribers.c.status == ACTIVE, _receives_digest(sa.literal(digest))))
                       or 0)
