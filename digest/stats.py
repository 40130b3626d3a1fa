"""What `digest stats` and the desk's numbers page show per digest, without tracking: per edition the audience,
sent, deferred, failed, and among its recipients who bounced, complained or unsubscribed within 7 days of the
send; and the list over time (active, joined and left per ISO week, Europe/Oslo or the digest's zone).

The figures come from the delivery ledger and the consent record only. `as_json` gives the stable field names that
`digest stats --json` prints (documented in the README)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.config import Settings
from digest.store import ListEvent, Store

WINDOW = timedelta(days=7)
# The list over time: this many ISO weeks, ending with the current one.
WEEKS = 26


@dataclass(frozen=True, kw_only=True)
class EditionStats:
    edition: str
    date: date
    sent_at: datetime
    audience: int       # deliveries queued for it: the active subscribers of its audience when it was sent
    sent: int
    deferred: int
    failed: int
    pending: int        # still queued or being sent
    bounced: int        # recipients marked bounced within the window (refused 5xx "no such user", or a bounce)
    complaints: int     # recipients who reported it as spam (ARF) within the window
    unsubscribes: int   # recipients who left this digest within the window (link, preferences, mailto)
    window_complete: bool  # False while the 7 days are not over: the last three can still grow


@dataclass(frozen=True, kw_only=True)
class WeekStats:
    week: str           # ISO week, e.g. 2026-W48
    starts: date        # its Monday
    active: int         # active subscribers of the digest at the end of the week (now, for the current week)
    joined: int
    left: int


@dataclass(frozen=True, kw_only=True)
class DigestStats:
    digest: str
    title: str
    active: int
    editions: tuple[EditionStats, ...]  # newest first
    weeks: tuple[WeekStats, ...]        # oldest first


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weekly(events: Sequence[ListEvent], *, active_now: int, now: datetime, tz: ZoneInfo,
           weeks: int = WEEKS) -> list[WeekStats]:
    """Joined and left per ISO week, and the active count at each week's end worked back from today's (so the
    line ends at the true figure even for subscribers older than the consent record)."""
    today = now.astimezone(tz).date()
    this_monday = today - timedelta(days=today.weekday())
    mondays = [this_monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    joined: Counter[date] = Counter()
    left: Counter[date] = Counter()
    for event in events:
        day = event.at.astimezone(tz).date()
        monday = day - timedelta(days=day.weekday())
        (joined if event.joined else left)[monday] += 1
    result = []
    for monday in mondays:
        # Everything after this week is undone to get the count at its end.
        later = sum(joined[m] - left[m] for m in set(joined) | set(left) if m > monday)
        result.append(WeekStats(week=iso_week(monday), starts=monday, active=max(0, active_now - later),
                                joined=joined[monday], left=left[monday]))
    return result


def digest_stats(settings: Settings, store: Store, name: str, *, now: datetime, weeks: int = WEEKS,
                 limit: int | None = None) -> DigestStats:
    digest = settings.digest(name)
    editions = []
    for counts in store.edition_counts(name, window=WINDOW, limit=limit):
        states = counts.states
        editions.append(EditionStats(
            edition=counts.key, date=counts.day, sent_at=counts.sent_at, audience=sum(states.values()),
            sent=states.get("sent", 0), deferred=states.get("deferred", 0), failed=states.get("failed", 0),
            pending=states.get("queued", 0) + states.get("sending", 0), bounced=counts.bounced,
            complaints=counts.complaints, unsubscribes=counts.unsubscribes,
            window_complete=now >= counts.sent_at + WINDOW))
    active = store.active_count(name)
    return DigestStats(digest=name, title=digest.title, active=active, editions=tuple(editions),
                       weeks=tuple(weekly(store.list_events(name, until=now), active_now=active, now=now,
                                          tz=digest.timezone, weeks=weeks)))


EDITION_FIELDS = ("edition", "date", "sent_at", "audience", "sent", "deferred", "failed", "pending", "bounced",
                  "complaints", "unsubscribes", "window_complete")
WEEK_FIELDS = ("week", "starts", "active", "joined", "left")


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, date | datetime) else value


def edition_row(item: EditionStats) -> dict[str, object]:
    return {field: _plain(getattr(item, field)) for field in EDITION_FIELDS}


def week_row(item: WeekStats) -> dict[str, object]:
    return {field: _plain(getattr(item, field)) for field in WEEK_FIELDS}


def as_json(stats: DigestStats) -> dict[str, object]:
    return {"digest": stats.digest, "active": stats.active, "window_days": WINDOW.days,
            "editions": [edition_row(item) for item in stats.editions],
            "weeks": [week_row(item) for item in stats.weeks]}
