"""Who is waiting for an answer, and how fast answers came: exact, from WhatsGate's event log.

CONTRACT (skeleton committed by the lead so that three helpers build against one interface;
the ``replies-state`` branch implements the bodies, the others only call them):

* A chat is **unanswered** from the first incoming message after our last outgoing message
  until our next outgoing message. Direction: :attr:`Message.outgoing`.
* When an outgoing message closes an unanswered span, its duration (business hours under the
  account's schedule, as waits: :func:`exporter.snapshot.waiting.wait_seconds`) is observed once
  in the ``(chat_type, response)`` histogram: ``response="first"`` when no message either way
  came in the ``conversation_gap`` before the span opened, else ``"next"``.
* Messages are taken in the order of their own timestamps. Messages older than what a chat has
  already processed change nothing, but for our answer within the open span (logged late):
  it answers the span (:meth:`Tracker.advance`). A duplicate (same
  event id, or same timestamp+direction already processed) is not counted twice.
* A chat that get-chats no longer lists, or that stops counting (``waiting.*`` rules, read-only,
  ``status@broadcast``), ends its span without an observation (:meth:`Tracker.keep_only`).
* A chat is *known* once its history was backfilled or our message processed (or, where nothing
  else can tell, a customer's message); until then it has no unanswered series (absent, never
  guessed).

Everything is immutable; an update returns a new :class:`Tracker`, as :class:`Waits` does.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec

from ..model import CHAT_TYPES, CONTACT, GROUP, REASONS
from .schedule import Schedule
from .waiting import Histogram, Wait, wait_seconds

FIRST = "first"
NEXT = "next"
RESPONSE_TYPES = (FIRST, NEXT)
DEFAULT_REPLY_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)


@dataclass(frozen=True)
class RepliesConfig:
    """The ``replies:`` section (parsed by :mod:`exporter.config.replies`)."""

    enabled: bool = True  # false: events-get and get-history are never called, no reply metrics
    conversation_gap: float = 86400.0
    buckets: tuple[float, ...] = DEFAULT_REPLY_BUCKETS
    max_pages: int = 20
    history_per_poll: int = 10  # 0: never call get-history


class Message(msgspec.Struct, frozen=True, gc=False):
    """One message, reduced to what reply times need (never its body or media key)."""

    chat_id: str  # the chat: the message id's middle part (for groups, the group), privacy applied
    outgoing: bool  # sent by this account (event action create, id prefix true_)
    timestamp: float  # the message's own timestamp (Unix seconds), not event_date
    event_id: int | None = None  # None for messages from get-history


class ChatTrack(msgspec.Struct, frozen=True, gc=False):
    """What one known chat's span needs between polls (persisted in the state file)."""

    chat_type: str
    newest: float  # timestamp of the newest message processed for this chat
    last_message: float | None = None  # newest message either way: the conversation gap
    open_since: float | None = None  # first unanswered incoming message; None: answered
    first: bool = False  # the open span opened a conversation (response="first" when answered)


def _empty_histograms(buckets: Sequence[float]) -> Mapping[tuple[str, str], Histogram]:
    """Shared by every tracker with these buckets until it observes something: read-only, and
    most accounts of a large fleet are quiet."""
    key = repr(tuple(buckets))  # as Histogram.empty: the text tells 300 from 300.0
    found = _EMPTY_HISTOGRAMS.get(key)
    if found is None:
        empty = {(t, r): Histogram.empty(buckets) for t in CHAT_TYPES for r in RESPONSE_TYPES}
        found = _EMPTY_HISTOGRAMS.setdefault(key, MappingProxyType(empty))
    return found


_EMPTY_HISTOGRAMS: dict[str, Mapping[tuple[str, str], Histogram]] = {}
# Message counters before the first message: one read-only mapping for every tracker.
_ZERO: Mapping[str, int] = MappingProxyType(dict.fromkeys(CHAT_TYPES, 0))


# Slots: one or more per account between polls (see snapshot.state.AccountState).
@dataclass(frozen=True, slots=True)
class Tracker:
    """One account's reply state: known chats, response-time histograms, message counters."""

    chats: Mapping[str, ChatTrack]
    histograms: Mapping[tuple[str, str], Histogram]  # (chat_type, response) -> histogram; all present
    received: Mapping[str, int]  # chat_type -> incoming messages seen
    sent: Mapping[str, int]  # chat_type -> outgoing messages seen

    @classmethod
    def empty(cls, buckets: Sequence[float] = DEFAULT_REPLY_BUCKETS) -> Tracker:
        return cls(MappingProxyType({}), _empty_histograms(buckets), _ZERO, _ZERO)

    def advance(
        self,
        messages: Sequence[Message],
        chat_types: Mapping[str, str],
        config: RepliesConfig,
        schedule: Schedule | None,
        ignored: Collection[str] = (),
        guess: bool = True,
    ) -> Tracker:
        """The state after ``messages`` (given in the log's order: event_date, id), taken in the
        order of their own timestamps (ties: the log's order): an answer logged after the
        customer's next message still answers the message before it.

        ``chat_types``: chat id -> chat type of the chats that count (from the last get-chats,
        privacy applied); ``ignored``: the chats get-chats listed that do not count (muted,
        read-only, excluded): their messages change nothing and are not counted. A chat in
        neither (new since get-chats) is typed by its id (``@g.us``: group) and tracked until
        :meth:`keep_only` says otherwise; ``status@broadcast`` is never a chat.

        ``guess``: whether an incoming message of a chat the tracker does not know opens its span
        (the customer may have waited since an earlier message that only get-history can tell).
        False: it is counted in received, and the chat stays unknown until get-history or our
        next message makes it known.

        Per message of a tracked chat: older than the chat's newest processed message, it changes
        nothing, unless it is our answer within the open span (logged late, after the customer's
        next message was processed): that answers the span, and the chat is forgotten (``guess``:
        waits again from its newest message); an event id already processed in this call
        changes nothing at all (across calls the cursor keeps ids apart). Otherwise it counts in
        received/sent and: incoming with no open span opens one (``first`` when no message either
        way came in the ``conversation_gap`` before it, a message exactly ``conversation_gap``
        before included); outgoing closes the open span, observing its duration once.
        """
        chats = dict(self.chats)
        received, sent = dict(self.received), dict(self.sent)
        observed: dict[tuple[str, str], list[float]] = {}
        seen: set[int] = set()
        gap = config.conversation_gap
        for m in sorted(messages, key=_timestamp):
            cid = m.chat_id
            if cid in ignored or cid == STATUS_BROADCAST:
                continue
            if m.event_id is not None:
                if m.event_id in seen:
                    continue
                seen.add(m.event_id)
            track = chats.get(cid)
            chat_type = chat_types.get(cid) or (track.chat_type if track is not None else type_of(cid))
            if track is None:
                if not guess and not m.outgoing:
                    received[chat_type] = received.get(chat_type, 0) + 1
                    continue
                cid = sys.intern(cid)  # the chat index's key too: one string per chat id
            elif m.timestamp < track.newest:
                if m.outgoing and track.open_since is not None and m.timestamp >= track.open_since:
                    # Our answer, logged after an earlier poll saw the customer's next message: it
                    # answered the span. Since when they wait again, only get-history can tell: the
                    # chat is learnt again (guessing: from their newest message).
                    sent[chat_type] = sent.get(chat_type, 0) + 1
                    response = FIRST if track.first else NEXT
                    seconds = wait_seconds(track.open_since, m.timestamp, schedule)
                    observed.setdefault((chat_type, response), []).append(seconds)
                    if guess:
                        first = track.newest - m.timestamp > gap
                        chats[cid] = ChatTrack(chat_type, track.newest, track.newest, track.newest, first)
                    else:
                        del chats[cid]
                continue
            if m.outgoing:
                sent[chat_type] = sent.get(chat_type, 0) + 1
                if track is not None and track.open_since is not None:
                    response = FIRST if track.first else NEXT
                    seconds = wait_seconds(track.open_since, m.timestamp, schedule)
                    observed.setdefault((chat_type, response), []).append(seconds)
                chats[cid] = ChatTrack(chat_type, m.timestamp, m.timestamp)
                continue
            received[chat_type] = received.get(chat_type, 0) + 1
            if track is not None and track.open_since is not None:
                chats[cid] = msgspec.structs.replace(
                    track, chat_type=chat_type, newest=m.timestamp, last_message=m.timestamp
                )
                continue
            last = track.last_message if track is not None else None
            first = last is None or m.timestamp - last > gap
            chats[cid] = ChatTrack(chat_type, m.timestamp, m.timestamp, m.timestamp, first)
        histograms = self.histograms
        if observed:
            updated = dict(histograms)
            for key, values in observed.items():
                histogram = updated[key]
                for seconds in values:
                    histogram = histogram.observe(seconds)
                updated[key] = histogram
            histograms = MappingProxyType(updated)
        return Tracker(
            MappingProxyType(chats),
            histograms,
            MappingProxyType(received),
            MappingProxyType(sent),
        )

    def backfill(
        self, chat_id: str, chat_type: str, history: Sequence[Message], config: RepliesConfig
    ) -> Tracker:
        """Learn an unknown chat from get-history (any order): the newest outgoing message and the
        first incoming one after it open its span at its true time. Changes no histogram or counter;
        a chat already known is left as it is.

        A customer message in the same second as our answer counts as before it (the answer
        closes it). Without any outgoing message the span opens at the oldest incoming one that
        history still holds (history is capped: the wait is at least that long). The span is a
        ``first`` response when no message came in the ``conversation_gap`` before it. An empty
        history makes the chat known without a span."""
        if chat_id in self.chats:
            return self
        ordered = sorted(history, key=lambda m: (m.timestamp, m.outgoing))
        if not ordered:
            track = ChatTrack(chat_type, 0.0)
        else:
            newest = ordered[-1].timestamp
            last_out = max((i for i, m in enumerate(ordered) if m.outgoing), default=-1)
            opening = next((m for m in ordered[last_out + 1 :] if not m.outgoing), None)
            if opening is None:
                track = ChatTrack(chat_type, newest, newest)
            else:
                before = ordered[last_out].timestamp if last_out >= 0 else None
                first = before is None or opening.timestamp - before > config.conversation_gap
                track = ChatTrack(chat_type, newest, newest, opening.timestamp, first)
        chats = dict(self.chats)
        chats[sys.intern(chat_id)] = track
        return dataclasses.replace(self, chats=MappingProxyType(chats))

    def keep_only(self, counted: Mapping[str, str], polled_at: float) -> Tracker:
        """After a successful get-chats at ``polled_at``: chats not in ``counted`` (id -> type) whose
        newest message is older than ``polled_at`` are forgotten (their span ends unobserved); the
        others take the type get-chats gives them."""
        chats: dict[str, ChatTrack] = {}
        for cid, track in self.chats.items():
            kind = counted.get(cid)
            if kind is None:
                if track.newest < polled_at:
                    continue
                chats[cid] = track
            else:
                chats[cid] = (
                    track if track.chat_type == kind else msgspec.structs.replace(track, chat_type=kind)
                )
        return dataclasses.replace(self, chats=MappingProxyType(chats))

    def knows(self, chat_id: str) -> bool:
        return chat_id in self.chats

    def unanswered(self, now: float, schedule: Schedule | None) -> list[Wait]:
        """Every open span as of ``now``, longest first (ties: earliest start, then chat id)."""
        spans = [
            (cid, t.chat_type, t.open_since) for cid, t in self.chats.items() if t.open_since is not None
        ]
        starts = [start for _, _, start in spans]
        if schedule is not None:
            seconds = schedule.open_seconds_to(starts, now)
        else:
            seconds = [now - start if now > start else 0.0 for start in starts]
        out = [Wait(cid, kind, start, s) for (cid, kind, start), s in zip(spans, seconds, strict=True)]
        out.sort(key=lambda w: (-w.seconds, w.since, w.chat_id))
        return out

    def to_json(self) -> dict[str, Any]:
        """The chats (not histograms or counters) for the state file:
        ``{"chats": {chat_id: [chat_type, newest, last_message, open_since, first]}}``."""
        return {
            "chats": {
                cid: [t.chat_type, t.newest, t.last_message, t.open_since, t.first]
                for cid, t in self.chats.items()
            }
        }

    @classmethod
    def read_json(cls, obj: Any, buckets: Sequence[float], now: float) -> tuple[Tracker, int]:
        """The inverse of :meth:`to_json`, and how many entries were skipped (for the state file's
        log line): bad entries skipped one by one, spans starting after ``now`` rejected (a state
        file from the future must not silence alerts).

        An entry is skipped when it is not ``[type, newest, last, open, first]`` of a known chat
        type and finite non-negative times, or when any of its times lies after ``now``: a newest
        message from the future would make every later message look out of order, and so hide
        the answers that end its wait."""
        empty = cls.empty(buckets)
        chats = obj.get("chats") if isinstance(obj, dict) else None
        if not isinstance(chats, dict):
            return empty, 0
        kept: dict[str, ChatTrack] = {}
        for cid, entry in chats.items():
            track = _track(entry, now)
            if isinstance(cid, str) and track is not None:
                kept[sys.intern(cid)] = track
        return dataclasses.replace(empty, chats=MappingProxyType(kept)), len(chats) - len(kept)


def _timestamp(m: Message) -> float:
    return m.timestamp


STATUS_BROADCAST = "status@broadcast"  # WhatsApp's status updates: listed as a chat, never a customer


def type_of(chat_id: str) -> str:
    """The type of a chat that get-chats has not listed yet, from its id's server part."""
    return GROUP if chat_id.endswith("@g.us") else CONTACT


def _time(value: Any, now: float, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError
    if not 0 <= value <= now:  # also refuses NaN
        raise ValueError
    return float(value)


def _track(entry: Any, now: float) -> ChatTrack | None:
    if not isinstance(entry, list) or len(entry) != 5:
        return None
    kind, newest, last, since, first = entry
    if kind not in CHAT_TYPES or not isinstance(first, bool):
        return None
    try:
        newest_time = _time(newest, now)
        assert newest_time is not None
        return ChatTrack(kind, newest_time, _time(last, now, True), _time(since, now, True), first)
    except ValueError:
        return None


class Cursor(msgspec.Struct, frozen=True):
    """Where the event log was read up to: the newest ``event_date`` string exactly as received,
    and the ids of the events at that date (the bound may be inclusive)."""

    date: str
    ids: tuple[int, ...] = ()


_NO_ERRORS: Mapping[str, int] = MappingProxyType(dict.fromkeys(REASONS, 0))


def _zero_errors() -> Mapping[str, int]:
    return _NO_ERRORS  # read-only: shared until the first failure makes a copy


@dataclass(frozen=True, slots=True)
class ReplyData:
    """What the event poll of one account knows: :attr:`AccountState.replies` (None while
    ``replies.enabled`` is false). Built by :mod:`exporter.poller.events`."""

    tracker: Tracker
    cursor: Cursor | None = None
    up: bool = False
    last_success: float | None = None
    last_error: str | None = None
    errors: Mapping[str, int] = field(default_factory=_zero_errors)  # reason -> failed events polls
    truncated: int = 0  # polls that stopped at max_pages
    disconnects: int = 0  # disconnect events seen
    skipped: int = 0  # events without a usable message, of an unknown action, or undecodable
    # The open spans as of the last update, longest first (Tracker.unanswered).
    unanswered: tuple[Wait, ...] = ()

    def is_stale(self, now: float, stale_after: float) -> bool:
        """Unanswered series are dropped when the events poll has failed for longer than
        ``stale_after``: a reply we cannot see must not page anyone."""
        return self.last_success is None or now - self.last_success > stale_after
