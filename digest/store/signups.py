"""Sign-ups, confirmations, preferences, unsubscribing and leaving: the consent record as it changes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from digest.consent import (
    ACTIVE,
    COMPLAINED,
    CONFIRMATION_RESEND_AFTER_SECONDS,
    CONFIRMATION_VALID_DAYS,
    SUPPRESSING_STATUSES,
    UNSUBSCRIBED,
    PendingResult,
    PendingSignUp,
    Profile,
    SignUp,
    UnsubscribeResult,
)
from digest.store.base import _aware, _utc
from digest.store.schema import (
    pending_signups,
    subscribers,
    suppressions,
)
from digest.store.subscribers import SubscriberRows
from digest.subscription_rules import after_unsubscribing, digests_after_confirming


class SignupStore(SubscriberRows):
    """Pending sign-ups and every change a subscriber makes."""

    def add_pending_signup(self, signup: SignUp, *, now: datetime) -> PendingResult:
        """Keep a sign-up until it is confirmed. Within the hour after a confirmation was sent to the same address,
        the existing sign-up takes the new choices and no second e-mail is asked for."""
        recent = _utc(now) - timedelta(seconds=CONFIRMATION_RESEND_AFTER_SECONDS)
        values = {
            "email": signup.email, "name": signup.name, "municipality": signup.municipality,
            "topics": json.dumps(list(signup.topics)), "digests": json.dumps(list(signup.digests)),
            "source": signup.source, "consent_text": signup.consent_text,
        }
        with self._begin() as conn:
            existing = conn.scalar(
                sa.select(pending_signups.c.id)
                .where(sa.func.lower(pending_signups.c.email) == signup.email.lower(),
                       pending_signups.c.confirmed_at.is_(None), pending_signups.c.created_at > recent)
                .order_by(pending_signups.c.id.desc()).limit(1)
            )
            if existing is not None:
                conn.execute(pending_signups.update().where(pending_signups.c.id == existing).values(**values))
                return PendingResult(pending_id=existing, send=False)
            pending_id = conn.execute(
                pending_signups.insert().values(**values, created_at=_utc(now))).inserted_primary_key[0]
        return PendingResult(pending_id=pending_id, send=True)

    def discard_pending_signup(self, pending_id: int) -> None:
        """Forget a sign-up whose confirmation e-mail could not be sent, so that trying again sends one."""
        with self.engine.begin() as conn:
            conn.execute(pending_signups.delete().where(pending_signups.c.id == pending_id,
                                                        pending_signups.c.confirmed_at.is_(None)))

    def pending_signup(self, pending_id: int) -> PendingSignUp | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(pending_signups).where(pending_signups.c.id == pending_id)).first()
        if r is None:
            return None
        return PendingSignUp(
            id=r.id,
            signup=SignUp(email=r.email, name=r.name, municipality=r.municipality,
                          topics=tuple(json.loads(r.topics)), digests=tuple(json.loads(r.digests)),
                          source=r.source, consent_text=r.consent_text),
            created_at=_aware(r.created_at),
            confirmed_at=None if r.confirmed_at is None else _aware(r.confirmed_at),
        )

    def confirm_signup(self, pending_id: int, *, now: datetime) -> Profile | None:
        """Turn a pending sign-up into an active subscriber with a consent record; None if it is unknown or expired.

        Following the same link again changes nothing: a person who left afterwards is not brought back by an old
        confirmation e-mail.
        """
        pending = self.pending_signup(pending_id)
        if pending is None:
            return None
        if pending.confirmed_at is not None:
            found = self.subscriber_by_email(pending.signup.email)
            return None if found is None else self.profile(found.id)
        if pending.created_at + timedelta(days=CONFIRMATION_VALID_DAYS) < now:
            return None
        signup = pending.signup
        at = _utc(now)
        with self._begin() as conn:
            row = self._subscriber_row(conn, signup.email)
            if row is None:
                subscriber_id = conn.execute(subscribers.insert().values(
                    email=signup.email, name=signup.name, status=ACTIVE, source=signup.source, created_at=at,
                )).inserted_primary_key[0]
                chosen = set(signup.digests)
            else:
                subscriber_id = row.id
                chosen = digests_after_confirming(row.status, self._explicit_digests(conn, subscriber_id),
                                                  signup.digests)
                conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                             .values(status=ACTIVE, name=signup.name or row.name))
            if chosen is not None:
                self._set_digests(conn, subscriber_id, chosen, at)
            self._set_profile(conn, subscriber_id, signup.municipality, signup.topics, at)
            # A new, confirmed consent outweighs an earlier "never again".
            conn.execute(suppressions.delete().where(suppressions.c.email_hash == self.email_hash(signup.email)))
            self._record_consent(conn, subscriber_id, "consent", sorted(signup.digests), signup.source,
                                 signup.consent_text, at)
            conn.execute(pending_signups.update().where(pending_signups.c.id == pending_id).values(confirmed_at=at))
            return self._profile(conn, subscriber_id)

    def update_preferences(self, subscriber_id: int, *, name: str, municipality: str, topics: Sequence[str],
                           digests: Sequence[str], all_digests: Sequence[str], source: str, consent_text: str,
                           now: datetime) -> Profile | None:
        """Save a subscriber's choices. Added digests get a consent record, dropped ones a withdrawal; no digest
        left means leaving altogether."""
        at = _utc(now)
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None or row.status != ACTIVE:
                return None
            before = set(self._explicit_digests(conn, subscriber_id) or all_digests)
            after = set(digests)
            conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(name=name))
            self._set_profile(conn, subscriber_id, municipality, tuple(topics), at)
            if not after:
                self._leave(conn, row, UNSUBSCRIBED, source, at)
            else:
                self._set_digests(conn, subscriber_id, after, at)
                if after - before:
                    self._record_consent(conn, subscriber_id, "consent", sorted(after - before), source,
                                         consent_text, at)
                if before - after:
                    self._record_consent(conn, subscriber_id, "withdrawal", sorted(before - after), source, "", at)
            return self._profile(conn, subscriber_id)

    def unsubscribe(self, subscriber_id: int, digest: str, *, all_digests: Sequence[str], source: str,
                    now: datetime) -> UnsubscribeResult | None:
        """Stop `digest` for the subscriber; the last digest going means leaving (and suppression). Idempotent.
        None when no such subscriber exists (a test copy's token, or an address that was forgotten)."""
        at = _utc(now)
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return None
            if row.status != ACTIVE:
                return UnsubscribeResult(subscriber_id=row.id, email=row.email, digest=digest, changed=False,
                                         remaining=())
            explicit = self._explicit_digests(conn, subscriber_id)
            change = after_unsubscribing(digest, all_digests if explicit is None else explicit)
            remaining = change.remaining
            if remaining:
                self._set_digests(conn, subscriber_id, remaining, at)
                self._record_consent(conn, subscriber_id, "withdrawal", [digest], source, "", at)
            else:
                self._leave(conn, row, UNSUBSCRIBED, source, at)
            return UnsubscribeResult(subscriber_id=row.id, email=row.email, digest=digest, changed=True,
                                     remaining=tuple(sorted(remaining)))

    def leave(self, subscriber_id: int, *, status: str = UNSUBSCRIBED, source: str, now: datetime) -> bool:
        """Stop every digest and suppress the address. False if the subscriber had already left (or is unknown)."""
        assert status in SUPPRESSING_STATUSES
        with self._begin() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return False
            if row.status != ACTIVE:
                # A complaint outranks an earlier unsubscribe in the record, but changes nothing else.
                if status == COMPLAINED and row.status != COMPLAINED:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(status=status))
                return False
            self._leave(conn, row, status, source, _utc(now))
            return True
