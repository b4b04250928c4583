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
for. Building a day is cheap, but a wait starting in 1970 (a timestamp of 0) builds every
day since once, tens of milliseconds (bench/RESULTS.md).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
T_MIN = 0.0  # 1970-01-01
T_MAX = 32_503_680_000.0  # 3000-01-01, far enough below datetime's year 9999 for day arithmetic
_KEEP_DAYS = 3 * 366  # the cached days may grow to this span; beyond it, only what a request needs


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
        """``[open_seconds(s, end) for s in starts]``, more cheaply (bench/RESULTS.md): what each
        poll asks for its waits."""
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
