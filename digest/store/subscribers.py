"""Subscribers, their profiles and digests, the audience of an edition; helpers the other subscriber areas share."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from digest.consent import (
    ACTIVE,
    SUPPRESSING_STATUSES,
    Profile,
    Segment,
)
from digest.models import Subscriber
from digest.store.base import StoreBase, _now
from digest.store.schema import (
    consents,
    profiles,
    subscribers,
    subscriptions,
    suppressions,
)


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int
    merged_duplicates: int
    suppressed: tuple[str, ...] = ()  # addresses on the suppression list, not resubscribed



class SubscriberRows(StoreBase):
    """Subscribers and the row helpers that sign-ups, bounces and GDPR share."""

    # -- subscribers ----------------------------------------------------------------------------------------------
    def import_subscribers(self, rows: Iterable[tuple[str, str]], *, source: str, digests: Sequence[str] = (),
                           consent_text: str | None = None) -> ImportReport:
        """Add or update (email, name) rows in one transaction. Statuses are never changed by an import.

        An import counts as consent held by the organisation: each new subscriber gets a consent record naming the
        source and time, and `digests` (none: every digest). Suppressed addresses (unsubscribed, bounced,
        complained, forgotten) are left alone and listed in the report's `suppressed`.
        """
        merged: dict[str, str] = {}
        duplicates = 0
        for email, name in rows:
            key = email.lower()
            if key in merged:
                duplicates += 1
                merged[key] = name or merged[key]
            else:
                merged[key] = name
        added = updated = unchanged = 0
        suppressed: list[str] = []
        text = consent_text or f"Samtykke innhentet av organisasjonen; importert fra {source}."
        with self._begin() as conn:
            existing = {
                row.email.lower(): row
                for row in conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                                                  subscribers.c.status))
            }
            on_list = set(conn.scalars(sa.select(suppressions.c.email_hash)))
            # Everyone's explicit digests in one query, not one per existing row (a re-import of a long list).
            explicit: dict[int, set[str]] = {}
            if digests:
                for subscriber_id, digest in conn.execute(sa.select(subscriptions.c.subscriber_id,
                                                                    subscriptions.c.digest)):
                    explicit.setdefault(subscriber_id, set()).add(digest)
            now = _now()
            for email, name in merged.items():
                row = existing.get(email)
                if (row is not None and row.status in SUPPRESSING_STATUSES) or self.email_hash(email) in on_list:
                    suppressed.append(email)
                    continue
                if row is None:
                    subscriber_id = conn.execute(subscribers.insert().values(
                        email=email, name=name, status="active", source=source, created_at=now,
                    )).inserted_primary_key[0]
                    if digests:
                        self._set_digests(conn, subscriber_id, digests, now)
                    self._record_consent(conn, subscriber_id, "consent", sorted(digests) or ["*"], source, text, now)
                    added += 1
                    continue
                changed = False
                current = explicit.get(row.id)
                if digests and current is not None and set(digests) - current:
                    self._set_digests(conn, row.id, current | set(digests), now)
                    self._record_consent(conn, row.id, "consent", sorted(set(digests) - current), source, text,
                                         now)
                    changed = True
                if name and name != row.name:
                    conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(name=name))
                    changed = True
                if changed:
                    updated += 1
                else:
                    unchanged += 1
        return ImportReport(added, updated, unchanged, duplicates, tuple(suppressed))

    def list_subscribers(self) -> list[Subscriber]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(subscribers).order_by(subscribers.c.email)).all()
        return [Subscriber(id=r.id, email=r.email, name=r.name, status=r.status) for r in rows]

    def subscriber(self, subscriber_id: int) -> Subscriber | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return None if r is None else Subscriber(id=r.id, email=r.email, name=r.name, status=r.status)

    def subscriber_by_email(self, email: str) -> Subscriber | None:
        with self.engine.connect() as conn:
            r = self._subscriber_row(conn, email)
        return None if r is None else Subscriber(id=r.id, email=r.email, name=r.name, status=r.status)

    def profile(self, subscriber_id: int) -> Profile | None:
        with self.engine.connect() as conn:
            return self._profile(conn, subscriber_id)

    def audience(self, digest: str, segment: Segment | None = None) -> list[Subscriber]:
        """Who a new edition of `digest` goes to (what create_edition would queue)."""
        self.email_hash("")
        with self.engine.connect() as conn:
            return self._audience(conn, digest, segment)

    # The helpers below run inside a caller's transaction.
    def _subscriber_row(self, conn: sa.Connection, email: str) -> sa.Row | None:
        return conn.execute(sa.select(subscribers)
                            .where(sa.func.lower(subscribers.c.email) == email.strip().lower())).first()

    def _explicit_digests(self, conn: sa.Connection, subscriber_id: int) -> tuple[str, ...] | None:
        names = conn.scalars(sa.select(subscriptions.c.digest).where(subscriptions.c.subscriber_id == subscriber_id)
                             .order_by(subscriptions.c.digest)).all()
        return tuple(names) if names else None

    def _set_digests(self, conn: sa.Connection, subscriber_id: int, digests: Iterable[str], at: datetime) -> None:
        wanted = set(digests)
        current = set(self._explicit_digests(conn, subscriber_id) or ())
        if current - wanted:
            conn.execute(subscriptions.delete().where(subscriptions.c.subscriber_id == subscriber_id,
                                                      subscriptions.c.digest.in_(current - wanted)))
        if wanted - current:
            conn.execute(subscriptions.insert(), [{"subscriber_id": subscriber_id, "digest": d, "created_at": at}
                                                  for d in sorted(wanted - current)])

    def _set_profile(self, conn: sa.Connection, subscriber_id: int, municipality: str, topics: Sequence[str],
                     at: datetime) -> None:
        values = {"municipality": municipality, "topics": json.dumps(sorted(set(topics))), "updated_at": at}
        done = conn.execute(profiles.update().where(profiles.c.subscriber_id == subscriber_id).values(**values))
        if done.rowcount == 0:
            conn.execute(profiles.insert().values(subscriber_id=subscriber_id, **values))

    def _profile(self, conn: sa.Connection, subscriber_id: int) -> Profile | None:
        row = conn.execute(
            sa.select(subscribers, profiles.c.municipality, profiles.c.topics)
            .outerjoin(profiles, profiles.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            return None
        return Profile(subscriber_id=row.id, email=row.email, name=row.name, status=row.status,
                       municipality=row.municipality or "", topics=tuple(json.loads(row.topics or "[]")),
                       digests=self._explicit_digests(conn, subscriber_id))

    def _record_consent(self, conn: sa.Connection, subscriber_id: int, event: str, digests: Sequence[str],
                        source: str, text: str, at: datetime) -> None:
        conn.execute(consents.insert().values(subscriber_id=subscriber_id, event=event,
                                              digests=json.dumps(list(digests)), source=source, text=text, at=at))

    def _suppress(self, conn: sa.Connection, email: str, reason: str, at: datetime, *, replace: bool = False) -> None:
        key = self.email_hash(email)
        exists = conn.scalar(sa.select(sa.func.count()).where(suppressions.c.email_hash == key))
        if exists and replace:
            conn.execute(suppressions.update().where(suppressions.c.email_hash == key).values(reason=reason))
        elif not exists:
            conn.execute(suppressions.insert().values(email_hash=key, reason=reason, created_at=at))

    def _leave(self, conn: sa.Connection, row: sa.Row, status: str, source: str, at: datetime) -> None:
        had = self._explicit_digests(conn, row.id)
        conn.execute(subscribers.update().where(subscribers.c.id == row.id).values(status=status))
        conn.execute(subscriptions.delete().where(subscriptions.c.subscriber_id == row.id))
        self._record_consent(conn, row.id, "withdrawal", list(had) if had else ["*"], source, "", at)
        self._suppress(conn, row.email, status, at)

    def _audience(self, conn: sa.Connection, digest: str, segment: Segment | None) -> list[Subscriber]:
        rows = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status,
                      profiles.c.municipality, profiles.c.topics)
            .outerjoin(profiles, profiles.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.status == ACTIVE, _receives_digest(sa.literal(digest)))
            .order_by(subscribers.c.id)
        ).all()
        # Suppression is checked by hash here too, not only by status: an address on the list is never queued,
        # whatever put it back into the subscribers table.
        suppressed = set(conn.scalars(sa.select(suppressions.c.email_hash)))
        chosen: list[Subscriber] = []
        for r in rows:
            if segment is not None and not segment.admits(r.municipality or "", tuple(json.loads(r.topics or "[]"))):
                continue
            if suppressed and self.email_hash(r.email) in suppressed:
                continue
            chosen.append(Subscriber(id=r.id, email=r.email, name=r.name, status=r.status))
        return chosen


def _receives_digest(digest: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The subscriber has a subscription to `digest`, or no subscription rows at all (which means every digest)."""
    mine = subscriptions.c.subscriber_id == subscribers.c.id
    return sa.or_(
        sa.exists().where(mine, subscriptions.c.digest == digest),
        ~sa.exists().where(mine),
    )
