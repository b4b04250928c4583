"""Kinds that count what one get-chats snapshot holds: per account, summed over chat types, or
per chat, joined with ``whatsgate_chat_info`` for the chat's name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ...metrics import definitions as d
from ...metrics.definitions import MetricDef
from ...model import CHAT_TYPES, GROUP, Chat, matches_any
from ...snapshot.state import AccountState, ChatData
from ..templates import chat_fields, promql_string
from .base import Instance, Kind, Narrowing, account_labels, selector


@dataclass(frozen=True)
class Aggregate(Kind):
    """A per-account count, summed over the chat types the threshold keeps."""

    metric: MetricDef = d.CHATS
    field: str = "chats"

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        return f"sum without (chat_type) ({self.metric.name}{selector(t, exclude_accounts)}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.data is not None:
            types = t.chat_types or CHAT_TYPES
            yield (
                account_labels(state),
                float(sum(getattr(state.data.summary[c], self.field) for c in types)),
                {},
            )


@dataclass(frozen=True)
class PerChat(Kind):
    """A per-chat (or per-group) series, joined with whatsgate_chat_info for the chat's name."""

    metric: MetricDef = d.CHAT_UNREAD
    read: Callable[[Chat, ChatData], float | None] = lambda chat, _data: float(chat.unread)
    reads_chats: bool = True

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        info = d.CHAT_INFO.name
        if t.chats:
            # Prometheus anchors regexes, Python's re.search does not: pad with .* that also
            # crosses newlines, as a name may hold one.
            regex = promql_string("|".join(f"(?s:.*)(?:{p.pattern})(?s:.*)" for p in t.chats))
            info = f"({info}{{name=~{regex}}} or {info}{{chat_id=~{regex}}})"
        # The join brings the chat's name into the alert, so the summary can say it.
        # job and instance in on(): two exporters scraping one account stay two alerts, not an error.
        return (
            f"({self.metric.name}{selector(t, exclude_accounts)}"
            f" * on (job, instance, whatsapp_id, chat_id) group_left (name) {info}) {bound}"
        )

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        """Only what the exporter exports is measured: selected chats, none while stale."""
        return self._chats(t, state, now, stale_after, self.read)

    def _chats(
        self,
        t: Narrowing,
        state: AccountState,
        now: float,
        stale_after: float,
        read: Callable[[Chat, ChatData], float | None],
    ) -> Iterator[Instance]:
        if state.data is None or state.is_stale(now, stale_after):
            return
        account = account_labels(state)
        data = state.data
        for chat in data.selection.chats:
            if t.chats and not matches_any(t.chats, chat.id, chat.name):
                continue
            if self.scope == "group" and (chat.chat_type != GROUP or chat.group is None):
                continue
            if t.chat_types and chat.chat_type not in t.chat_types:
                continue
            value = read(chat, data)
            if value is None:
                continue
            labels = {**account, "chat_id": chat.id}
            if self.scope == "chat":
                labels["chat_type"] = chat.chat_type
            if chat.name:  # as Prometheus does: an empty label (privacy.names: drop) is no label
                labels["name"] = chat.name
            yield labels, value, chat_fields(chat.id, chat.name)


def group_admins(chat: Chat, _data: ChatData) -> float | None:
    return None if chat.group is None or chat.group.admins is None else float(chat.group.admins)


def group_members(chat: Chat, _data: ChatData) -> float | None:
    return None if chat.group is None else float(chat.group.member_count)
