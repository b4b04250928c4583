"""One account's events poll: WhatsGate's event log read into reply times (issue 19).

A job of its own in the account's :class:`~exporter.poller.scheduler.Scheduler`, next to
the get-chats poll and at the same interval; it never delays or fails that poll. Its
failures are its own (:attr:`ReplyData.up`, ``errors``, ``last_error``): ``whatsgate_up``
stays true to get-chats. How the log is read (the cursor, the pages) is
:mod:`exporter.poller.eventlog`; this module folds what was read into the account's reply state.

get-history failing does not fail the events poll: the chat stays unknown (absent, never
guessed) and is asked again at the next poll; one log line per change (failing/working).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from types import MappingProxyType
from typing import Protocol

import msgspec

from ..config import redaction
from ..config.settings import Config
from ..model import INTERNAL, REASONS, Account, Chat
from ..snapshot.chatids import ChatTable
from ..snapshot.privacy import PLAIN
from ..snapshot.replies import STATUS_BROADCAST, Message, ReplyData, Tracker, type_of
from ..snapshot.state import AccountState
from ..snapshot.statefile import SavedReplies
from ..whatsgate.client import PollError
from .eventlog import Event, EventSource, read_log

log = logging.getLogger(__name__)

# The actions events-get documents (and `ready`, which the webhook documentation shows).
INCOMING, OUTGOING, DISCONNECT = "message", "create", "disconnect"
KNOWN_ACTIONS = frozenset({INCOMING, OUTGOING, "ack", "media", "sent", "error", DISCONNECT, "ready"})
EVENTS_JOB = "#events"  # the scheduler key of an account's events job: its WhatsappID and this


class Publisher(Protocol):
    def publish(self, state: AccountState) -> None: ...


class AccountJob(Protocol):
    """What the events job shares with the account's get-chats poller (:class:`AccountPoller`)."""

    state: AccountState  # read and replaced under ``lock`` by both jobs
    restored_replies: SavedReplies | None

    @property
    def account(self) -> Account: ...
    @property
    def settings(self) -> Callable[[], Config]: ...
    @property
    def sink(self) -> Publisher: ...
    @property
    def lock(self) -> threading.Lock: ...
    @property
    def chat_index(self) -> ChatIndex | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class ChatIndex:
    """What the latest get-chats said about which chats count, for the events poll (privacy
    applied). Built by the get-chats poll only while ``replies.enabled``; replaced whole."""

    polled_at: float
    # Every listed chat's shown id, once, with its chat type if it counts: the counted, excluded
    # and the snapshot's selected chats are views of it (the first two made when read).
    table: ChatTable
    # The counted chats the tracker did not know at the poll, most urgent first (unread, then
    # newest activity): the order get-history backfills them in, and only as many as two events
    # polls can ask for (it is rebuilt at every get-chats poll). Kept as their positions in
    # ``table``, not as id strings: every account keeps these until its next poll.
    urgent: Sequence[int] = ()
    # Their real ids (what get-history is asked for), in that order, where privacy shows other ids.
    reals: tuple[str, ...] = ()

    @property
    def counted(self) -> Mapping[str, str]:  # shown chat id -> chat type, of the chats that count
        return self.table.counted()

    @property
    def excluded(self) -> Set[str]:  # shown ids of listed chats that do not count
        return self.table.excluded()

    @property
    def urgency(self) -> tuple[tuple[str, str], ...]:
        """(shown id, real id) of the urgent chats, most urgent first."""
        shown = self.table.ids(self.urgent)
        return tuple(zip(shown, self.reals or shown, strict=True))

    @classmethod
    def build(
        cls,
        found: Iterable[Chat],
        config: Config,
        polled_at: float,
        known: Callable[[str], bool] | None = None,
    ) -> ChatIndex:
        """``known``: whether the tracker knows a chat (by its shown id); None: it knows none."""
        privacy, waiting = config.privacy, config.waiting
        listed: dict[str, str | None] = {}
        unknown: list[Chat] = []  # and their shown ids, in that order
        shown_ids: list[str] = []
        for chat in found:
            # Kept joined in one string (snapshot/chatids.py), not as this string.
            shown = privacy.chat_id(chat.id)
            if chat.id == STATUS_BROADCAST or not waiting.counts(chat):
                listed[shown] = None
                continue
            listed[shown] = chat.chat_type
            if known is None or not known(shown):
                unknown.append(chat)
                shown_ids.append(shown)
        # Each chat's rank made as it is compared, not every chat's at once (with the answer).
        ranks = ((c.unread == 0, -c.last_activity, s, c.id) for c, s in zip(unknown, shown_ids, strict=True))
        urgent = heapq.nsmallest(2 * config.replies.history_per_poll, ranks)
        table = ChatTable(listed)
        reals = () if privacy.chat_ids == PLAIN else tuple(real for *_, real in urgent)
        # Once the tracker knows every chat, none: no empty array is kept until the next poll.
        positions = table.positions(shown for *_, shown, _ in urgent) if urgent else ()
        return cls(polled_at, table, positions, reals)


def _counted_errors(errors: Mapping[str, int], reason: str) -> Mapping[str, int]:
    return MappingProxyType({**errors, reason: errors.get(reason, 0) + 1})


class EventsPoller:
    """The events job of one account: reads its log, keeps its reply state in ``AccountState.replies``."""

    # Slotted as the account's AccountPoller.
    __slots__ = ("_failing", "_history_failing", "clock", "newest_first", "poller", "runs", "source")

    def __init__(
        self, poller: AccountJob, source: EventSource, clock: Callable[[], float] = time.time
    ) -> None:
        self.poller = poller  # the account's get-chats poller: its state, lock, sink and chat index
        self.source = source
        self.clock = clock
        self.newest_first: bool | None = None  # the server's page order, once learnt
        self._failing = False  # for one log line per change, not one per poll
        self._history_failing = False
        self.runs = 0

    def _fields(self) -> dict[str, object]:
        return {"account": self.poller.account.name, "whatsapp_id": self.poller.account.whatsapp_id}

    def _start(self, config: Config) -> ReplyData:
        """The reply state before this account's first events poll: restored from the state file, or empty."""
        buckets = config.replies.buckets
        saved = self.poller.restored_replies
        if saved is not None:
            try:
                tracker, skipped = saved.restore(buckets, self.clock())
            except Exception:  # a state file is a hint: a tracker that cannot be rebuilt starts empty
                tracker, skipped = Tracker.empty(buckets), -1
            if skipped:  # one line; the chats skipped are learnt afresh (get-history)
                fields = {**self._fields(), "bad": skipped} if skipped > 0 else self._fields()
                log.warning("state file: reply spans skipped", extra={"fields": fields})
            return ReplyData(tracker=tracker, cursor=saved.cursor)
        return ReplyData(tracker=Tracker.empty(buckets))

    def _messages(
        self, events: Sequence[Event], config: Config, index: ChatIndex | None
    ) -> tuple[list[Message], dict[str, str], int, int]:
        """The messages of the chats that count (privacy applied), their chats' real ids by shown
        id, the disconnects, and the events skipped."""
        plain = config.privacy.chat_ids == PLAIN
        chat_types = config.waiting.chat_types
        # A server echoing the API key into a chat id: scrubbed as get-chats scrubs it, so that
        # it reaches no label, page or state file, and the chat is the one get-chats lists.
        keyed = redaction.mentions_secret(e.message.chat_id for e in events if e.message is not None)
        excluded, counted = (index.excluded, index.counted) if index is not None else (frozenset(), {})
        messages: list[Message] = []
        reals: dict[str, str] = {}
        disconnects = skipped = 0
        for event in events:
            action, message = event.action, event.message
            if action in (INCOMING, OUTGOING):
                if message is None or message.outgoing != (action == OUTGOING):
                    skipped += 1  # no usable message, or its id says the other direction
                    continue
                real = message.chat_id
                listed = redaction.scrub(real) if keyed else real
                shown = listed if plain else config.privacy.chat_id(listed)
                if real == STATUS_BROADCAST or shown in excluded:
                    continue  # a chat that does not count changes nothing
                if shown not in counted and type_of(real) not in chat_types:
                    continue
                messages.append(message if shown == real else msgspec.structs.replace(message, chat_id=shown))
                reals[shown] = real
            elif action == DISCONNECT:
                disconnects += 1
            elif action not in KNOWN_ACTIONS:
                skipped += 1
        return messages, reals, disconnects, skipped

    def _backfill(
        self,
        tracker: Tracker,
        wanted: Iterable[tuple[str, str, str, float | None]],
        budget: int,
        config: Config,
    ) -> tuple[Tracker, int, int]:
        """get-history for ``wanted`` (shown id, real id, chat type, and the time before which
        its messages count, None: all) the tracker does not know, at most ``budget`` calls; a
        failure stops the backfill of this poll, never the poll. Returns the tracker, the
        messages skipped and the budget left."""
        plain = config.privacy.chat_ids == PLAIN
        wid = self.poller.account.whatsapp_id
        skipped = 0
        for shown, real, chat_type, before in wanted:
            if budget <= 0:
                break
            if tracker.knows(shown):
                continue
            budget -= 1
            try:
                history, dropped = self.source.history(wid, real)
            except PollError as exc:
                if not self._history_failing:
                    log.warning(
                        "get-history failed",
                        extra={
                            "fields": {
                                **self._fields(),
                                "reason": exc.reason,
                                "err": config.privacy.scrub(exc.detail),
                            }
                        },
                    )
                self._history_failing = True
                return tracker, skipped, 0
            if self._history_failing:
                log.info("get-history recovered", extra={"fields": self._fields()})
            self._history_failing = False
            skipped += dropped
            mine = [
                m if plain else msgspec.structs.replace(m, chat_id=shown)
                for m in history
                if m.chat_id == real
            ]
            skipped += len(history) - len(mine)
            if before is not None:  # the messages this poll's events bring are advanced after
                mine = [m for m in mine if m.timestamp < before]
            tracker = tracker.backfill(shown, chat_type, mine, config.replies)
        return tracker, skipped, budget

    @staticmethod
    def _unknown_writing(
        messages: Sequence[Message], reals: Mapping[str, str], tracker: Tracker, index: ChatIndex | None
    ) -> list[tuple[str, str, str, float | None]]:
        """The chats the tracker does not know whose first message in ``messages`` is the
        customer's, with the time of that message: their earlier past decides since when the
        customer has waited, and only get-history can tell it."""
        first: dict[str, Message] = {}
        for m in messages:  # the earliest of each chat, as Tracker.advance takes them
            if not tracker.knows(m.chat_id) and (
                m.chat_id not in first or m.timestamp < first[m.chat_id].timestamp
            ):
                first[m.chat_id] = m
        counted = index.counted if index is not None else {}
        return [
            (cid, reals[cid], counted.get(cid) or type_of(reals[cid]), m.timestamp)
            for cid, m in first.items()
            if not m.outgoing
        ]

    def poll_once(self) -> AccountState:
        """Read the log once and publish the account's new state, failed or not; returns it."""
        config = self.poller.settings()
        previous = self.poller.state.replies  # only this job changes it: no lock needed to read
        if previous is None:
            previous = self._start(config)
        buckets = config.replies.buckets
        if next(iter(previous.tracker.histograms.values())).buckets != tuple(buckets):
            # replies.buckets changed on reload: the histograms start again, the spans go on.
            previous = dataclasses.replace(
                previous,
                tracker=dataclasses.replace(previous.tracker, histograms=Tracker.empty(buckets).histograms),
            )
        account = self.poller.account
        schedule = config.schedule_for(account)
        index = self.poller.chat_index
        try:
            read = read_log(
                self.source, account.whatsapp_id, previous.cursor, config.replies.max_pages, self.newest_first
            )
            self.newest_first = read.newest_first
            messages, reals, disconnects, skipped = self._messages(read.events, config, index)
            budget = config.replies.history_per_poll
            # A customer writing in a chat not known yet may have waited since an earlier message:
            # its history goes first, and no span is guessed from the new message alone. With
            # history_per_poll 0, or get-history failing, nothing can tell, and the new message
            # opens the span: a new customer must not stay uncounted until our first answer.
            writing = self._unknown_writing(messages, reals, previous.tracker, index)
            tracker, dropped, budget = self._backfill(previous.tracker, writing, budget, config)
            tracker = tracker.advance(
                messages,
                index.counted if index else {},
                config.replies,
                schedule,
                guess=config.replies.history_per_poll <= 0 or self._history_failing,
            )
            if index is not None:
                counted = index.counted
                tracker = tracker.keep_only(counted, index.polled_at)
                urgent = ((s, r, counted[s], None) for s, r in index.urgency)
                tracker, more, budget = self._backfill(tracker, urgent, budget, config)
                dropped += more
            skipped += read.skipped + dropped
            now = self.clock()
            replies = dataclasses.replace(
                previous,
                tracker=tracker,
                cursor=read.cursor,
                up=True,
                last_success=now,
                last_error=None,
                truncated=previous.truncated + read.truncated,
                disconnects=previous.disconnects + disconnects,
                skipped=previous.skipped + skipped,
                unanswered=tuple(tracker.unanswered(now, schedule)),
            )
        except PollError as exc:
            replies = self._failed(previous, exc.reason, exc.detail, config)
        except Exception as exc:  # the exporter's own bug: a failed events poll, never a crash
            log.debug("internal error in the events poll", exc_info=True, extra={"fields": self._fields()})
            replies = self._failed(
                previous, INTERNAL, f"events-get: {type(exc).__name__} in the exporter", config
            )
        else:
            if self._failing:
                log.info("events-get recovered", extra={"fields": self._fields()})
            self._failing = False
            if skipped:  # one line a poll at most, and never what an event said
                log.warning("events skipped", extra={"fields": {**self._fields(), "skipped": skipped}})
            self.poller.restored_replies = None  # consumed: the state file now keeps this poll's
        return self._store(replies)

    def _failed(self, previous: ReplyData, reason: str, detail: str, config: Config) -> ReplyData:
        detail = config.privacy.scrub(detail)  # as the get-chats detail: it may quote a number
        if not self._failing:
            log.warning(
                "events-get failed", extra={"fields": {**self._fields(), "reason": reason, "err": detail}}
            )
        self._failing = True
        assert reason in REASONS
        return dataclasses.replace(
            previous, up=False, last_error=detail, errors=_counted_errors(previous.errors, reason)
        )

    def _store(self, replies: ReplyData | None) -> AccountState:
        """The account's current state with ``replies``, published; under the account's lock, so
        a get-chats poll finishing at the same time neither loses this update nor has its own lost."""
        poller = self.poller
        with poller.lock:
            state = dataclasses.replace(poller.state, replies=replies)
            try:
                poller.sink.publish(state)
            except Exception:
                log.error(
                    "publishing the events poll failed", exc_info=True, extra={"fields": self._fields()}
                )
                if replies is not None:
                    failed = dataclasses.replace(
                        replies, up=False, errors=_counted_errors(replies.errors, INTERNAL)
                    )
                    state = dataclasses.replace(poller.state, replies=failed)
            poller.state = state
            return state

    def run(self, lag: float) -> float:
        """The scheduler's job: poll once (when replies are enabled), return the delay until the next."""
        config = self.poller.settings()
        interval = config.poll_interval
        if config.replies.enabled and self.poller.state.polls == 0:
            # Both jobs start at once: the first events poll waits for the first get-chats one
            # (good or not), whose chat index lets it backfill at once instead of an interval later.
            return min(1.0, interval)
        if config.replies.enabled:
            self.poll_once()
        elif self.poller.state.replies is not None:
            self._store(None)  # disabled on reload: no reply metrics from now on
        self.runs += 1
        # Half an interval after the account's get-chats poll, so the two rarely share a worker's turn.
        delay = interval + (interval / 2 if self.runs == 1 else 0.0)
        return delay + random.uniform(-0.01, 0.01) * min(interval, 60.0)

    # The scheduler's job is the poller itself, not a bound method kept beside it for every
    # account between polls.
    __call__ = run
