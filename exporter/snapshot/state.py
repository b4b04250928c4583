"""Immutable per-account snapshots: what one poll knows about one account.

A poller builds a new :class:`AccountState` after every poll and hands it
downstream; nothing mutates it afterwards, so a scrape that reads it sees one
poll, never a mix of two.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from operator import attrgetter
from types import MappingProxyType

from ..model import CHAT_TYPES, REASONS, Account, Chat, ChatsConfig, Session
from .chatids import ChatIds, ChatTable, WaitStarts, indices
from .privacy import PLAIN_POLICY, Privacy
from .replies import ReplyData
from .schedule import Schedule
from .summary import Selection, TypeSummary, needed, select_chats, summarize
from .waiting import Wait, WaitingConfig, WaitList, Waits, by_chat

CHAT_ID = attrgetter("id")
# The longest waits whose chat names a released snapshot keeps: the status page shows them.
NAMED_WAITS = 10


class _WeaklyHeld:
    """A slotted snapshot that can be held weakly (the exposition's body does; ``weakref_slot``
    needs Python 3.11)."""

    __slots__ = ("__weakref__",)


# Slots (no __dict__ per instance) on the records every account keeps one of between polls:
# with many small accounts they are much of what an account costs (bench/RESULTS.md).
@dataclass(frozen=True, slots=True)
class ChatData(_WeaklyHeld):
    """The chats of one successful poll, reduced to what metrics and alerts need."""

    polled_at: float
    # The chats kept until rendered (in answer order): the selected ones and the waiting ones.
    # The aggregates (summary) already count every chat.
    chats: tuple[Chat, ...]
    summary: Mapping[str, TypeSummary]
    selection: Selection
    # The open waits and time-to-read histograms after this poll, and the current waits
    # (longest first) as of it.
    waits: Waits
    waiting: Sequence[Wait] = ()  # a waiting.WaitList after a poll
    # Whether the account's business hours were open at the poll; None without a schedule.
    business_hours_open: bool | None = None
    # The ids of the chats with per-chat series (at most chats.max_per_account): kept when the
    # chats are released, for the per-chat reply series rendered at every events poll: one entry
    # per chat of every account between polls, so a sorted tuple (chatids.py), not a hash table.
    selected: Collection[str] = frozenset()
    # What the exposition made of these chats on the poller's thread (Store.prepare), carried with
    # the data so it outlives the chats (see released); opaque to this layer.
    rendered: object = field(default=None, compare=False, repr=False)
    # Once released: the names of the chats of the NAMED_WAITS longest waits (the status page shows
    # them), joined in their order, the i-th ending at named_ends[i]; their ids are the waits'.
    named: str = ""
    named_ends: Sequence[int] = ()
    # wait_by_chat, once made (slots: no __dict__ for a cached_property).
    _by_chat: Mapping[str, Wait] | None = field(default=None, init=False, compare=False, repr=False)

    def released(self) -> ChatData:
        """This snapshot after rendering (:attr:`rendered`), for when no alert reads chats one by one.

        Rendering is the last reader of every chat: the per-chat series are kept as text
        from then on. Only alerts on single chats read them again, and the status page
        the names of the longest waits (:attr:`named`). Dropping the rest keeps each chat's
        record out of the steady state (bench/RESULTS.md). The counts (summary,
        waits, filtered, over_limit) stay as they are.
        """
        names = self.names()  # every waiting chat is kept (summary.needed)
        named = [names[wait.chat_id] for wait in self.waiting[:NAMED_WAITS]]
        lengths = list(accumulate(map(len, named)))
        ends = indices(lengths, lengths[-1] + 1 if lengths else 0)
        return replace(
            self, chats=(), selection=self.selection.released(), named="".join(named), named_ends=ends
        )

    def sharing(self, table: ChatTable) -> ChatData:
        """This snapshot with its open waits a view of ``table`` (the events index's, of every chat
        of the same poll), when it lists them all: their ids kept once for both, not twice."""
        since, waiting = self.waits.since, self.waiting
        shared = since.within(table) if isinstance(since, WaitStarts) else None
        if shared is None or not isinstance(waiting, WaitList):
            return self
        return replace(self, waits=replace(self.waits, since=shared), waiting=waiting.on(shared))

    def names(self) -> Mapping[str, str]:
        """Chat id -> name of the chats this snapshot can name: those kept, or once released,
        those of the longest waits."""
        if ends := self.named_ends:
            top, cut = self.waiting[: len(ends)], map(slice, (0, *ends), ends)
            return {wait.chat_id: self.named[at] for wait, at in zip(top, cut, strict=True)}
        return {chat.id: chat.name for chat in self.chats}

    @property
    def wait_by_chat(self) -> Mapping[str, Wait]:
        """The current waits by chat id: for the per-chat series and the chat_waiting threshold.

        Derived once per snapshot, on first use, into a field no reader sees (so the snapshot
        stays immutable to readers).
        """
        if self._by_chat is None:  # a WaitList's: each Wait made when looked up
            object.__setattr__(self, "_by_chat", MappingProxyType(by_chat(self.waiting)))
        return self._by_chat  # type: ignore[return-value]  # set just above

    @classmethod
    def build(
        cls,
        chats: Sequence[Chat],
        rules: ChatsConfig,
        polled_at: float,
        waiting: WaitingConfig | None = None,
        schedule: Schedule | None = None,
        previous: Waits | None = None,
        privacy: Privacy = PLAIN_POLICY,
        unanswered: Collection[str] = (),
        table: ChatTable | None = None,
    ) -> ChatData:
        """``previous``: the waits after the last good poll (or restored from the state file);
        ``unanswered``: the chats waiting for an answer (shown ids), kept first under
        ``max_per_account`` with the unread ones, so that their per-chat reply series exist;
        ``table``: the events index's of the same chats, whose views the selected chats and the
        open waits become (:meth:`sharing`).

        ``privacy`` is applied here and nowhere else: which chats get series and which
        count as waiting is decided on the real chats, then the chats are transformed,
        and the snapshot (waits included) only ever holds the transformed ones.
        """
        waiting = waiting or WaitingConfig()
        if previous is None or previous.histograms[CHAT_TYPES[0]].buckets != waiting.buckets:
            # First poll, or waiting.buckets changed on reload: the histograms start again.
            previous = Waits(previous.since if previous else {}, Waits.empty(waiting.buckets).histograms)
        counted: frozenset[str] | None = None
        # Without include/exclude patterns every chat passes: no call per chat.
        selects: Callable[[str, str], bool] | None = rules.selects if rules.include or rules.exclude else None
        if not privacy.plain:
            # The real chat behind each transformed id (the parser refused duplicate ids).
            originals = chats
            chats = [privacy.chat(chat) for chat in originals]
            real = {shown.id: chat for shown, chat in zip(chats, originals, strict=True)}
            counted = frozenset(cid for cid, chat in real.items() if waiting.counts(chat))

            def selects(cid: str, _name: str) -> bool:
                # chat_ids: drop keeps no per-chat series: every chat is counted as filtered.
                return privacy.per_chat and rules.selects(real[cid].id, real[cid].name)

        waits = previous.advance(chats, polled_at, waiting, schedule, counted)
        current = waits.waiting(polled_at, schedule)
        first: Collection[str] = waits.since if not unanswered else {*waits.since, *unanswered}
        selection = select_chats(chats, selects, rules.max_per_account, first)
        selected = table.subset(set(map(CHAT_ID, selection.chats))) if table is not None else None
        data = cls(
            polled_at=polled_at,
            chats=needed(chats, selection, waits.since),
            summary=summarize(chats),
            selection=selection,
            waits=waits,
            waiting=current,
            business_hours_open=None if schedule is None else schedule.is_open(polled_at),
            selected=ChatIds(map(CHAT_ID, selection.chats)) if selected is None else selected,
        )
        return data if table is None else data.sharing(table)


_NO_ERRORS: Mapping[str, int] = MappingProxyType(dict.fromkeys(REASONS, 0))


def _zero_errors() -> Mapping[str, int]:
    return _NO_ERRORS  # read-only: shared until the first failure makes a copy (_counted)


def _counted(errors: Mapping[str, int], reason: str) -> Mapping[str, int]:
    """A new, read-only copy of the error counts with one more for ``reason``."""
    return MappingProxyType({**errors, reason: errors.get(reason, 0) + 1})


@dataclass(frozen=True, slots=True)
class AccountState(_WeaklyHeld):  # slotted as ChatData
    account: Account
    up: bool = False
    polls: int = 0
    last_poll_duration: float | None = None
    last_success: float | None = None
    last_error: str | None = None
    errors: Mapping[str, int] = field(default_factory=_zero_errors)
    consecutive_failures: int = 0
    # How late the last poll started behind its schedule: the sign of an overloaded exporter.
    last_poll_delay: float | None = None
    # The last good data; kept through failures until it is older than stale_after.
    data: ChatData | None = None
    # The event log's view (reply times); None while replies.enabled is false or before the
    # first events poll. Updated by the events job, carried over by succeeded/failed.
    replies: ReplyData | None = None

    def succeeded(self, data: ChatData, duration: float, delay: float = 0.0) -> AccountState:
        return replace(
            self,
            up=True,
            polls=self.polls + 1,
            last_poll_duration=duration,
            last_poll_delay=delay,
            last_success=data.polled_at,
            last_error=None,
            consecutive_failures=0,
            data=data,
        )

    def failed(self, reason: str, detail: str, duration: float, delay: float = 0.0) -> AccountState:
        """Everything else (last success, last good data) carries over."""
        return replace(
            self,
            up=False,
            polls=self.polls + 1,
            last_poll_duration=duration,
            last_poll_delay=delay,
            last_error=detail,
            errors=_counted(self.errors, reason),
            consecutive_failures=self.consecutive_failures + 1,
        )

    def is_stale(self, now: float, stale_after: float) -> bool:
        return self.data is None or now - self.data.polled_at > stale_after


@dataclass(frozen=True, slots=True)
class DiscoveryState:
    """What the last ``sessions-get`` said, for ``whatsgate_session_status``."""

    up: bool = False
    sessions: tuple[tuple[Account, Session], ...] = ()
    last_success: float | None = None
    errors: Mapping[str, int] = field(default_factory=_zero_errors)
    # Discovered accounts dropped after missing from sessions-get for the grace period.
    removed: int = 0

    def failed(self, reason: str) -> DiscoveryState:
        return replace(self, up=False, errors=_counted(self.errors, reason))
