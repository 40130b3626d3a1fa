"""GDPR: everything stored about an address, and forgetting it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from digest.consent import (
    ACTIVE,
)
from digest.store.base import _iso, _utc
from digest.store.schema import (
    bounce_counters,
    consents,
    deliveries,
    editions,
    pending_signups,
    profiles,
    subscribers,
    subscriptions,
    suppressions,
)
from digest.store.subscribers import SubscriberRows


class GdprStore(SubscriberRows):
    """Export and erase one address."""

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
