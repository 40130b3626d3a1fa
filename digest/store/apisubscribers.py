"""What the JSON API adds to the subscriber side: a subscriber with the organisation's own proof of consent, and
the sign-up still waiting for an address's confirmation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from digest.consent import ACTIVE, PendingSignUp, Profile, SignUp
from digest.store.base import _aware, _utc
from digest.store.schema import pending_signups, subscribers, suppressions
from digest.store.subscribers import SubscriberRows


class ApiSubscriberStore(SubscriberRows):
    """Subscribers added by another system that holds their consent (as `subscribers import` does)."""

    def subscribe_with_consent(self, email: str, *, name: str, municipality: str, topics: Sequence[str],
                               digests: Sequence[str], source: str, consent_text: str, consented_at: datetime,
                               now: datetime) -> tuple[Profile, bool] | None:
        """Add (or extend) an active subscriber whose consent the organisation holds: the consent record keeps the
        organisation's source, words and time. None when the address is suppressed (left, bounced, complained,
        forgotten): only the person can undo that, by confirming a sign-up. The bool: whether it is a new subscriber."""
        at = _utc(now)
        with self._begin() as conn:
            row = self._subscriber_row(conn, email)
            suppressed = conn.scalar(sa.select(sa.func.count()).where(
                suppressions.c.email_hash == self.email_hash(email)))
            if suppressed or (row is not None and row.status != ACTIVE):
                return None
            if row is None:
                subscriber_id = conn.execute(subscribers.insert().values(
                    email=email, name=name, status=ACTIVE, source=source, created_at=at)).inserted_primary_key[0]
                self._set_digests(conn, subscriber_id, digests, at)
                self._set_profile(conn, subscriber_id, municipality, topics, at)
                self._record_consent(conn, subscriber_id, "consent", sorted(digests), source, consent_text,
                                     _utc(consented_at))
                profile = self._profile(conn, subscriber_id)
                assert profile is not None
                return profile, True
            current = self._explicit_digests(conn, row.id)
            added = set() if current is None else set(digests) - set(current)
            if added:
                self._set_digests(conn, row.id, set(current or ()) | added, at)
                self._record_consent(conn, row.id, "consent", sorted(added), source, consent_text,
                                     _utc(consented_at))
            if name and name != row.name:
                conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(name=name))
            profile = self._profile(conn, row.id)
            assert profile is not None
            return profile, False

    def waiting_signup(self, email: str) -> PendingSignUp | None:
        """The newest sign-up of the address that nobody has confirmed yet."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(pending_signups)
                             .where(sa.func.lower(pending_signups.c.email) == email.strip().lower(),
                                    pending_signups.c.confirmed_at.is_(None))
                             .order_by(pending_signups.c.id.desc()).limit(1)).first()
        if r is None:
            return None
        return PendingSignUp(
            id=r.id,
            signup=SignUp(email=r.email, name=r.name, municipality=r.municipality, topics=tuple(json.loads(r.topics)),
                          digests=tuple(json.loads(r.digests)), source=r.source, consent_text=r.consent_text),
            created_at=_aware(r.created_at), confirmed_at=None)
