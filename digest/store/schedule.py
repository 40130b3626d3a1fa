"""What the schedule keeps: runs it missed and editions waiting for an editor's approval."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from digest.store.base import StoreBase, _aware, _now, _utc
from digest.store.schema import (
    approvals,
    missed_runs,
)


@dataclass(frozen=True, kw_only=True)
class ApprovalRecord:
    """One edition's place in the approval gate."""

    digest: str
    key: str
    scheduled_for: datetime
    state: str
    auto_at: datetime | None
    decided_by: str | None
    created_at: datetime


class ScheduleStore(StoreBase):
    """Missed runs and the approval gate."""

    def record_missed_run(self, digest: str, scheduled_for: datetime, late: timedelta) -> bool:
        """Remember a skipped run; False when it was recorded before (so it is logged once, not every hour)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(missed_runs.insert().values(
                    digest=digest, scheduled_for=_utc(scheduled_for), late_seconds=int(late.total_seconds()),
                    recorded_at=_now()))
        except sa.exc.IntegrityError:
            return False
        return True

    def last_missed_run(self, digest: str) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.scalar(sa.select(sa.func.max(missed_runs.c.scheduled_for))
                                .where(missed_runs.c.digest == digest))
        return None if value is None else _aware(value)

    def request_approval(self, digest: str, key: str, *, scheduled_for: datetime,
                         auto_at: datetime | None) -> tuple[ApprovalRecord, bool]:
        """Put the edition in the approval gate; the bool says whether this call did (and so sends the preview)."""
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(approvals.insert().values(
                    digest=digest, key=key, scheduled_for=_utc(scheduled_for), state="pending",
                    auto_at=None if auto_at is None else _utc(auto_at), created_at=now, updated_at=now))
            created = True
        except sa.exc.IntegrityError:
            created = False
        record = self.approval(digest, key)
        assert record is not None
        return record, created

    def approval(self, digest: str, key: str) -> ApprovalRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(approvals).where(approvals.c.digest == digest,
                                                          approvals.c.key == key)).first()
        return None if row is None else _approval(row)

    def approvals(self, digest: str | None = None, *, states: Iterable[str] = ("pending", "held", "approved")
                  ) -> list[ApprovalRecord]:
        query = sa.select(approvals).where(approvals.c.state.in_(tuple(states)))
        if digest is not None:
            query = query.where(approvals.c.digest == digest)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(approvals.c.scheduled_for)).all()
        return [_approval(row) for row in rows]

    def decide_approval(self, digest: str, key: str, *, to: str, allowed_from: Iterable[str],
                        by: str | None = None) -> bool:
        """Move the approval to state `to` if it is in one of `allowed_from`; True when this call moved it."""
        values: dict[str, object] = {"state": to, "updated_at": _now()}
        if by is not None:
            values["decided_by"] = by
        with self.engine.begin() as conn:
            result = conn.execute(
                approvals.update().where(approvals.c.digest == digest, approvals.c.key == key,
                                         approvals.c.state.in_(tuple(allowed_from))).values(**values))
            return result.rowcount == 1



def _approval(row: sa.Row) -> ApprovalRecord:
    return ApprovalRecord(
        digest=row.digest, key=row.key, scheduled_for=_aware(row.scheduled_for), state=row.state,
        auto_at=None if row.auto_at is None else _aware(row.auto_at), decided_by=row.decided_by,
        created_at=_aware(row.created_at),
    )

