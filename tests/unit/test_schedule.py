"""Unit tests for exporter.snapshot.schedule: parsing business hours, and open time between instants."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.schedules import parse_schedules
from exporter.config.schema import ConfigError
from exporter.snapshot.schedule import Schedule

OFFICE_YAML = """
schedules:
  office:
    timezone: Europe/Moscow
    hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-13:00", "14:00-18:00"],
            thu: ["09:00-18:00"], fri: ["09:00-17:00"]}
    holidays: ["2026-12-31", 2027-01-01]
"""
HOUR = 3600.0


def office() -> Schedule:
    return parse_schedules(yaml.safe_load(OFFICE_YAML)["schedules"])["office"]


def at(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> float:
    """Unix time of a local wall-clock time (fold=0)."""
    return datetime(y, mo, d, h, mi, sec, tzinfo=ZoneInfo(zone)).timestamp()


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, sec: int = 0) -> float:
    return datetime(y, mo, d, h, mi, sec, tzinfo=timezone.utc).timestamp()


def one(hours: dict[str, Any], tz: str = "Europe/Moscow", holidays: list[Any] | None = None) -> Schedule:
    raw = {"s": {"timezone": tz, "hours": hours, "holidays": holidays or []}}
    return parse_schedules(raw)["s"]


# --- parsing ------------------------------------------------------------------------


def test_the_issue_example_parses_to_minutes_per_weekday_and_dates() -> None:
    s = office()
    assert s.name == "office" and s.timezone == "Europe/Moscow"
    assert dict(s.hours) == {
        0: ((540, 1080),),
        1: ((540, 1080),),
        2: ((540, 780), (840, 1080)),
        3: ((540, 1080),),
        4: ((540, 1020),),
    }
    # A quoted date arrives as a string, an unquoted one as a datetime.date from YAML: both work.
    assert s.holidays == frozenset({date(2026, 12, 31), date(2027, 1, 1)})


def test_no_schedules_section_is_no_schedules() -> None:
    assert parse_schedules(None) == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"timezone": "Europe/Mosow", "hours": {"mon": ["09:00-18:00"]}},
            "schedules.office.timezone: unknown time zone 'Europe/Mosow'",
        ),
        (
            {"timezone": "../../etc/passwd", "hours": {"mon": ["09:00-18:00"]}},
            "schedules.office.timezone: unknown",
        ),
        ({"hours": {"mon": ["09:00-18:00"]}}, "schedules.office.timezone: required key is missing"),
        (
            {"timezone": "UTC", "hours": {"wed": ["09:00-13:00", "14-18"]}},
            "schedules.office.hours.wed[1]: expected HH:MM-HH:MM, got '14-18'",
        ),
        ({"timezone": "UTC", "hours": {"sun": "10:00-12:00"}}, "schedules.office.hours.sun: expected a list"),
        (
            {"timezone": "UTC", "hours": {"sunday": ["10:00-12:00"]}},
            "schedules.office.hours.sunday: unknown key",
        ),
        ({"timezone": "UTC", "hours": {"mon": [540]}}, "schedules.office.hours.mon[0]: expected HH:MM-HH:MM"),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-25:00"]}},
            "schedules.office.hours.mon[0]: '09:00-25:00' is",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:60-10:00"]}},
            "schedules.office.hours.mon[0]: '09:60-10:00' is not a time",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["24:00-02:00"]}},
            "schedules.office.hours.mon[0]: '24:00-02:00' is not a time",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-24:30"]}},
            "schedules.office.hours.mon[0]: '09:00-24:30' is not a time",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-09:00"]}},
            "schedules.office.hours.mon[0]: '09:00-09:00' is empty",
        ),
        (
            {"timezone": "UTC", "hours": {"wed": ["09:00-13:00", "12:00-18:00"]}},
            "schedules.office.hours.wed[1]: '12:00-18:00' overlaps '09:00-13:00'",
        ),
        (
            {"timezone": "UTC", "hours": {"fri": ["23:00-23:30", "22:00-02:00"]}},
            "schedules.office.hours.fri[0]: '23:00-23:30' overlaps '22:00-02:00'",
        ),
        ({"timezone": "UTC", "hours": {}}, "schedules.office.hours: no opening hours"),
        ({"timezone": "UTC", "hours": {"mon": []}}, "schedules.office.hours: no opening hours"),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "holidays": ["31.12.2026"]},
            "schedules.office.holidays[0]: expected a date YYYY-MM-DD, got '31.12.2026'",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "holidays": ["2026-02-30"]},
            "schedules.office.holidays[0]: expected a date YYYY-MM-DD, got '2026-02-30' (no such day)",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "holidays": [datetime(2026, 1, 1, 12)]},
            "schedules.office.holidays[0]: expected a date YYYY-MM-DD",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "holidays": "2026-01-01"},
            "schedules.office.holidays: expected a list",
        ),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"]}, "closed": []},
            "schedules.office.closed: unknown key",
        ),
        (
            "Europe/Moscow",
            "schedules.office: expected a mapping with timezone, hours and holidays, got a string",
        ),
    ],
)
def test_bad_schedules_name_the_key(body: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_schedules({"office": body})
    assert str(err.value).startswith(message), str(err.value)


def test_schedules_must_be_a_mapping_of_named_schedules() -> None:
    with pytest.raises(ConfigError, match=r"^schedules: expected a mapping"):
        parse_schedules([{"timezone": "UTC"}])
    with pytest.raises(ConfigError, match=r"^schedules: a schedule name must be a non-empty string"):
        parse_schedules({"": {"timezone": "UTC", "hours": {"mon": ["09:00-10:00"]}}})


def test_touching_ranges_and_an_explicitly_empty_weekday_are_fine() -> None:
    s = one({"mon": ["13:00-18:00", "09:00-13:00"], "sun": None})
    assert dict(s.hours) == {0: ((540, 780), (780, 1080))}
    monday = at("Europe/Moscow", 2026, 3, 2)
    assert s.open_seconds(monday, monday + 86400) == 9 * HOUR


# --- open time, no DST (Moscow is UTC+3 all year) -------------------------------------------


def test_the_issue_example_waited_fifteen_minutes() -> None:
    s = office()
    monday_1755 = at("Europe/Moscow", 2026, 3, 2, 17, 55)
    tuesday_0910 = at("Europe/Moscow", 2026, 3, 3, 9, 10)
    assert s.open_seconds(monday_1755, tuesday_0910) == 15 * 60


def test_open_time_over_a_weekend_a_lunch_break_and_holidays() -> None:
    s = office()
    fri_16, mon_10 = at("Europe/Moscow", 2026, 3, 6, 16), at("Europe/Moscow", 2026, 3, 9, 10)
    assert s.open_seconds(fri_16, mon_10) == 2 * HOUR  # Friday closes at 17:00
    wed_12, wed_15 = at("Europe/Moscow", 2026, 3, 4, 12), at("Europe/Moscow", 2026, 3, 4, 15)
    assert s.open_seconds(wed_12, wed_15) == 2 * HOUR  # 13:00-14:00 is lunch
    # Wed 2026-12-30 17:00 -> Mon 2027-01-04 10:00: Thursday and Friday are holidays.
    wed, mon = at("Europe/Moscow", 2026, 12, 30, 17), at("Europe/Moscow", 2027, 1, 4, 10)
    assert s.open_seconds(wed, mon) == 2 * HOUR
    a_week = at("Europe/Moscow", 2026, 3, 2)
    assert (
        s.open_seconds(a_week, a_week + 7 * 86400) == (9 + 9 + 8 + 9 + 8) * HOUR
    )  # Wednesday has a lunch break


def test_is_open_includes_the_start_of_a_range_and_excludes_its_end() -> None:
    s = office()
    assert not s.is_open(at("Europe/Moscow", 2026, 3, 2, 8, 59, 59))
    assert s.is_open(at("Europe/Moscow", 2026, 3, 2, 9))
    assert s.is_open(at("Europe/Moscow", 2026, 3, 2, 17, 59, 59))
    assert not s.is_open(at("Europe/Moscow", 2026, 3, 2, 18))
    assert not s.is_open(at("Europe/Moscow", 2026, 3, 7, 12))  # Saturday
    assert not s.is_open(at("Europe/Moscow", 2026, 12, 31, 12))  # holiday


def test_an_empty_or_reversed_interval_has_no_open_time() -> None:
    s = office()
    t = at("Europe/Moscow", 2026, 3, 2, 12)
    assert s.open_seconds(t, t) == 0.0
    assert s.open_seconds(t + 60, t) == 0.0


def test_a_range_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    def night(holidays: list[str]) -> Schedule:
        return one({"fri": ["22:00-02:00"]}, holidays=holidays)

    fri_21, sat_03 = at("Europe/Moscow", 2026, 3, 6, 21), at("Europe/Moscow", 2026, 3, 7, 3)
    assert night([]).open_seconds(fri_21, sat_03) == 4 * HOUR
    assert night([]).is_open(at("Europe/Moscow", 2026, 3, 7, 1, 30))
    assert not night([]).is_open(at("Europe/Moscow", 2026, 3, 7, 2))
    # A holiday on Friday closes the whole range, its Saturday part included ...
    assert night(["2026-03-06"]).open_seconds(fri_21, sat_03) == 0.0
    assert not night(["2026-03-06"]).is_open(at("Europe/Moscow", 2026, 3, 7, 1))
    # ... a holiday on Saturday leaves Friday's spill-over open.
    assert night(["2026-03-07"]).open_seconds(fri_21, sat_03) == 4 * HOUR


def test_a_spill_over_overlapping_the_next_days_range_is_counted_once() -> None:
    s = one({"fri": ["22:00-02:00"], "sat": ["01:00-03:00"]})
    fri_20, sat_05 = at("Europe/Moscow", 2026, 3, 6, 20), at("Europe/Moscow", 2026, 3, 7, 5)
    assert s.open_seconds(fri_20, sat_05) == 5 * HOUR


def test_whole_days_every_day_is_always_open() -> None:
    s = one(
        {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        tz="Europe/Berlin",
    )
    a, b = utc(2026, 3, 27, 5, 17), utc(2026, 4, 3, 1, 2, 3)  # across a DST change
    assert s.open_seconds(a, b) == pytest.approx(b - a, abs=1e-6)
    assert s.is_open(a) and s.is_open(b)


# --- DST --------------------------------------------------------------------------------


def test_a_range_on_a_dst_day_is_its_real_length() -> None:
    s = one({"sun": ["01:00-04:00"]}, tz="Europe/Berlin")
    spring = utc(2026, 3, 28, 12)  # Berlin springs forward 02:00 -> 03:00 on Sunday 2026-03-29
    assert s.open_seconds(spring, spring + 86400) == 2 * HOUR
    autumn = utc(2026, 10, 24, 12)  # and falls back 03:00 -> 02:00 on Sunday 2026-10-25
    assert s.open_seconds(autumn, autumn + 86400) == 4 * HOUR
    normal = utc(2026, 3, 21, 12)
    assert s.open_seconds(normal, normal + 86400) == 3 * HOUR


def test_opening_hours_follow_the_local_clock_across_a_dst_change() -> None:
    s = one({d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, tz="America/New_York")
    # New York springs forward on Sunday 2026-03-08: Friday opens at 14:00 UTC (EST), Monday at 13:00 (EDT).
    assert s.is_open(utc(2026, 3, 6, 14)) and not s.is_open(utc(2026, 3, 6, 13, 59, 59))
    assert s.is_open(utc(2026, 3, 9, 13)) and not s.is_open(utc(2026, 3, 9, 12, 59, 59))
    assert s.is_open(utc(2026, 3, 9, 20, 59, 59)) and not s.is_open(utc(2026, 3, 9, 21))
    assert s.open_seconds(utc(2026, 3, 6), utc(2026, 3, 10)) == 16 * HOUR


def test_nonexistent_and_ambiguous_local_times_are_read_with_fold_zero() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin: fold=0 reads it with the offset before the change
    # (+01:00), i.e. 01:30 UTC; 05:00 CEST is 03:00 UTC.
    gap = one({"sun": ["02:30-05:00"]}, tz="Europe/Berlin")
    day = utc(2026, 3, 28, 12)
    assert gap.open_seconds(day, day + 86400) == 1.5 * HOUR
    assert gap.is_open(utc(2026, 3, 29, 1, 30)) and not gap.is_open(utc(2026, 3, 29, 1, 29, 59))
    # A range whose converted end is not after its start is empty: 02:30 -> 01:30 UTC, 03:15 -> 01:15 UTC.
    inverted = one({"sun": ["02:30-03:15"]}, tz="Europe/Berlin")
    assert inverted.open_seconds(day, day + 86400) == 0.0
    # 02:30 happens twice on 2026-10-25: fold=0 is the first time (CEST, 00:30 UTC); 03:30 CET is 02:30 UTC.
    twice = one({"sun": ["02:30-03:30"]}, tz="Europe/Berlin")
    autumn = utc(2026, 10, 24, 12)
    assert twice.open_seconds(autumn, autumn + 86400) == 2 * HOUR
    assert twice.is_open(utc(2026, 10, 25, 0, 30)) and not twice.is_open(utc(2026, 10, 25, 0, 29, 59))


def test_far_apart_instants_and_instants_outside_1970_to_3000() -> None:
    s = office()
    a, b = at("Europe/Moscow", 2026, 3, 2), at("Europe/Moscow", 2026, 3, 9)
    assert s.open_seconds(0.0, b) - s.open_seconds(0.0, a) == pytest.approx(43 * HOUR, abs=1e-3)
    assert s.open_seconds(-1e12, 0.0) == 0.0
    assert s.open_seconds(1e18, 2e18) == 0.0
    assert not s.is_open(-1e18) and not s.is_open(1e18) and not s.is_open(float("nan"))
    assert s.open_seconds(float("nan"), b) == 0.0 and s.open_seconds(a, float("nan")) == 0.0
    assert s.open_seconds(a, b) == 43 * HOUR  # the timeline grew both ways; answers unchanged


# --- properties ---------------------------------------------------------------------------

MINUTE = st.integers(0, 24 * 60 - 1)
ZONES = ("Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
T0 = utc(2025, 1, 1)
SPAN = 3 * 365 * 86400.0


@st.composite
def schedules(draw: st.DrawFn, zones: tuple[str, ...] = ZONES) -> Schedule:
    """Random schedules, ranges crossing midnight and overlapping spill-overs included (the class merges)."""
    hours = {}
    for weekday in range(7):
        ranges = draw(st.lists(st.tuples(MINUTE, st.integers(1, 24 * 60)), max_size=3))
        ranges = [(s, e) for s, e in ranges if s != e]
        if ranges:
            hours[weekday] = tuple(ranges)
    days = draw(st.lists(st.integers(0, 3 * 365), max_size=20))
    holidays = frozenset(date(2025, 1, 1) + timedelta(days=d) for d in days)
    return Schedule("p", draw(st.sampled_from(zones)), MappingProxyType(hours), holidays)


INSTANT = st.floats(T0, T0 + SPAN, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(schedules(), INSTANT, INSTANT, INSTANT)
def test_open_time_is_additive_and_bounded(s: Schedule, x: float, y: float, z: float) -> None:
    a, b, c = sorted((x, y, z))
    ab, bc, ac = s.open_seconds(a, b), s.open_seconds(b, c), s.open_seconds(a, c)
    assert ab + bc == pytest.approx(ac, abs=1e-6)
    assert 0.0 <= ab <= b - a + 1e-6


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ZONES), INSTANT, st.floats(0, 40 * 86400.0))
def test_a_schedule_open_all_week_gives_wall_clock_time(tz: str, a: float, length: float) -> None:
    s = Schedule("always", tz, MappingProxyType({d: ((0, 1440),) for d in range(7)}), frozenset())
    assert s.open_seconds(a, a + length) == pytest.approx(length, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(schedules(), st.integers(int(T0), int(T0 + SPAN)))
def test_is_open_agrees_with_open_time_just_after(s: Schedule, second: int) -> None:
    # Boundaries fall on whole seconds (whole-minute ranges, whole-second offsets): t = k + 0.5 with
    # eps = 0.25 never straddles one.
    t = second + 0.5
    assert s.is_open(t) == (s.open_seconds(t, t + 0.25) > 0)
    assert s.open_seconds(t, t + 0.25) in (0.0, pytest.approx(0.25, abs=1e-6))


def reference_open_seconds(s: Schedule, a: int, b: int) -> float:
    """Minute by minute from the rules, without the class's timeline: valid for zones without DST."""
    zone = ZoneInfo(s.timezone)
    open_minutes = 0
    for m in range(a, b, 60):
        local = datetime.fromtimestamp(m, zone)
        minute = local.hour * 60 + local.minute
        today, yesterday = local.date(), local.date() - timedelta(days=1)
        is_open = today not in s.holidays and any(
            (st <= minute < en) if en > st else minute >= st for st, en in s.hours.get(today.weekday(), ())
        )
        spill = yesterday not in s.holidays and any(
            en < st and minute < en for st, en in s.hours.get(yesterday.weekday(), ())
        )
        open_minutes += is_open or spill
    return open_minutes * 60.0


@settings(max_examples=40, deadline=None)
@given(
    schedules(zones=("Europe/Moscow", "Asia/Kolkata", "UTC")),
    st.lists(st.tuples(st.integers(0, 3 * 365 * 1440), st.integers(0, 3 * 1440)), min_size=1, max_size=4),
)
def test_open_time_matches_a_minute_by_minute_count(s: Schedule, queries: list[tuple[int, int]]) -> None:
    # Several queries on one schedule, in random order: the cached timeline grows both ways.
    for start_minute, length in queries:
        a = int(T0) + 60 * start_minute
        assert s.open_seconds(a, a + 60 * length) == pytest.approx(
            reference_open_seconds(s, a, a + 60 * length), abs=1e-6
        )


@settings(max_examples=40, deadline=None)
@given(schedules(), st.lists(st.floats(T0 - 86400, T0 + SPAN + 86400, allow_nan=False), max_size=6), INSTANT)
def test_open_seconds_to_many_starts_equals_one_at_a_time(
    s: Schedule, starts: list[float], end: float
) -> None:
    assert s.open_seconds_to(starts, end) == pytest.approx([s.open_seconds(a, end) for a in starts], abs=1e-6)


def test_open_seconds_to_handles_starts_after_the_end_and_outside_the_supported_range() -> None:
    s = office()
    end = at("Europe/Moscow", 2026, 3, 2, 10)
    assert s.open_seconds_to([], end) == []
    assert s.open_seconds_to([end + 60, end, end - 1800, -1e15, float("nan")], end) == [
        0.0,
        0.0,
        1800.0,
        s.open_seconds(0.0, end),
        0.0,
    ]
