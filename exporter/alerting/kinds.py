"""Threshold kinds: what a threshold can measure, each one object with both of its meanings.

A kind holds its PromQL (what :mod:`exporter.alerting.rules` writes into a
Prometheus rule file) and its Python evaluation on a snapshot (what the agent
runs), side by side, reading metric names from
:mod:`exporter.metrics.definitions`. Keeping them together is what keeps the
two alerting modes in step; the end-to-end tests fire both against the same
data. A new kind is one new entry in :data:`KINDS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..metrics import definitions as d
from ..metrics.definitions import MetricDef
from ..model import CHAT_TYPES, GROUP, Chat, matches_any
from ..snapshot.state import AccountState, ChatData, DiscoveryState
from .templates import promql_string

Labels = dict[str, str]
# One measured thing before comparison: its labels (besides alertname/severity),
# its value, and the extra template fields that are not labels (chat_name).
Instance = tuple[Labels, float, Mapping[str, str]]


class Narrowing(Protocol):
    """What a threshold narrows its kind to (a :class:`~exporter.alerting.thresholds.Threshold`)."""

    @property
    def accounts(self) -> tuple[str, ...]: ...
    @property
    def chat_types(self) -> tuple[str, ...]: ...
    @property
    def chats(self) -> tuple[re.Pattern[str], ...]: ...
    @property
    def longer_than(self) -> float | None: ...


def _account_labels(state: AccountState) -> Labels:
    return {"whatsapp_id": state.account.whatsapp_id, "account": state.account.name}


def _alternation(values: tuple[str, ...]) -> str:
    return "|".join(re.escape(v) for v in values)


def matchers(t: Narrowing, exclude_accounts: tuple[str, ...] = ()) -> list[str]:
    out = []
    if t.accounts:
        out.append(f"account=~{promql_string(_alternation(t.accounts))}")
    if exclude_accounts:
        out.append(f"account!~{promql_string(_alternation(exclude_accounts))}")
    if t.chat_types:
        out.append(f"chat_type=~{promql_string('|'.join(t.chat_types))}")
    return out


def _selector(found: list[str]) -> str:
    return "{" + ", ".join(found) + "}" if found else ""


@dataclass(frozen=True)
class Kind:
    name: str
    scope: str  # "account", "chat", "group" or "session": which labels an alert carries
    value: str  # "count", "duration" (above only) or "none" (a condition, no value)
    summary: str
    description: str
    narrows_chat_types: bool = False
    on_sessions: bool = False  # measured on sessions-get, not on an account's snapshot
    # Measured on the snapshot's chats one by one: while no threshold of such a kind is
    # configured, snapshots drop their chats once rendered (ChatData.released).
    reads_chats: bool = False

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        """The alert expression; ``bound`` is the comparison (``> 20``), ``limit`` its number."""
        raise NotImplementedError

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        """What the kind measures on one account's snapshot, as Prometheus would see it exported."""
        return iter(())

    def measure_sessions(self, discovery: DiscoveryState) -> Iterator[Instance]:
        return iter(())


@dataclass(frozen=True)
class Aggregate(Kind):
    """A per-account count, summed over the chat types the threshold keeps."""

    metric: MetricDef = d.CHATS
    field: str = "chats"

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        sel = _selector(matchers(t, exclude_accounts))
        return f"sum without (chat_type) ({self.metric.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.data is not None:
            types = t.chat_types or CHAT_TYPES
            yield (
                _account_labels(state),
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
        sel = _selector(matchers(t, exclude_accounts))
        info = d.CHAT_INFO.name
        if t.chats:
            # Prometheus anchors regexes, Python's re.search does not: pad with .* that also
            # crosses newlines, as a name may hold one.
            regex = promql_string("|".join(f"(?s:.*)(?:{p.pattern})(?s:.*)" for p in t.chats))
            info = f"({info}{{name=~{regex}}} or {info}{{chat_id=~{regex}}})"
        # The join brings the chat's name into the alert, so the summary can say it.
        # job and instance in on(): two exporters scraping one account stay two alerts, not an error.
        return (
            f"({self.metric.name}{sel} * on (job, instance, whatsapp_id, chat_id) group_left (name) {info})"
            f" {bound}"
        )

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        """Only what the exporter exports is measured: selected chats, none while stale."""
        if state.data is None or state.is_stale(now, stale_after):
            return
        account = _account_labels(state)
        data = state.data
        for chat in data.selection.chats:
            if t.chats and not matches_any(t.chats, chat.id, chat.name):
                continue
            if self.scope == "group" and (chat.chat_type != GROUP or chat.group is None):
                continue
            if t.chat_types and chat.chat_type not in t.chat_types:
                continue
            value = self.read(chat, data)
            if value is None:
                continue
            labels = {**account, "chat_id": chat.id}
            if self.scope == "chat":
                labels["chat_type"] = chat.chat_type
            if chat.name:  # as Prometheus does: an empty label (privacy.names: drop) is no label
                labels["name"] = chat.name
            yield labels, value, {"chat_name": chat.name}


@dataclass(frozen=True)
class AccountDown(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        return f"{d.UP.name}{_selector(matchers(t, exclude_accounts))} == 0"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if not state.up:
            yield _account_labels(state), 0.0, {}


@dataclass(frozen=True)
class Stale(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        sel = _selector(matchers(t, exclude_accounts))
        return f"time() - {d.LAST_SUCCESS.name}{sel} > {limit:g}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.last_success is not None:
            yield _account_labels(state), now - state.last_success, {}


@dataclass(frozen=True)
class SessionNotReady(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        found = [*matchers(t, exclude_accounts), 'status!="READY"']
        return f"{d.SESSION_STATUS.name}{_selector(found)} == 1"

    def measure_sessions(self, discovery: DiscoveryState) -> Iterator[Instance]:
        for account, session in discovery.sessions:
            if session.status != "READY":
                labels = {
                    "whatsapp_id": account.whatsapp_id,
                    "account": account.name,
                    "status": session.status,
                }
                yield labels, 1.0, {}


def _aggregate(name: str, metric: MetricDef, field: str, what: str) -> Aggregate:
    return Aggregate(
        name,
        "account",
        "count",
        f"{{value}} {what} on WhatsApp account {{account}}",
        f"WhatsApp account {{account}} ({{whatsapp_id}}) has {{value}} {what} ({{condition}}).",
        narrows_chat_types=True,
        metric=metric,
        field=field,
    )


def _group_admins(chat: Chat, _data: ChatData) -> float | None:
    return None if chat.group is None or chat.group.admins is None else float(chat.group.admins)


def _group_members(chat: Chat, _data: ChatData) -> float | None:
    return None if chat.group is None else float(chat.group.member_count)


def _waited(chat: Chat, data: ChatData) -> float | None:
    wait = data.wait_by_chat.get(chat.id)
    return None if wait is None else wait.seconds


@dataclass(frozen=True)
class OldestWaiting(Kind):
    """The account's longest current wait, over the chat types the threshold keeps."""

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        sel = _selector(matchers(t, exclude_accounts))
        return f"max without (chat_type) ({d.OLDEST_WAITING_SECONDS.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.data is not None:
            types = t.chat_types or CHAT_TYPES
            waits = [w.seconds for w in state.data.waiting if w.chat_type in types]
            if waits:
                yield _account_labels(state), max(waits), {}


@dataclass(frozen=True)
class ChatsWaiting(Kind):
    """How many chats have waited longer than the threshold's ``longer_than`` (one of the buckets)."""

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        longer = f'longer_than="{d.go_number(t.longer_than or 0.0)}"'
        sel = _selector([*matchers(t, exclude_accounts), longer])
        # longer_than goes too: the agent's alert carries the account's labels only, so must the rule's.
        return f"sum without (chat_type, longer_than) ({d.CHATS_WAITING.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.data is not None:
            types = t.chat_types or CHAT_TYPES
            longer = t.longer_than or 0.0
            count = sum(1 for w in state.data.waiting if w.chat_type in types and w.seconds > longer)
            yield _account_labels(state), float(count), {}


_ALL: tuple[Kind, ...] = (
    _aggregate("unread_messages", d.UNREAD_MESSAGES, "unread_messages", "unread messages"),
    _aggregate("chats", d.CHATS, "chats", "chats"),
    _aggregate("chats_unread", d.CHATS_UNREAD, "chats_unread", "chats with unread messages"),
    _aggregate("chats_read_only", d.CHATS_READ_ONLY, "read_only", "read-only chats"),
    _aggregate("chats_muted", d.CHATS_MUTED, "muted", "muted chats"),
    _aggregate("chats_pinned", d.CHATS_PINNED, "pinned", "pinned chats"),
    PerChat(
        "chat_unread_messages",
        "chat",
        "count",
        '{value} unread messages in {chat_type} "{chat_name}" on {account}',
        'Chat "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " unread messages ({condition}).",
        narrows_chat_types=True,
        metric=d.CHAT_UNREAD,
    ),
    PerChat(
        "group_participants",
        "group",
        "count",
        'Group "{chat_name}" on {account} has {value} participants',
        'Group "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " participants ({condition}).",
        metric=d.GROUP_PARTICIPANTS,
        read=_group_members,
    ),
    PerChat(
        "group_admins",
        "group",
        "count",
        'Group "{chat_name}" on {account} has {value} admins',
        'Group "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " admins and super-admins ({condition}).",
        metric=d.GROUP_ADMINS,
        read=_group_admins,
    ),
    PerChat(
        "chat_waiting",
        "chat",
        "duration",
        'Customer "{chat_name}" on {account} has waited {value} for an answer',
        '{chat_type} "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has waited'
        " {value} for an answer ({condition}).",
        narrows_chat_types=True,
        metric=d.CHAT_WAITING_SECONDS,
        read=_waited,
    ),
    OldestWaiting(
        "oldest_waiting",
        "account",
        "duration",
        "A customer on {account} has waited {value} for an answer",
        "The longest current wait on WhatsApp account {account} ({whatsapp_id}) is {value} ({condition}).",
        narrows_chat_types=True,
    ),
    ChatsWaiting(
        "chats_waiting",
        "account",
        "count",
        "{value} chats on {account} have waited longer than {longer_than}",
        "WhatsApp account {account} ({whatsapp_id}) has {value} chats waiting longer than {longer_than}"
        " for an answer ({condition}).",
        narrows_chat_types=True,
    ),
    AccountDown(
        "account_down",
        "account",
        "none",
        "WhatsGate polls of {account} are failing",
        "get-chats for WhatsApp account {account} ({whatsapp_id}) has failed for at least {for};"
        " whatsgate_poll_errors_total tells the reason.",
    ),
    Stale(
        "stale",
        "account",
        "duration",
        "No fresh WhatsGate data for {account} for {value}",
        "The last successful poll of WhatsApp account {account} ({whatsapp_id}) was {value} ago"
        " ({condition}).",
    ),
    SessionNotReady(
        "session_not_ready",
        "session",
        "none",
        "WhatsApp session of {account} is {status}, not READY",
        "sessions-get reports status {status} for WhatsApp account {account} ({whatsapp_id});"
        " AUTH means the session waits for a QR authorisation.",
        on_sessions=True,
    ),
)
KINDS: dict[str, Kind] = {kind.name: kind for kind in _ALL}

SCOPE_FIELDS = {
    "account": {"account", "whatsapp_id"},
    "chat": {"account", "whatsapp_id", "chat_id", "chat_type", "chat_name"},
    "group": {"account", "whatsapp_id", "chat_id", "chat_name"},
    "session": {"account", "whatsapp_id", "status"},
}
COMMON_FIELDS = {"value", "threshold", "condition", "for", "severity", "alertname", "longer_than"}
