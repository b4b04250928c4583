"""Kinds on waits: chats unread (get-chats' read-waits) and customers waiting for an answer (the
event log's unanswered spans), per chat, the longest per account, or how many past a bound."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ...metrics import definitions as d
from ...metrics.definitions import MetricDef
from ...model import CHAT_TYPES, Chat
from ...snapshot.state import AccountState, ChatData
from ...snapshot.waiting import Wait
from .base import Instance, Kind, Narrowing, account_labels, selector
from .counts import PerChat


def waited(chat: Chat, data: ChatData) -> float | None:
    """A chat's read-wait, for chat_waiting (a :class:`PerChat`)."""
    wait = data.wait_by_chat.get(chat.id)
    return None if wait is None else wait.seconds


def waiting(state: AccountState, now: float, stale_after: float) -> Sequence[Wait] | None:
    """Read-waits (get-chats): exported while the account has data, stale or not."""
    return None if state.data is None else state.data.waiting


def unanswered(state: AccountState, now: float, stale_after: float) -> Sequence[Wait] | None:
    """Unanswered spans (the event log): none at all while the events poll is stale, as the
    exporter drops those series (a reply we cannot see must not page anyone)."""
    replies = state.replies
    return None if replies is None or replies.is_stale(now, stale_after) else replies.unanswered


Waits = Callable[[AccountState, float, float], Sequence[Wait] | None]


def _kept(
    waits: Waits, t: Narrowing, state: AccountState, now: float, stale_after: float
) -> list[Wait] | None:
    """The current waits of the chat types the threshold keeps; None while they are not known."""
    found = waits(state, now, stale_after)
    if found is None:
        return None
    types = t.chat_types or CHAT_TYPES
    return [w for w in found if w.chat_type in types]


@dataclass(frozen=True)
class OldestWaiting(Kind):
    """The account's longest current wait, over the chat types the threshold keeps."""

    metric: MetricDef = d.OLDEST_WAITING_SECONDS
    waits: Waits = waiting

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        return f"max without (chat_type) ({self.metric.name}{selector(t, exclude_accounts)}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        kept = _kept(self.waits, t, state, now, stale_after)
        if kept:
            yield account_labels(state), max(w.seconds for w in kept), {}


@dataclass(frozen=True)
class ChatsWaiting(Kind):
    """How many chats have waited longer than the threshold's ``longer_than`` (one of the buckets)."""

    metric: MetricDef = d.CHATS_WAITING
    waits: Waits = waiting

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        sel = selector(t, exclude_accounts, f'longer_than="{d.go_number(t.longer_than or 0.0)}"')
        # longer_than goes too: the agent's alert carries the account's labels only, so must the rule's.
        return f"sum without (chat_type, longer_than) ({self.metric.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        kept = _kept(self.waits, t, state, now, stale_after)
        if kept is not None:
            longer = t.longer_than or 0.0
            yield account_labels(state), float(sum(1 for w in kept if w.seconds > longer)), {}


@dataclass(frozen=True)
class ChatUnanswered(PerChat):
    """One chat's wait for an answer: a selected chat (it has whatsgate_chat_info, joined for its
    name) with an open unanswered span; nothing while the chats or the event log are stale."""

    metric: MetricDef = d.CHAT_UNANSWERED_SECONDS

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        found = unanswered(state, now, stale_after)
        if found is None:
            return iter(())
        by_chat = {w.chat_id: w.seconds for w in found}
        return self._chats(t, state, now, stale_after, lambda chat, _data: by_chat.get(chat.id))
