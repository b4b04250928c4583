"""Metric families built from immutable snapshots.

Each collector wraps one snapshot and yields fresh ``GaugeMetricFamily`` /
``CounterMetricFamily`` objects from it. They are cheap to create and hold no
state of their own, so they are used both ways: rendered once per snapshot by
:mod:`exporter.exposition` (the hot path), and registered like any
prometheus-client collector where a registry is wanted (tests, tools).

The split into health, aggregates and per-chat series follows what may be
dropped independently: per-chat series go when the data is stale, health stays.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .config import Account
from .model import CHAT_TYPES, GROUP, TypeSummary
from .snapshot import AccountState, ChatData, DiscoveryState

ACCOUNT_LABELS = ["whatsapp_id", "account"]
POLL_NOTE = (
    " Polled from get-chats every poll_interval, not per scrape, so that several Prometheus"
    " servers do not multiply the load on the rate-limited API."
)

# (metric name, TypeSummary field, help) for the per-account aggregates.
AGGREGATES = (
    ("whatsgate_chats", "chats", "Chats of the account, by chat type."),
    ("whatsgate_chats_unread", "chats_unread", "Chats with at least one unread message, by chat type."),
    ("whatsgate_unread_messages", "unread_messages", "Unread messages summed over all chats, by chat type."),
    ("whatsgate_chats_read_only", "read_only", "Chats where sending is blocked (isReadOnly), by chat type."),
    ("whatsgate_chats_muted", "muted", "Chats with notifications muted, by chat type."),
    ("whatsgate_chats_pinned", "pinned", "Pinned chats, by chat type."),
)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=ACCOUNT_LABELS + labels)


class HealthCollector(Collector):
    """Whether and how the last polls of one account worked; always exported."""

    def __init__(self, state: AccountState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        acc = list(s.account.labels)
        up = _gauge("whatsgate_up", "1 if the last poll of get-chats for the account succeeded, else 0.", [])
        up.add_metric(acc, 1.0 if s.up else 0.0)
        yield up
        duration = _gauge("whatsgate_poll_duration_seconds", "Duration of the last poll of the account.", [])
        if s.last_poll_duration is not None:
            duration.add_metric(acc, s.last_poll_duration)
        yield duration
        last = _gauge(
            "whatsgate_last_success_timestamp_seconds",
            "Unix time of the last successful poll of the account.",
            [],
        )
        if s.last_success is not None:
            last.add_metric(acc, s.last_success)
        yield last
        errors = CounterMetricFamily(
            "whatsgate_poll_errors",
            "Failed polls of the account, by reason (timeout, connection, http_status, unauthorized,"
            " api_error, invalid_response).",
            labels=[*ACCOUNT_LABELS, "reason"],
        )
        for reason, count in s.errors.items():
            errors.add_metric([*acc, reason], float(count))
        yield errors


class AggregateCollector(Collector):
    """Per-account counts; they count every chat, whatever the per-chat filters and cap."""

    def __init__(self, account: Account, data: ChatData) -> None:
        self.account = account
        self.data = data

    def collect(self) -> Iterator[Metric]:
        acc = list(self.account.labels)
        for name, attr, doc in AGGREGATES:
            family = _gauge(name, doc + POLL_NOTE, ["chat_type"])
            for chat_type in CHAT_TYPES:
                summary: TypeSummary = self.data.summary[chat_type]
                family.add_metric([*acc, chat_type], float(getattr(summary, attr)))
            yield family
        omitted = _gauge(
            "whatsgate_chats_omitted",
            "Chats without per-chat series: reason=filtered (chats.include/exclude) or"
            " reason=max_per_account (over the cap; the chats with most unread messages are kept).",
            ["reason"],
        )
        omitted.add_metric([*acc, "filtered"], float(self.data.selection.filtered))
        omitted.add_metric([*acc, "max_per_account"], float(self.data.selection.over_limit))
        yield omitted


class ChatCollector(Collector):
    """Per-chat and per-group series for the selected chats of one account."""

    def __init__(self, account: Account, data: ChatData) -> None:
        self.account = account
        self.data = data

    def collect(self) -> Iterator[Metric]:
        acc = list(self.account.labels)
        chats = self.data.selection.chats
        chat_labels = ["chat_id", "chat_type"]
        unread = _gauge(
            "whatsgate_chat_unread_messages", "Unread messages in the chat." + POLL_NOTE, chat_labels
        )
        activity = _gauge(
            "whatsgate_chat_last_activity_timestamp_seconds",
            "Unix time of the last activity in the chat." + POLL_NOTE,
            chat_labels,
        )
        info = _gauge(
            "whatsgate_chat_info",
            "Chat name, always 1; join on whatsapp_id and chat_id. The name lives only here so a rename"
            " does not break series." + POLL_NOTE,
            [*chat_labels, "name"],
        )
        for chat in chats:
            labels = [*acc, chat.id, chat.chat_type]
            unread.add_metric(labels, float(chat.unread))
            activity.add_metric(labels, float(chat.last_activity))
            info.add_metric([*labels, chat.name], 1.0)
        yield unread
        yield activity
        yield info

        participants = _gauge(
            "whatsgate_group_participants",
            "Participants of the group: the length of the participant list when present, else"
            " groupMetadata.size." + POLL_NOTE,
            ["chat_id"],
        )
        admins = _gauge(
            "whatsgate_group_admins",
            "Admins and super-admins in the group's participant list." + POLL_NOTE,
            ["chat_id"],
        )
        created = _gauge(
            "whatsgate_group_created_timestamp_seconds",
            "Unix time the group was created." + POLL_NOTE,
            ["chat_id"],
        )
        for chat in chats:
            group = chat.group
            if chat.chat_type != GROUP or group is None:
                continue
            labels = [*acc, chat.id]
            participants.add_metric(labels, float(group.member_count))
            if group.admins is not None:
                admins.add_metric(labels, float(group.admins))
            if group.created:
                created.add_metric(labels, float(group.created))
        yield participants
        yield admins
        yield created


# Known session states are always exported (0 or 1), so an alert can test
# status="READY" == 0 without knowing which other state the session is in.
KNOWN_SESSION_STATUSES = ("AUTH", "READY")


class DiscoveryCollector(Collector):
    def __init__(self, state: DiscoveryState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        status = _gauge(
            "whatsgate_session_status",
            "1 for the session's current status in sessions-get (READY = working, AUTH = waiting for QR"
            " authorisation), 0 for the other known statuses.",
            ["status"],
        )
        for account, session in self.state.sessions:
            current = session.status
            for known in sorted({*KNOWN_SESSION_STATUSES, current}):
                status.add_metric([*account.labels, known], 1.0 if known == current else 0.0)
        yield status
        up = GaugeMetricFamily("whatsgate_discovery_up", "1 if the last sessions-get call succeeded, else 0.")
        up.add_metric([], 1.0 if self.state.up else 0.0)
        yield up
        errors = CounterMetricFamily(
            "whatsgate_discovery_errors", "Failed sessions-get calls, by reason.", labels=["reason"]
        )
        for reason, count in self.state.errors.items():
            errors.add_metric([reason], float(count))
        yield errors


class BuildInfoCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "whatsgate_exporter_build_info",
            "A metric with a constant '1' labelled by version.",
            labels=["version"],
        )
        info.add_metric([__version__], 1.0)
        yield info
