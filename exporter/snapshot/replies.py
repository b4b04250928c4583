"""Who is waiting for an answer, and how fast answers came: exact, from WhatsGate's event log.

CONTRACT (skeleton committed by the lead so that three helpers build against one interface;
the ``replies-state`` branch implements the bodies, the others only call them):

* A chat is **unanswered** from the first incoming message after our last outgoing message
  until our next outgoing message. Direction: :attr:`Message.outgoing`.
* When an outgoing message closes an unanswered span, its duration (business hours under the
  account's schedule, as waits: :func:`exporter.snapshot.waiting.wait_seconds`) is observed once
  in the ``(chat_type, response)`` histogram: ``response="first"`` when no message either way
  came in the ``conversation_gap`` before the span opened, else ``"next"``.
* Messages older than what a chat has already processed change no span (counted in
  :attr:`Tracker.out_of_order`). A duplicate (same event id, or same timestamp+direction already
  processed) is not counted twice.
* A chat that get-chats no longer lists, or that stops counting (``waiting.*`` rules, read-only,
  ``status@broadcast``), ends its span without an observation (:meth:`Tracker.keep_only`).
* A chat is *known* once a message of it was processed or its history backfilled; until then it
  has no unanswered series (absent, never guessed).

Everything is immutable; an update returns a new :class:`Tracker`, as :class:`Waits` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec

from ..model import CHAT_TYPES, REASONS
from .schedule import Schedule
from .waiting import Histogram, Wait

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
    return MappingProxyType({(t, r): Histogram.empty(buckets) for t in CHAT_TYPES for r in RESPONSE_TYPES})


def _zero(keys: Sequence[str]) -> Mapping[str, int]:
    return MappingProxyType(dict.fromkeys(keys, 0))


@dataclass(frozen=True)
class Tracker:
    """One account's reply state: known chats, response-time histograms, message counters."""

    chats: Mapping[str, ChatTrack]
    histograms: Mapping[tuple[str, str], Histogram]  # (chat_type, response) -> histogram; all present
    received: Mapping[str, int]  # chat_type -> incoming messages seen
    sent: Mapping[str, int]  # chat_type -> outgoing messages seen
    out_of_order: int = 0  # messages older than their chat's processed ones: changed nothing

    @classmethod
    def empty(cls, buckets: Sequence[float] = DEFAULT_REPLY_BUCKETS) -> Tracker:
        return cls(MappingProxyType({}), _empty_histograms(buckets), _zero(CHAT_TYPES), _zero(CHAT_TYPES))

    def advance(
        self,
        messages: Sequence[Message],
        chat_types: Mapping[str, str],
        config: RepliesConfig,
        schedule: Schedule | None,
    ) -> Tracker:
        """The state after ``messages`` (sorted by the caller: event_date, id).

        ``chat_types``: chat id -> chat type of the chats that count (from the last get-chats,
        privacy applied). Messages of other chats are counted in received/sent only if the chat
        is listed; a chat not yet listed (new since get-chats) is typed by its id (``@g.us``:
        group) and tracked until :meth:`keep_only` says otherwise.
        """
        raise NotImplementedError

    def backfill(
        self, chat_id: str, chat_type: str, history: Sequence[Message], config: RepliesConfig
    ) -> Tracker:
        """Learn an unknown chat from get-history (any order): the newest outgoing message and the
        first incoming one after it open its span at its true time. Changes no histogram or counter;
        a chat already known is left as it is."""
        raise NotImplementedError

    def keep_only(self, counted: Mapping[str, str], polled_at: float) -> Tracker:
        """After a successful get-chats at ``polled_at``: chats not in ``counted`` (id -> type) whose
        newest message is older than ``polled_at`` are forgotten (their span ends unobserved)."""
        raise NotImplementedError

    def knows(self, chat_id: str) -> bool:
        return chat_id in self.chats

    def unanswered(self, now: float, schedule: Schedule | None) -> list[Wait]:
        """Every open span as of ``now``, longest first (ties: earliest start, then chat id)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The chats (not histograms or counters) for the state file."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, obj: Any, buckets: Sequence[float], now: float) -> Tracker:
        """The inverse of :meth:`to_json`; bad entries skipped one by one, spans starting after
        ``now`` rejected (a state file from the future must not silence alerts)."""
        raise NotImplementedError


class Cursor(msgspec.Struct, frozen=True):
    """Where the event log was read up to: the newest ``event_date`` string exactly as received,
    and the ids of the events at that date (the bound may be inclusive)."""

    date: str
    ids: tuple[int, ...] = ()


def _zero_errors() -> Mapping[str, int]:
    return _zero(REASONS)


@dataclass(frozen=True)
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
