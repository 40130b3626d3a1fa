"""Returned mail: hard and soft bounces counted per subscriber."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from digest.consent import (
    ACTIVE,
)
from digest.store.base import _utc
from digest.store.schema import (
    bounce_counters,
    deliveries,
)
from digest.store.subscribers import SubscriberRows
from digest.subscription_rules import count_soft_bounce


class BounceStore(SubscriberRows):
    """Bounce counters."""

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
            soft = count_soft_bounce(counter.soft_in_row, delivered_since_last=bool(counter.soft_in_row) and
                                     self._sent_between(conn, row.id, counter.last_soft_edition_id, edition_id))
            in_row = soft.in_row
            conn.execute(bounce_counters.update().where(bounce_counters.c.subscriber_id == row.id).values(
                soft_in_row=in_row, soft_total=counter.soft_total + 1, last_soft_message=message_ref,
                last_soft_edition_id=edition_id if edition_id is not None else counter.last_soft_edition_id,
                last_at=at))
            if row.status != ACTIVE:
                return "inactive"
            if soft.bounced:
                self._leave(conn, row, "bounced", "bounce:soft", at)
                return "bounced"
            return "counted"

    def _sent_between(self, conn: sa.Connection, subscriber_id: int, after: int | None, before: int | None) -> bool:
        """Did an edition between two soft bounces reach the subscriber without bouncing (so the row is broken)?"""
        if after is None or before is None:
            return False
        return bool(conn.scalar(
            sa.select(sa.func.count()).select_from(deliveries)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.state == "sent",
                   deliveries.c.edition_id > after, deliveries.c.edition_id < before)))
