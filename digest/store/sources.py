"""The outcome of the last collection of each source of a digest: one truth for `digest status`, `digest collect`,
the scheduler's log and the desk's source check.

Every collection replaces the digest's rows as a whole, so a source removed from schedule.yaml (or a broken content
file that was fixed) does not linger as a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa

from digest.store.base import StoreBase, _aware, _utc
from digest.store.schema import metadata

source_fetches = sa.Table(
    "source_fetches", metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),  # the order of the collection's reports
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # files | feed | page
    sa.Column("location", sa.String(2000), nullable=False),  # folder (or file) or URL
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("articles", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)


class Reported(Protocol):
    """What the store keeps of a source's report (digest.sources.SourceReport has these)."""

    name: str
    kind: str
    location: str
    articles: int
    error: str | None
    note: str | None


@dataclass(frozen=True, kw_only=True)
class SourceOutcome:
    """How the last collection of one source went."""

    digest: str
    name: str
    kind: str
    location: str
    ok: bool
    articles: int
    error: str | None
    note: str | None
    fetched_at: datetime

    def describe(self) -> str:
        """The line `digest collect` printed for it (without the 304 remark)."""
        where = self.name if self.name == self.location else f"{self.name} ({self.location})"
        if self.error is not None:
            return f"{self.kind} {where}: failed: {self.error}"
        details = [f"{self.articles} article{'' if self.articles == 1 else 's'}"]
        if self.note:
            details.append(self.note)
        return f"{self.kind} {where}: " + ", ".join(details)


class SourceOutcomeStore(StoreBase):
    """The last outcome of each source, per digest."""

    def record_source_outcomes(self, digest: str, reports: Iterable[Reported], when: datetime) -> None:
        """Replace what the digest's last collection said with these reports (one transaction)."""
        rows = [{"digest": digest, "position": position, "name": report.name, "kind": report.kind,
                 "location": report.location, "ok": report.error is None, "articles": report.articles,
                 "error": report.error, "note": report.note, "fetched_at": _utc(when)}
                for position, report in enumerate(reports)]
        with self.engine.begin() as conn:
            conn.execute(source_fetches.delete().where(source_fetches.c.digest == digest))
            if rows:
                conn.execute(source_fetches.insert(), rows)

    def source_outcomes(self, digest: str) -> list[SourceOutcome]:
        """What the digest's last collection said about each source, in the collection's order."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(source_fetches).where(source_fetches.c.digest == digest)
                                .order_by(source_fetches.c.position)).all()
        return [SourceOutcome(digest=row.digest, name=row.name, kind=row.kind, location=row.location, ok=row.ok,
                              articles=row.articles, error=row.error, note=row.note,
                              fetched_at=_aware(row.fetched_at))
                for row in rows]
