"""Drafts: editions stored before they are sent, their revisions and the history of who changed what."""

from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa

from digest.models import Article, Draft, DraftChange, Edition
from digest.store.base import StoreBase, _aware, _utc
from digest.store.schema import draft_changes, drafts, editions


class DraftStore(StoreBase):
    """One draft per digest and key; changes are compare-and-set on the revision, so two editors cannot both win."""

    def save_draft(self, draft: Draft, *, editor: str, detail: str) -> tuple[Draft, bool]:
        """Store a new draft; when one exists for the same edition (another process made it), return that one.
        The bool says whether this call made it."""
        edition = draft.edition
        try:
            with self.engine.begin() as conn:
                conn.execute(drafts.insert().values(
                    digest=edition.digest, key=edition.key, day=edition.date, since=_utc(edition.since),
                    until=_utc(edition.until),
                    scheduled_for=None if draft.scheduled_for is None else _utc(draft.scheduled_for),
                    articles=_articles_json(edition.articles), subject=edition.subject or "",
                    preheader=edition.preheader or "", introduction=edition.introduction, revision=draft.revision,
                    collected_at=_utc(draft.collected_at or draft.created_at), created_at=_utc(draft.created_at),
                    updated_at=_utc(draft.updated_at)))
                self._record_change(conn, edition.digest, edition.key, DraftChange(
                    revision=draft.revision, at=draft.created_at, editor=editor, action="made", detail=detail))
        except sa.exc.IntegrityError:
            stored = self.draft(edition.digest, edition.key)
            assert stored is not None
            return stored, False
        stored = self.draft(edition.digest, edition.key)
        assert stored is not None
        return stored, True

    def draft(self, digest: str, key: str) -> Draft | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(drafts).where(drafts.c.digest == digest, drafts.c.key == key)).first()
        return None if row is None else _draft(row)

    def unsent_drafts(self, digest: str) -> list[Draft]:
        """Drafts of the digest that no send has started yet, newest first."""
        started = sa.exists().where(editions.c.digest == drafts.c.digest, editions.c.key == drafts.c.key)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(drafts).where(drafts.c.digest == digest, ~started)
                                .order_by(drafts.c.day.desc())).all()
        return [_draft(row) for row in rows]

    def replace_draft(self, draft: Draft, *, expected_revision: int, change: DraftChange) -> Draft | None:
        """Write the draft as revision `expected_revision + 1` if it is still at `expected_revision` and no send has
        started; None when someone else changed it first or it is being sent."""
        edition = draft.edition
        started = sa.exists().where(editions.c.digest == edition.digest, editions.c.key == edition.key)
        with self.engine.begin() as conn:
            done = conn.execute(drafts.update().where(
                drafts.c.digest == edition.digest, drafts.c.key == edition.key,
                drafts.c.revision == expected_revision, ~started,
            ).values(
                since=_utc(edition.since), until=_utc(edition.until), articles=_articles_json(edition.articles),
                subject=edition.subject or "", preheader=edition.preheader or "",
                introduction=edition.introduction, revision=expected_revision + 1, updated_at=_utc(change.at),
                collected_at=_utc(draft.collected_at or change.at)))
            if done.rowcount != 1:
                return None
            self._record_change(conn, edition.digest, edition.key, change)
        return self.draft(edition.digest, edition.key)

    def record_draft_event(self, digest: str, key: str, change: DraftChange) -> None:
        """A history entry that changes nothing in the draft itself (approved, held)."""
        with self.engine.begin() as conn:
            self._record_change(conn, digest, key, change)

    def draft_history(self, digest: str, key: str) -> list[DraftChange]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(draft_changes).where(draft_changes.c.digest == digest,
                                                               draft_changes.c.key == key)
                                .order_by(draft_changes.c.id)).all()
        return [DraftChange(revision=r.revision, at=_aware(r.at), editor=r.editor, action=r.action, detail=r.detail)
                for r in rows]

    def previous_collected_at(self, digest: str, before: date) -> datetime | None:
        """When the articles of the digest's latest edition before `before` (one whose send has started) were
        chosen from the sources: its draft's collection time, or, for an edition sent before drafts existed, when
        it was stored. Articles first seen after that moment were not on offer to it."""
        query = (sa.select(drafts.c.collected_at, editions.c.created_at)
                 .select_from(editions.outerjoin(drafts, sa.and_(drafts.c.digest == editions.c.digest,
                                                                 drafts.c.key == editions.c.key)))
                 .where(editions.c.digest == digest, editions.c.day < before)
                 .order_by(editions.c.day.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return _aware(row.collected_at if row.collected_at is not None else row.created_at)

    def set_stop_reason(self, digest: str, key: str, reason: str | None) -> None:
        """Why the last send of the edition stopped before everyone had it (None: it did not stop)."""
        with self.engine.begin() as conn:
            conn.execute(drafts.update().where(drafts.c.digest == digest, drafts.c.key == key)
                         .values(stop_reason=reason))

    @staticmethod
    def _record_change(conn: sa.Connection, digest: str, key: str, change: DraftChange) -> None:
        conn.execute(draft_changes.insert().values(digest=digest, key=key, revision=change.revision,
                                                   at=_utc(change.at), editor=change.editor, action=change.action,
                                                   detail=change.detail))


def _articles_json(articles: tuple[Article, ...]) -> str:
    return json.dumps([article.to_json() for article in articles], ensure_ascii=False)


def _draft(row: sa.Row) -> Draft:
    return Draft(
        edition=Edition(
            digest=row.digest, key=row.key, date=row.day, since=_aware(row.since), until=_aware(row.until),
            articles=tuple(Article.from_json(item) for item in json.loads(row.articles)),
            subject=row.subject or None, preheader=row.preheader or None, introduction=row.introduction or "",
        ),
        revision=row.revision,
        scheduled_for=None if row.scheduled_for is None else _aware(row.scheduled_for),
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        stop_reason=row.stop_reason,
        collected_at=_aware(row.collected_at),
    )
