"""Cron expressions and when a digest runs: crontab weekdays, DST-safe triggers, the next and the latest run.

These are APScheduler 3 triggers (its CronTrigger with our fixes); the scheduler, the application layer and
the config validation all ask this module, so none of them needs the scheduler itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from digest.config import DigestConfig

# -- cron expressions ------------------------------------------------------------------------------------------------

# Crontab numbers weekdays from Sunday (0 and 7), APScheduler 3 from Monday (0). Translating every weekday to its
# name keeps "0 7 * * 1" meaning Monday, as any crontab reader expects.
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_day(text: str, *, range_end: bool) -> int:
    text = text.strip().lower()
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text in CRON_DAYS:
        # "mon-sun": a range may end on Sunday, which is 7 there.
        return 7 if range_end and text == "sun" else CRON_DAYS.index(text)
    raise ValueError(f"{text!r} is not a weekday (0-7 or sun-sat)")


def crontab_weekdays(field: str) -> str:
    """The weekday field of a crontab line as APScheduler day names, e.g. '1-5' → 'mon,tue,wed,thu,fri'."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.split(","):
        part, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"{item!r}: the step after '/' must be a positive number")
        step = int(step_text) if slash else 1
        if part == "*":
            first, last = 0, 6
        elif "-" in part:
            start, _, end = part.partition("-")
            first, last = _cron_day(start, range_end=False), _cron_day(end, range_end=True)
        else:
            first = last = _cron_day(part, range_end=False)
            if slash:
                last = 6
        if first > last:
            raise ValueError(f"{item!r}: the range runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(CRON_DAYS[day] for day in sorted(days, key=lambda day: (day - 1) % 7))


class CronSchedule(CronTrigger):
    """A cron trigger that fires once, not twice, when the clocks go back and a wall-clock time happens twice.

    APScheduler 3.11 fires 02:30 at 02:30+02:00 and again at 02:30+01:00 on the last Sunday of October, and given
    the second as the previous fire time it returns that same time again, for ever. Here the search always starts
    from an instant in UTC (no fold to lose), and a time whose wall clock repeats the previous one is skipped.
    In the gap of the spring change it fires an hour late, at 03:30, which is what cron does too.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            # Like APScheduler: from just after the previous run, so runs missed meanwhile are found and coalesced.
            start = min(start, _after(previous_fire_time))
        fire = super().get_next_fire_time(None, start)
        if fire is not None and previous_fire_time is not None and (
                fire <= previous_fire_time or _wall(fire, self.timezone) == _wall(previous_fire_time, self.timezone)):
            fire = super().get_next_fire_time(None, _after(fire))
        return fire


def _after(moment: datetime) -> datetime:
    # In UTC: adding to a local time in the repeated hour would drop its fold and land an hour earlier.
    return moment.astimezone(UTC) + timedelta(microseconds=1)


def _wall(moment: datetime, tz: Any) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def cron_trigger(expression: str, timezone: str | ZoneInfo) -> CronSchedule:
    """A trigger for a five-field crontab expression in `timezone`; ValueError says what is wrong with it."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} is not a cron expression of five fields (minute hour day month weekday)")
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    try:
        fields[4] = crontab_weekdays(fields[4])
        trigger = CronSchedule.from_crontab(" ".join(fields), timezone=tz)
    except ValueError as err:
        raise ValueError(f"{expression!r} is not a valid cron expression: {err}") from None
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(f"{expression!r} never fires (e.g. 30 February)")
    return trigger


def digest_trigger(digest: DigestConfig) -> CronSchedule:
    return cron_trigger(digest.schedule.cron, digest.timezone)


def next_run(digest: DigestConfig, now: datetime) -> datetime | None:
    """When the digest is due next, in its own time zone."""
    fire = digest_trigger(digest).get_next_fire_time(None, now)
    return None if fire is None else fire.astimezone(digest.timezone)


def latest_run(trigger: CronTrigger, at: datetime, *, horizon: timedelta = timedelta(days=400)) -> datetime | None:
    """The latest time the trigger fired at or before `at` (cron triggers only look forward, so search back)."""
    window = timedelta(minutes=1)
    while window <= horizon:
        fire = trigger.get_next_fire_time(None, at - window)
        if fire is not None and fire <= at:
            while True:
                later = trigger.get_next_fire_time(fire, _after(fire))
                if later is None or later > at:
                    return fire
                fire = later
        window *= 2
    return None



def format_duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text or f"{int(value.total_seconds())}s"


def local_iso(digest: DigestConfig, moment: datetime | None) -> str:
    """A moment in the digest's own time zone for a log line, e.g. 2026-11-23T07:00+01:00."""
    return "" if moment is None else moment.astimezone(digest.timezone).isoformat(timespec="minutes")
