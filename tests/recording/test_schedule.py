"""The pure part of the record schedule: sections -> "on now?" and "next change at", with the
zone and the instant injected."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.schedule import ScheduleState, TimeSection, WeeklySchedule, life_cycle_days, schedule_state

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def at(zone: dt.tzinfo, *fields: int) -> float:
    """POSIX time of a wall-clock moment in ``zone`` (first occurrence when ambiguous)."""
    return dt.datetime(*fields, tzinfo=zone).timestamp()  # type: ignore[misc]


def weekly(*sections: tuple[int, str, str]) -> WeeklySchedule:
    return WeeklySchedule.from_wire(
        [{"DayOfWeek": day, "StartTime": start, "EndTime": end} for day, start, end in sections]
    )


# 2026-11-16 is a Monday.
def test_inside_a_section_it_is_on_until_the_section_ends() -> None:
    schedule = weekly((1, "08:00:00", "18:00:00"))
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 10, 0), SHANGHAI) == ScheduleState(
        True, at(SHANGHAI, 2026, 11, 16, 18, 0)
    )


def test_after_the_last_section_of_the_week_the_next_start_is_next_week() -> None:
    schedule = weekly((1, "08:00:00", "18:00:00"))
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 18, 0), SHANGHAI) == ScheduleState(
        False, at(SHANGHAI, 2026, 11, 23, 8, 0)
    )


def test_day_of_week_is_iso_seven_is_sunday() -> None:
    schedule = weekly((7, "09:00:00", "10:00:00"))
    monday = at(SHANGHAI, 2026, 11, 16, 9, 30)
    sunday = at(SHANGHAI, 2026, 11, 22, 9, 30)
    assert schedule_state(schedule, monday, SHANGHAI) == ScheduleState(
        False, at(SHANGHAI, 2026, 11, 22, 9, 0)
    )
    assert schedule_state(schedule, sunday, SHANGHAI).on


def test_a_section_ending_before_it_starts_crosses_midnight_into_the_next_day() -> None:
    schedule = weekly((5, "22:00:00", "02:00:00"))  # Friday night
    saturday_one = at(SHANGHAI, 2026, 11, 21, 1, 0)
    assert schedule_state(schedule, saturday_one, SHANGHAI) == ScheduleState(
        True, at(SHANGHAI, 2026, 11, 21, 2, 0)
    )
    assert not schedule_state(schedule, at(SHANGHAI, 2026, 11, 20, 1, 0), SHANGHAI).on  # Friday 01:00


def test_a_sunday_night_section_wraps_into_monday() -> None:
    schedule = weekly((7, "23:00:00", "01:00:00"))
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 0, 30), SHANGHAI) == ScheduleState(
        True, at(SHANGHAI, 2026, 11, 16, 1, 0)
    )


def test_adjacent_sections_merge_into_one_change() -> None:
    schedule = weekly((1, "08:00:00", "12:00:00"), (1, "12:00:00", "18:00:00"))
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 9, 0), SHANGHAI).next_change == at(
        SHANGHAI, 2026, 11, 16, 18, 0
    )


def test_end_of_day_written_235959_joins_the_next_days_section() -> None:
    schedule = weekly((1, "20:00:00", "23:59:59"), (2, "00:00:00", "06:00:00"))
    assert (
        TimeSection.from_wire({"DayOfWeek": 1, "StartTime": "20:00:00", "EndTime": "23:59:59"}).end == 86400
    )
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 21, 0), SHANGHAI) == ScheduleState(
        True, at(SHANGHAI, 2026, 11, 17, 6, 0)
    )


def test_sections_are_read_in_the_sites_time_zone() -> None:
    schedule = weekly((1, "08:00:00", "09:00:00"))
    instant = dt.datetime(2026, 11, 16, 0, 30, tzinfo=dt.UTC).timestamp()  # 08:30 in Shanghai
    assert schedule_state(schedule, instant, SHANGHAI).on
    assert not schedule_state(schedule, instant, dt.UTC).on


def test_spring_forward_shortens_a_section_by_the_lost_hour() -> None:
    # 2026-03-08 (Sunday): New York clocks jump from 02:00 to 03:00.
    schedule = weekly((7, "01:00:00", "04:00:00"))
    start = at(NEW_YORK, 2026, 3, 8, 1, 0)
    state = schedule_state(schedule, start + 60, NEW_YORK)
    assert state.on
    assert state.next_change is not None and state.next_change - start == 2 * 3600


def test_fall_back_lengthens_a_section_by_the_repeated_hour() -> None:
    # 2026-11-01 (Sunday): New York clocks go back from 02:00 to 01:00.
    schedule = weekly((7, "00:00:00", "03:00:00"))
    start = at(NEW_YORK, 2026, 11, 1, 0, 0)
    state = schedule_state(schedule, start + 60, NEW_YORK)
    assert state.next_change is not None and state.next_change - start == 4 * 3600


def test_around_the_clock_never_changes_and_no_sections_never_start() -> None:
    assert schedule_state(WeeklySchedule.always(), 0.0, SHANGHAI) == ScheduleState(True, None)
    assert schedule_state(WeeklySchedule(()), 0.0, SHANGHAI) == ScheduleState(False, None)


def test_a_section_of_no_length_is_ignored() -> None:
    schedule = weekly((1, "08:00:00", "08:00:00"), (2, "08:00:00", "09:00:00"))
    assert schedule_state(schedule, at(SHANGHAI, 2026, 11, 16, 8, 0), SHANGHAI) == ScheduleState(
        False, at(SHANGHAI, 2026, 11, 17, 8, 0)
    )


@pytest.mark.parametrize(
    "section",
    [
        {"DayOfWeek": 0, "StartTime": "08:00:00", "EndTime": "09:00:00"},
        {"DayOfWeek": 8, "StartTime": "08:00:00", "EndTime": "09:00:00"},
        {"DayOfWeek": 1, "StartTime": "8:00", "EndTime": "09:00:00"},
        {"DayOfWeek": 1, "StartTime": "08:00:00", "EndTime": "24:00:00"},
    ],
)
def test_malformed_sections_are_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TimeSection.from_wire(section)


@pytest.mark.parametrize(
    ("life_cycle", "days"),
    [
        ({"Transition": 10, "Expiration": 60}, 70),
        ({"Transition": 7, "Expiration": 0}, 7),
        (None, None),
        ({}, None),
    ],
)
def test_plan_lifecycle_becomes_local_retention_days(
    life_cycle: dict[str, int] | None, days: int | None
) -> None:
    assert life_cycle_days(life_cycle) == days
