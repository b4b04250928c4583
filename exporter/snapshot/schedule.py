"""Business hours: named weekly schedules in a time zone, and how much open time lies between two instants.

A wait that starts at 17:55 and ends at 09:10 the next morning lasted 15 minutes of
office time, not 15 hours; every wait duration of an account with a schedule is
measured with :meth:`Schedule.open_seconds`.

Rules, decided here once:

* Opening hours are local wall-clock ranges ``HH:MM-HH:MM`` per weekday, converted
  to real time through :mod:`zoneinfo`. On a DST change day a range ``01:00-04:00``
  is 2 h (spring forward) or 4 h (fall back) of real time.
* A local time that does not exist (skipped by a spring-forward) or exists twice
  (repeated by a fall-back) is read with ``fold=0``, Python's default: the offset in
  force *before* the change. A range whose converted end is not after its converted
  start (possible only for ends inside a skipped hour) is empty.
* ``00:00-24:00`` is the whole day. A range whose end is before its start crosses
  midnight: ``22:00-02:00`` on ``fri`` is Friday 22:00 to Saturday 02:00.
* A range belongs to the day it starts on: a holiday closes the ranges that start on
  that date (including their part after midnight) and leaves the part of the
  previous evening's range that spills into it open.
* A missing weekday is closed all day. Two ranges of one weekday that overlap are a
  configuration error (almost always a typo); ranges that merely touch
  (``09:00-13:00``, ``13:00-18:00``) are fine, and the spill-over of a
  midnight-crossing range may overlap the next day's ranges: open time is their union,
  never counted twice.
* Instants before 1970 or after the year 3000 are clamped to those bounds.

Speed: the exporter asks ``open_seconds(since, now)`` for every waiting chat on every
poll (10,000 chats: same ``now``, ``since`` hours to weeks back). The schedule keeps a
merged, sorted list of real-time open intervals over a range of days with cumulative
sums, so ``open_seconds(a, b) = F(b) - F(a)`` costs two binary searches, and
``open_seconds_to(starts, now)`` one per start. The range grows (under a lock, replaced
in one assignment so readers never see half of it) when an instant outside it is asked
for. Building a day costs a few microseconds; a wait starting in 1970 (a timestamp of 0)
builds ~20,000 days once, about 65 ms.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..config.schema import ConfigError, check_keys, get_list, get_mapping, get_str, type_name

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
T_MIN = 0.0  # 1970-01-01
T_MAX = 32_503_680_000.0  # 3000-01-01, far enough below datetime's year 9999 for day arithmetic
_KEEP_DAYS = 3 * 366  # the cached days may grow to this span; beyond it, only what a request needs

_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _clamp(t: float) -> float:
    """An instant within [T_MIN, T_MAX]; NaN becomes T_MIN (callers have dealt with NaN before)."""
    return T_MIN if not t > T_MIN else (t if t < T_MAX else T_MAX)


class _View:
    """Merged open intervals ``[starts[i], ends[i])`` built for local days ``lo..hi`` (ordinals).

    ``cum[i]`` is the open time before ``starts[i]``; answers are exact for instants in
    ``[cover_lo, cover_hi)``, which keeps a day's margin on both sides for the ranges
    that cross midnight and for offsets.
    """

    __slots__ = ("cover_hi", "cover_lo", "cum", "ends", "hi", "lo", "starts")

    def __init__(self, lo: int, hi: int, starts: list[float], ends: list[float], cover: tuple[float, float]):
        self.lo, self.hi, self.starts, self.ends = lo, hi, starts, ends
        self.cover_lo, self.cover_hi = cover
        cum, total = [], 0.0
        for s, e in zip(starts, ends, strict=True):
            cum.append(total)
            total += e - s
        self.cum = cum

    def at(self, t: float) -> float:
        """F(t): open time from the start of the view to ``t``."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0.0
        end = self.ends[i]
        return self.cum[i] + (end if t > end else t) - self.starts[i]


_EMPTY = _View(0, -1, [], [], (0.0, 0.0))


@dataclass(frozen=True)
class Schedule:
    """One named schedule. ``hours`` maps a weekday (0 = Monday) to its ranges in minutes of the day:
    ``(540, 1080)`` is 09:00-18:00, ``(1320, 120)`` is 22:00-02:00 (end before start crosses midnight),
    an end of 1440 is 24:00."""

    name: str
    timezone: str
    hours: Mapping[int, tuple[tuple[int, int], ...]] = field(hash=False)
    holidays: frozenset[date]
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False, hash=False)
    _view: _View = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_view", _EMPTY)

    def is_open(self, t: float) -> bool:
        """Whether the instant ``t`` (Unix time) lies in opening hours."""
        if t != t:  # NaN: no instant at all
            return False
        t = _clamp(t)
        v = self._covering(t, t)
        i = bisect_right(v.starts, t) - 1
        return i >= 0 and t < v.ends[i]

    def open_seconds(self, start: float, end: float) -> float:
        """Open time within ``[start, end)`` in seconds; 0 when ``end <= start``."""
        if not start < end:  # also NaN
            return 0.0
        v = self._view
        if not (v.cover_lo <= start and end < v.cover_hi):  # the cover lies within [T_MIN, T_MAX]
            start, end = _clamp(start), _clamp(end)
            if start == end:
                return 0.0
            v = self._covering(start, end)
        return max(v.at(end) - v.at(start), 0.0)

    def open_seconds_to(self, starts: Sequence[float], end: float) -> list[float]:
        """``[open_seconds(s, end) for s in starts]`` at half the cost: what each poll asks for its waits."""
        if not starts:
            return []
        end = _clamp(end)
        lowest = min(_clamp(min(starts)), end)
        v = self._covering(lowest, end)
        f_end = v.at(end)
        at = v.at
        return [max(f_end - at(_clamp(s)), 0.0) if s < end else 0.0 for s in starts]

    # --- the cached timeline --------------------------------------------------

    def _covering(self, a: float, b: float) -> _View:
        v = self._view
        if v.cover_lo <= a and b < v.cover_hi:
            return v
        with self._lock:
            v = self._view
            if v.cover_lo <= a and b < v.cover_hi:
                return v
            # Margins: 3 days below (ranges crossing midnight, offsets), 2 above. The cached days grow by
            # half their span (at most a year) so that a clock moving forward rebuilds rarely; a request
            # that would stretch them past _KEEP_DAYS gets just the days it needs (plus a month ahead),
            # so one odd instant (a timestamp of 0, a far future) does not make every rebuild huge.
            need_lo = datetime.fromtimestamp(a, self._zone).date().toordinal() - 3
            need_hi = datetime.fromtimestamp(b, self._zone).date().toordinal() + 2
            if v is _EMPTY or max(v.hi, need_hi) - min(v.lo, need_lo) > _KEEP_DAYS:
                lo, hi = need_lo - 7, need_hi + 31
            else:
                grow = min(max(7, (v.hi - v.lo) // 2), 366)
                lo = v.lo if need_lo >= v.lo else need_lo - grow
                hi = v.hi if need_hi <= v.hi else need_hi + grow
            v = self._build(lo, hi)
            object.__setattr__(self, "_view", v)
            return v

    def _local(self, day: date, minute: int) -> float:
        day += timedelta(days=minute // MINUTES_PER_DAY)
        minute %= MINUTES_PER_DAY
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self._zone).timestamp()

    def _build(self, lo: int, hi: int) -> _View:
        intervals: list[tuple[float, float]] = []
        for ordinal in range(lo, hi + 1):
            day = date.fromordinal(ordinal)
            if day in self.holidays:
                continue
            for s, e in self.hours.get(day.weekday(), ()):
                start, end = self._local(day, s), self._local(day, e if e > s else e + MINUTES_PER_DAY)
                if end > start:
                    intervals.append((start, end))
        intervals.sort()
        starts: list[float] = []
        ends: list[float] = []
        for open_at, close_at in intervals:
            if ends and open_at <= ends[-1]:
                ends[-1] = max(ends[-1], close_at)
            else:
                starts.append(open_at)
                ends.append(close_at)
        cover = (self._local(date.fromordinal(lo + 2), 0), self._local(date.fromordinal(hi), 0))
        return _View(lo, hi, starts, ends, cover)


# --- configuration ----------------------------------------------------------------


def parse_schedules(raw: Any) -> dict[str, Schedule]:
    """The top-level ``schedules:`` mapping (name -> schedule); ``None`` means no schedules."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            "schedules", f"expected a mapping of schedule names to schedules, got {type_name(raw)}"
        )
    out = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("schedules", f"a schedule name must be a non-empty string, got {name!r}")
        out[name] = _schedule(name, body, f"schedules.{name}")
    return out


def _schedule(name: str, body: Any, path: str) -> Schedule:
    if not isinstance(body, dict):
        raise ConfigError(
            path, f"expected a mapping with timezone, hours and holidays, got {type_name(body)}"
        )
    check_keys(body, {"timezone", "hours", "holidays"}, f"{path}.")
    tz = get_str(body, "timezone", f"{path}.")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(
            f"{path}.timezone", f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Moscow')"
        ) from None
    raw_hours = get_mapping(body, "hours", f"{path}.")
    check_keys(raw_hours, set(WEEKDAYS), f"{path}.hours.")
    hours = {}
    for weekday, key in enumerate(WEEKDAYS):
        ranges = _day(raw_hours.get(key), f"{path}.hours.{key}")
        if ranges:
            hours[weekday] = ranges
    if not hours:
        raise ConfigError(
            f"{path}.hours", "no opening hours: give at least one weekday, e.g. mon: ['09:00-18:00']"
        )
    holidays = frozenset(
        _holiday(item, f"{path}.holidays[{i}]")
        for i, item in enumerate(get_list(body, "holidays", f"{path}."))
    )
    return Schedule(name=name, timezone=tz, hours=MappingProxyType(hours), holidays=holidays)


def _day(raw: Any, path: str) -> tuple[tuple[int, int], ...]:
    """One weekday's ranges, sorted; ``None`` (``sun:`` with nothing after it) is closed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(path, f"expected a list of ranges such as ['09:00-18:00'], got {type_name(raw)}")
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
