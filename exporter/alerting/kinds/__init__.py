"""Threshold kinds: what a threshold can measure, each one object with both of its meanings.

A kind holds its PromQL (what :mod:`exporter.alerting.rules` writes into a
Prometheus rule file) and its Python evaluation on a snapshot (what the agent
runs), side by side, reading metric names from
:mod:`exporter.metrics.definitions`. Keeping them together is what keeps the
two alerting modes in step; the end-to-end tests fire both against the same
data. The kinds' classes live in this package's modules by what they measure
(:mod:`.base` holds what they share); this module lists them: a new kind is one
new entry in :data:`KINDS`.
"""

from __future__ import annotations

from ...metrics import definitions as d
from ...metrics.definitions import MetricDef
from .base import Kind
from .counts import Aggregate, PerChat, group_admins, group_members
from .health import AccountDown, SessionNotReady, Stale
from .responses import ResponsesWithin
from .waits import ChatsWaiting, ChatUnanswered, OldestWaiting, unanswered, waited


def _aggregate(name: str, metric: MetricDef, field: str, what: str) -> Aggregate:
    return Aggregate(
        name,
        "account",
        "count",
        f"{{value}} {what} on WhatsApp account {{account}}",
        f"WhatsApp account {{account_with_id}} has {{value}} {what} ({{condition}}).",
        narrows_chat_types=True,
        metric=metric,
        field=field,
    )


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
        "{value} unread messages in {chat_type} {chat} on {account}",
        "Chat {chat_with_id} on WhatsApp account {account_with_id} has {value}"
        " unread messages ({condition}).",
        narrows_chat_types=True,
        metric=d.CHAT_UNREAD,
    ),
    PerChat(
        "group_participants",
        "group",
        "count",
        "Group {chat} on {account} has {value} participants",
        "Group {chat_with_id} on WhatsApp account {account_with_id} has {value} participants ({condition}).",
        metric=d.GROUP_PARTICIPANTS,
        read=group_members,
    ),
    PerChat(
        "group_admins",
        "group",
        "count",
        "Group {chat} on {account} has {value} admins",
        "Group {chat_with_id} on WhatsApp account {account_with_id} has {value}"
        " admins and super-admins ({condition}).",
        metric=d.GROUP_ADMINS,
        read=group_admins,
    ),
    PerChat(
        "chat_waiting",
        "chat",
        "duration",
        "Chat {chat} on {account} unread for {value}",
        "{chat_type} {chat_with_id} on WhatsApp account {account_with_id} has been"
        " unread for {value} ({condition}).",
        narrows_chat_types=True,
        metric=d.CHAT_WAITING_SECONDS,
        read=waited,
    ),
    OldestWaiting(
        "oldest_waiting",
        "account",
        "duration",
        "A chat on {account} unread for {value}",
        "The longest-unread chat on WhatsApp account {account_with_id} has been unread for"
        " {value} ({condition}).",
        narrows_chat_types=True,
    ),
    ChatsWaiting(
        "chats_waiting",
        "account",
        "count",
        "{value} chats on {account} unread for longer than {longer_than}",
        "WhatsApp account {account_with_id} has {value} chats unread for longer than {longer_than}"
        " ({condition}).",
        narrows_chat_types=True,
    ),
    ChatUnanswered(
        "chat_unanswered",
        "chat",
        "duration",
        "Customer {chat} on {account} waiting for an answer for {value}",
        "{chat_type} {chat_with_id} on WhatsApp account {account_with_id} has been"
        " waiting for an answer for {value} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
    ),
    OldestWaiting(
        "oldest_unanswered",
        "account",
        "duration",
        "A customer on {account} waiting for an answer for {value}",
        "The longest unanswered customer on WhatsApp account {account_with_id} has been waiting"
        " for an answer for {value} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
        metric=d.OLDEST_UNANSWERED_SECONDS,
        waits=unanswered,
    ),
    ChatsWaiting(
        "chats_unanswered",
        "account",
        "count",
        "{value} customers on {account} waiting for an answer for longer than {longer_than}",
        "WhatsApp account {account_with_id} has {value} chats waiting for an answer for longer"
        " than {longer_than} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
        metric=d.CHATS_UNANSWERED,
        waits=unanswered,
    ),
    ResponsesWithin(
        "responses_within",
        "account",
        "fraction",
        "Only {value} of {response} responses on {account} within {target} over the last {window}",
        "On WhatsApp account {account_with_id}, {value} of {response} responses came within"
        " {target} over the last {window} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
    ),
    AccountDown(
        "account_down",
        "account",
        "none",
        "WhatsGate polls of {account} are failing",
        "get-chats for WhatsApp account {account_with_id} has failed for at least {for};"
        " whatsgate_poll_errors_total tells the reason.",
    ),
    Stale(
        "stale",
        "account",
        "duration",
        "No fresh WhatsGate data for {account} for {value}",
        "The last successful poll of WhatsApp account {account_with_id} was {value} ago ({condition}).",
    ),
    SessionNotReady(
        "session_not_ready",
        "session",
        "none",
        "WhatsApp session of {account} is {status}, not READY",
        "sessions-get reports status {status} for WhatsApp account {account_with_id};"
        " AUTH means the session waits for a QR authorisation.",
        on_sessions=True,
    ),
)
KINDS: dict[str, Kind] = {kind.name: kind for kind in _ALL}

_ACCOUNT_FIELDS = {"account", "whatsapp_id", "account_with_id"}
SCOPE_FIELDS = {
    "account": _ACCOUNT_FIELDS,
    "chat": _ACCOUNT_FIELDS | {"chat_id", "chat_type", "chat_name", "chat", "chat_with_id"},
    "group": _ACCOUNT_FIELDS | {"chat_id", "chat_name", "chat", "chat_with_id"},
    "session": _ACCOUNT_FIELDS | {"status"},
}
COMMON_FIELDS = {
    "value",
    "threshold",
    "condition",
    "for",
    "severity",
    "alertname",
    "longer_than",
    "target",
    "window",
    "response",
}
