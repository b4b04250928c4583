"""The ``schedules:`` section: named schedules (:class:`~exporter.snapshot.schedule.Schedule`)."""

from __future__ import annotations

import re
from datetime import date, datetime
from itertools import pairwise
from types import MappingProxyType
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from ..snapshot.schedule import MINUTES_PER_DAY, WEEKDAYS, Schedule
from .schema import ConfigError, Parts, Schema, Text, read

_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_schedules(raw: Any) -> dict[str, Schedule]:
    """The top-level ``schedules:`` mapping (name -> schedule); ``None`` means no schedules.

    Each schedule is checked on its own: every bad one is reported.
    """
    names = Annotated[dict[Any, Any], Meta(description="a mapping of schedule names to schedules")] | None
    parts = Parts()
    for name, body in (read(raw, "schedules", names) or {}).items():
        if not isinstance(name, str) or not name.strip():
            parts.errors.append(
                ConfigError("schedules", f"a schedule name must be a non-empty string, got {name!r}")
            )
        else:
            parts.parse(name, _schedule, name, body, f"schedules.{name}")
    parts.done()
    return dict(parts)


_Day = Annotated[tuple[Any, ...], Meta(description="a list of ranges such as ['09:00-18:00']")]
# One key per weekday (mon, tue, ...), each a list of ranges; null (``sun:`` alone) is closed.
_Hours = msgspec.defstruct("_Hours", [(day, _Day | None, None) for day in WEEKDAYS], bases=(Schema,))


class _Schedule(Schema):
    timezone: Text
    hours: _Hours | None = None  # type: ignore[valid-type]
    holidays: tuple[Any, ...] | None = None


_BODY = Annotated[_Schedule, Meta(description="a mapping with timezone, hours and holidays")]


def _schedule(name: str, body: Any, path: str) -> Schedule:
    s = read(body, path, _BODY)
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"{path}.timezone", f"unknown time zone {s.timezone!r} (use an IANA name such as 'Europe/Moscow')"
        ) from None
    hours = {}
    for weekday, key in enumerate(WEEKDAYS):
        if ranges := _day(getattr(s.hours, key, None) or (), f"{path}.hours.{key}"):
            hours[weekday] = ranges
    if not hours:
        raise ConfigError(
            f"{path}.hours", "no opening hours: give at least one weekday, e.g. mon: ['09:00-18:00']"
        )
    holidays = frozenset(_holiday(item, f"{path}.holidays[{i}]") for i, item in enumerate(s.holidays or ()))
    return Schedule(name=name, timezone=s.timezone, hours=MappingProxyType(hours), holidays=holidays)


def _day(raw: tuple[Any, ...], path: str) -> tuple[tuple[int, int], ...]:
    """One weekday's ranges, sorted."""
    parsed = [(_range(item, f"{path}[{i}]"), i) for i, item in enumerate(raw)]
    # Overlap check on absolute minutes: a range crossing midnight extends past 1440.
    spans = sorted(((s, e if e > s else e + MINUTES_PER_DAY), i) for (s, e), i in parsed)
    for (prev, pi), (cur, ci) in pairwise(spans):
        if cur[0] < prev[1]:
            raise ConfigError(f"{path}[{ci}]", f"{raw[ci]!r} overlaps {raw[pi]!r}: merge them into one range")
    return tuple(r for r, _ in sorted(parsed))


def _range(item: Any, path: str) -> tuple[int, int]:
    match = _RANGE_RE.match(item) if isinstance(item, str) else None
    if not match:
        raise ConfigError(path, f"expected HH:MM-HH:MM, got {item!r}")
    sh, sm, eh, em = (int(g) for g in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
        raise ConfigError(path, f"{item!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise ConfigError(path, f"{item!r} is empty (start equals end): write 00:00-24:00 for the whole day")
    return start, end


def _holiday(item: Any, path: str) -> date:
    """A date; YAML gives an unquoted 2026-12-31 as a ``date`` already, a quoted one as a string."""
    if isinstance(item, date) and not isinstance(item, datetime):
        return item
    if isinstance(item, str) and _DATE_RE.match(item.strip()):
        try:
            return date.fromisoformat(item.strip())
        except ValueError:
            raise ConfigError(path, f"expected a date YYYY-MM-DD, got {item!r} (no such day)") from None
    raise ConfigError(path, f"expected a date YYYY-MM-DD, got {item!r}")
