"""When the digests fire: cron expressions in Europe/Oslo across both daylight-saving changes, crontab weekdays."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.scheduler import cron_trigger, crontab_weekdays, latest_run

OSLO = ZoneInfo("Europe/Oslo")


def fires(expression: str, start: datetime, end: datetime, tz: ZoneInfo = OSLO) -> list[datetime]:
    trigger = cron_trigger(expression, tz)
    times, previous, now = [], None, start
    while True:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire > end:
            return times
        times.append(fire.astimezone(UTC))
        previous, now = fire, fire.astimezone(UTC) + timedelta(microseconds=1)


def test_monday_seven_oclock_stays_seven_oclock_in_oslo_across_spring_change():
    # Clocks go forward on Sunday 29 March 2026 at 02:00: CET (UTC+1) → CEST (UTC+2).
    times = fires("0 7 * * mon", datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 7, tzinfo=UTC))
    assert times == [datetime(2026, 3, 23, 6, 0, tzinfo=UTC), datetime(2026, 3, 30, 5, 0, tzinfo=UTC),
                     datetime(2026, 4, 6, 5, 0, tzinfo=UTC)]
    assert {t.astimezone(OSLO).strftime("%a %H:%M") for t in times} == {"Mon 07:00"}


def test_monday_seven_oclock_stays_seven_oclock_in_oslo_across_autumn_change():
    # Clocks go back on Sunday 25 October 2026 at 03:00: CEST → CET.
    times = fires("0 7 * * mon", datetime(2026, 10, 15, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    assert times == [datetime(2026, 10, 19, 5, 0, tzinfo=UTC), datetime(2026, 10, 26, 6, 0, tzinfo=UTC),
                     datetime(2026, 11, 2, 6, 0, tzinfo=UTC)]
    assert {t.astimezone(OSLO).strftime("%a %H:%M") for t in times} == {"Mon 07:00"}


def test_a_time_inside_the_changed_hour_fires_exactly_once_each_night():
    spring = fires("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC))
    # 02:30 does not exist on 29 March: it runs once, an hour later by the clock (as cron does).
    assert [t.astimezone(OSLO).strftime("%d %H:%M") for t in spring] == ["28 02:30", "29 03:30", "30 02:30"]

    autumn = fires("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC))
    # 02:30 happens twice on 25 October; the digest goes once, at the first.
    assert [t.astimezone(OSLO).strftime("%d %H:%M %Z") for t in autumn] == [
        "24 02:30 CEST", "25 02:30 CEST", "26 02:30 CET"]


def test_the_trigger_keeps_its_behaviour_through_the_job_store():
    trigger = pickle.loads(pickle.dumps(cron_trigger("30 2 * * *", OSLO)))
    first = trigger.get_next_fire_time(None, datetime(2026, 10, 24, 23, tzinfo=UTC))
    second = trigger.get_next_fire_time(first, first.astimezone(UTC) + timedelta(seconds=1))
    assert second.astimezone(OSLO).day == 26


@pytest.mark.parametrize(("field", "expected"), [
    ("1", "mon"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"), ("sat,sun", "sat,sun"),
    ("sun-tue", "mon,tue,sun"), ("mon-sun", "mon,tue,wed,thu,fri,sat,sun"), ("*/2", "tue,thu,sat,sun"),
    ("*", "*"),
])
def test_crontab_weekday_numbers_mean_what_they_mean_in_crontab(field, expected):
    assert crontab_weekdays(field) == expected


def test_crontab_monday_by_number_fires_on_monday():
    (fire,) = fires("0 7 * * 1", datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert fire.astimezone(OSLO) == datetime(2026, 11, 30, 7, 0, tzinfo=OSLO)


def test_latest_run_looks_back_to_the_last_scheduled_time():
    trigger = cron_trigger("0 7 * * mon", OSLO)
    wednesday = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert latest_run(trigger, wednesday) == datetime(2026, 11, 23, 7, 0, tzinfo=OSLO)
    monday_seven = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert latest_run(trigger, monday_seven) == monday_seven
    assert latest_run(trigger, monday_seven - timedelta(seconds=1)) == datetime(2026, 11, 16, 7, 0, tzinfo=OSLO)
    every_minute = cron_trigger("* * * * *", OSLO)
    assert latest_run(every_minute, wednesday + timedelta(seconds=30)) == wednesday


def test_catching_up_after_the_repeated_hour_moves_on():
    # Given the second 02:30 (CET) as the previous run, plain APScheduler 3.11 returns that same time for ever,
    # which would hang the scheduler's catch-up loop on the night the clocks go back.
    trigger = cron_trigger("30 2 * * *", OSLO)
    second_half_past_two = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(OSLO)
    later = datetime(2026, 10, 27, 12, tzinfo=UTC)
    assert trigger.get_next_fire_time(second_half_past_two, later) == datetime(2026, 10, 26, 2, 30, tzinfo=OSLO)
