"""How long customers have waited for an answer, estimated from successive polls of get-chats.

get-chats gives each chat's ``unreadCount`` and last-activity ``timestamp``, nothing
more, so a wait (an unread episode) is tracked across polls. The rules:

* A wait starts when a counted chat is seen with ``unreadCount > 0`` and has no open
  wait: after having been seen with 0, or being new (including the exporter's first
  poll). Its start is the chat's ``timestamp`` at that poll (the newest message then),
  clamped to ``now`` when it lies in the future. The true start lies between the
  previous poll and that timestamp, so a wait is under-estimated by at most one poll
  interval. A wait restored from the state file keeps its restored start.
* While ``unreadCount`` stays above 0 the start does not move, even as new messages
  arrive and ``timestamp`` advances.
* The wait ends when ``unreadCount`` is back to 0 (someone read the chat): it is
  observed once in its chat type's histogram, with its duration from the start to the
  ``now`` of the poll that saw it read. A chat that disappears from the answer, or stops
  counting (muted, read-only, excluded), ends its wait *without* an observation: nobody
  answered it.
* A duration (of a current wait or an ended one) is the open time between start and
  ``now`` under the account's schedule, or plain ``now - start`` without one; never
  negative.
* Which chats count: :meth:`WaitingConfig.counts`.

Everything here is immutable and advanced once per successful poll, so a snapshot can
hold a :class:`Waits` and a scrape can read it without locks. Only the open waits are
persisted (:mod:`exporter.snapshot.statefile`); histograms restart at zero after a
restart, as Prometheus expects of counters.
"""

from __future__ import annotations

import operator
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from types import MappingProxyType
from typing import overload

import msgspec

from ..model import CHAT_TYPES, Chat, matches_any
from .chatids import WaitStarts, indices
from .schedule import Schedule

DEFAULT_BUCKETS = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)


@dataclass(frozen=True)
class WaitingConfig:
    """The ``waiting:`` section: which chats count as customers waiting, and how waits are bucketed."""

    include: tuple[re.Pattern[str], ...] = ()  # regexes on chat id or name; empty: every chat
    exclude: tuple[re.Pattern[str], ...] = ()
    chat_types: tuple[str, ...] = CHAT_TYPES
    count_muted: bool = False  # muted chats are noise, not customers
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    schedule: str | None = None  # default schedule for every account; None: 24/7

    def counts(self, chat: Chat) -> bool:
        """Whether the chat counts: not read-only, a counted type, unmuted (unless counted), selected."""
        if chat.read_only or (chat.muted and not self.count_muted) or chat.chat_type not in self.chat_types:
            return False
        if self.include and not matches_any(self.include, chat.id, chat.name):
            return False
        return not (self.exclude and matches_any(self.exclude, chat.id, chat.name))


# --- the tracker ----------------------------------------------------------------


# Slots: one or more per account between polls (see snapshot.state.AccountState).
@dataclass(frozen=True, slots=True)
class Histogram:
    """One chat type's observed wait durations since start. ``counts`` are CUMULATIVE, as Prometheus
    exposes them: ``counts[i]`` is how many waits lasted at most ``buckets[i]``; ``count`` is +Inf."""

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    @classmethod
    def empty(cls, buckets: Sequence[float]) -> Histogram:
        """An empty histogram, one object per bucket list: every account (and every reply kind)
        starts from it, and most of them, small or quiet, never observe anything."""
        # By repr: 300 and 300.0, or 0.0 and -0.0, are equal keys but not the same text.
        key = repr(tuple(buckets))
        found = _EMPTY.get(key)
        if found is None:
            found = _EMPTY.setdefault(key, cls(tuple(buckets), (0,) * len(buckets), 0.0, 0))
        return found

    def observe(self, seconds: float) -> Histogram:
        i = bisect_left(self.buckets, seconds)  # first bucket with le >= seconds
        counts = self.counts[:i] + tuple(c + 1 for c in self.counts[i:])
        return Histogram(self.buckets, counts, self.sum + seconds, self.count + 1)


_NO_WAITS: Mapping[str, tuple[str, float]] = MappingProxyType({})
# Per chat type's code: a bytes.translate table that makes that code 1 and every other 0.
_ONE_CODE = tuple(bytes(int(i == code) for i in range(256)) for code in range(len(CHAT_TYPES)))
# Each bucket list's empty histogram (Histogram.empty): as many as bucket lists ever configured.
_EMPTY: dict[str, Histogram] = {}
_EMPTY_HISTOGRAMS: dict[str, Mapping[str, Histogram]] = {}


class Wait(msgspec.Struct, frozen=True, gc=False):
    """One chat waiting now.

    A msgspec Struct with gc=False rather than a dataclass: a render or an alert check reads
    thousands of these (a :class:`WaitList` makes them as they are read), and the cycle
    collector (which holds the GIL, delaying scrapes) would walk each of them on every full
    collection meanwhile. It holds only strings and floats, so it can never be part of a cycle.
    """

    chat_id: str
    chat_type: str
    since: float  # start of the wait (Unix time)
    seconds: float  # waited so far as of the poll, in open hours when a schedule applies


def wait_seconds(since: float, now: float, schedule: Schedule | None) -> float:
    """A wait's duration: open time under the schedule, else wall-clock; never negative."""
    if schedule is not None:
        return schedule.open_seconds(since, now)
    return now - since if now > since else 0.0


@dataclass(frozen=True, slots=True)
class Waits:
    """One account's tracker state: the open waits, and the time-to-read histograms per chat type."""

    since: Mapping[str, tuple[str, float]]  # chat_id -> (chat_type, start) of every open wait
    histograms: Mapping[str, Histogram]  # chat_type -> histogram; both chat types always present

    @classmethod
    def empty(cls, buckets: Sequence[float] = DEFAULT_BUCKETS) -> Waits:
        """No open waits, and each chat type's :meth:`Histogram.empty`, in one mapping per bucket
        list (as :data:`_EMPTY`'s): every account starts from it, until its first wait ends."""
        empty = Histogram.empty(buckets)
        key = repr(empty.buckets)
        found = _EMPTY_HISTOGRAMS.get(key)
        if found is None:
            found = _EMPTY_HISTOGRAMS.setdefault(key, MappingProxyType(dict.fromkeys(CHAT_TYPES, empty)))
        return cls(_NO_WAITS, found)

    def advance(
        self,
        chats: Sequence[Chat],
        now: float,
        config: WaitingConfig,
        schedule: Schedule | None,
        counted: Collection[str] | None = None,
    ) -> Waits:
        """The state after a successful poll that returned ``chats`` at ``now`` (rules: module docstring).

        ``counted``: the ids of the chats that count, when that was decided before ``chats`` were
        transformed by privacy mode (include/exclude match the real ids and names, which the
        transformed chats no longer carry); None: ``config.counts`` decides on ``chats`` themselves.
        """
        # A table's items in one pass: cheaper than a lookup in it per chat of the answer.
        old = dict(self.since.items()) if isinstance(self.since, WaitStarts) else self.since
        since: dict[str, tuple[str, float]] = {}
        ended: dict[str, tuple[str, float]] = {}  # by chat id: a duplicated chat is observed once
        counts = config.counts if counted is None else lambda chat: chat.id in counted
        for chat in chats:
            prev = old.get(chat.id)
            if chat.unread > 0:
                if not counts(chat):
                    continue
                kind = chat.chat_type
                if prev is None:
                    ts = chat.last_activity
                    since[chat.id] = (kind, float(ts) if ts < now else float(now))
                else:
                    since[chat.id] = prev if prev[0] == kind else (kind, prev[1])
            elif prev is not None and counts(chat):
                ended[chat.id] = (chat.chat_type, prev[1])
        histograms = self.histograms
        if ended:
            updated = dict(histograms)
            for kind, start in ended.values():
                updated[kind] = updated[kind].observe(wait_seconds(start, now, schedule))
            histograms = MappingProxyType(updated)
        # Joined (chatids.py): the answer's id strings, tuples and floats go with this poll's
        # transients instead of staying behind, one small object each, between them.
        return Waits(WaitStarts(since) if since else _NO_WAITS, histograms)

    def waiting(self, now: float, schedule: Schedule | None) -> WaitList:
        """Every open wait as of ``now``, longest first (ties: earliest start, then chat id)."""
        table = self.since if isinstance(self.since, WaitStarts) else WaitStarts(self.since)
        starts = table.starts.tolist()
        if schedule is not None:
            seconds = schedule.open_seconds_to(starts, now)
        else:
            seconds = [now - start if now > start else 0.0 for start in starts]
        ids = list(table)
        order = sorted(range(len(ids)), key=lambda i: (-seconds[i], starts[i], ids[i]))
        if schedule is None:  # each wait's seconds worked out again from its start when read
            return WaitList(table, indices(order, len(order)), float(now))
        return WaitList(table, indices(order, len(order)), array("d", [seconds[i] for i in order]))


class WaitList(Sequence[Wait]):
    """The open waits as of a poll, longest first, read only: a :class:`Wait` is made when read.

    A snapshot keeps these until the next poll, one per open wait, beside the table they come
    from; each costs an index here, and its seconds under a schedule, not an object with two
    floats. Without one its seconds are the poll's time less its start, worked out when read.
    """

    __slots__ = ("_order", "_seconds", "_table")

    def __init__(self, table: WaitStarts, order: Sequence[int], seconds: array[float] | float) -> None:
        """``seconds``: each wait's, in ``order``; or the poll's time, when no schedule applies."""
        self._table, self._order, self._seconds = table, order, seconds

    def _all_seconds(self) -> Sequence[float]:
        """Each wait's seconds, longest first (as :meth:`Waits.waiting` worked them out)."""
        now = self._seconds
        if not isinstance(now, float):
            return now
        starts = map(self._table.starts.__getitem__, self._order)
        return [now - start if now > start else 0.0 for start in starts]

    def on(self, table: WaitStarts) -> WaitList:
        """These waits on ``table``: these ones' in the same order (:meth:`WaitStarts.within`)."""
        return WaitList(table, self._order, self._seconds)

    def _wait(self, i: int) -> Wait:
        chat_id, chat_type, since = self._table.at(self._order[i])
        now = self._seconds
        if not isinstance(now, float):
            return Wait(chat_id, chat_type, since, now[i])
        return Wait(chat_id, chat_type, since, now - since if now > since else 0.0)

    @overload
    def __getitem__(self, i: int) -> Wait: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Wait, ...]: ...
    def __getitem__(self, i: int | slice) -> Wait | tuple[Wait, ...]:
        if isinstance(i, slice):
            return tuple(map(self._wait, range(len(self._order))[i]))
        return self._wait(range(len(self._order))[i])  # negative and out-of-range as a tuple's

    def __iter__(self) -> Iterator[Wait]:
        return map(Wait, *self._table.columns(self._order), self._all_seconds())

    def _by_type(self) -> Iterator[tuple[str, list[int]]]:
        """Each chat type with the positions (longest first) of its waits."""
        codes = bytes(map(self._table.codes.__getitem__, self._order))  # each wait's type, once
        for code, kind in enumerate(CHAT_TYPES):
            yield kind, list(compress(range(len(codes)), codes.translate(_ONE_CODE[code])))

    def oldest_by_type(self) -> dict[str, Wait]:
        """:func:`oldest_by_type` of these waits, a :class:`Wait` made for each type's oldest only.

        The first of a type's earliest starts in this list's order is its oldest: the list is
        sorted by longest first, then start, then chat id, which are the ties' order."""
        oldest: dict[str, Wait] = {}
        starts = self._table.starts
        for kind, positions in self._by_type():
            if positions:
                since = [starts[self._order[j]] for j in positions]
                oldest[kind] = self._wait(positions[since.index(min(since))])
        return oldest

    def longer_than_counts(self, buckets: Sequence[float]) -> dict[str, tuple[int, ...]]:
        """:func:`longer_than_counts` of these waits, without a :class:`Wait` per wait."""
        out, seconds = {}, self._all_seconds()
        for kind, positions in self._by_type():
            values = [seconds[j] for j in reversed(positions)]  # shortest first
            out[kind] = tuple(len(values) - bisect_right(values, b) for b in buckets)
        return out

    def __len__(self) -> int:
        return len(self._order)

    def by_chat(self) -> Mapping[str, Wait]:
        """These waits by chat id: each :class:`Wait` made when looked up, none kept."""
        ids = self._table.columns(self._order)[0]
        return _ByChat(dict(zip(ids, range(len(self._order)), strict=True)), self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]  # as a list's: equal to lists and tuples

    def __repr__(self) -> str:
        return f"WaitList({list(self)!r})"


class _ByChat(Mapping[str, Wait]):
    """:meth:`WaitList.by_chat`: each waiting chat's index in the list, by chat id."""

    __slots__ = ("_index", "_waits")

    def __init__(self, index: dict[str, int], waits: WaitList) -> None:
        self._index, self._waits = index, waits

    def __getitem__(self, chat_id: str) -> Wait:
        return self._waits._wait(self._index[chat_id])

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def by_chat(waits: Mapping[str, Wait] | Iterable[Wait]) -> Mapping[str, Wait]:
    """Waits by chat id: a :class:`WaitList`'s through its columns (:meth:`WaitList.by_chat`)."""
    if isinstance(waits, WaitList):
        return waits.by_chat()
    return waits if isinstance(waits, Mapping) else {wait.chat_id: wait for wait in waits}


def oldest_by_type(waits: Iterable[Wait]) -> dict[str, Wait]:
    """The oldest wait per chat type (earliest start; ties: longest, then chat id); no entry without waits."""
    if isinstance(waits, WaitList):
        return waits.oldest_by_type()
    oldest: dict[str, Wait] = {}
    for w in waits:
        cur = oldest.get(w.chat_type)
        if cur is None or (w.since, -w.seconds, w.chat_id) < (cur.since, -cur.seconds, cur.chat_id):
            oldest[w.chat_type] = w
    return oldest


def longer_than_counts(waits: Iterable[Wait], buckets: Sequence[float]) -> dict[str, tuple[int, ...]]:
    """Per chat type (both always present), how many waits lasted strictly longer than each bucket."""
    if isinstance(waits, WaitList):
        return waits.longer_than_counts(buckets)
    seconds: dict[str, list[float]] = {t: [] for t in CHAT_TYPES}
    for w in waits:
        seconds.setdefault(w.chat_type, []).append(w.seconds)
    out = {}
    for kind, values in seconds.items():
        values.sort()
        out[kind] = tuple(len(values) - bisect_right(values, b) for b in buckets)
    return out
