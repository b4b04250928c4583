"""Every metric the exporter exposes, defined once: name, type, labels, help. The collectors, the threshold
kinds' PromQL and the tests (golden body, dashboards, README table) read them: a rename is one change.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

ACCOUNT_LABELS = ("whatsapp_id", "account")
POLL_NOTE = (
    " Polled from get-chats every poll_interval, not per scrape, so that several Prometheus"
    " servers do not multiply the load on the rate-limited API."
)


def go_number(value: float) -> str:
    """A number as Prometheus (Go) writes it in a label such as ``le``: 300, not 300.0."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def bucket_le(value: float) -> str:
    """A histogram bucket's ``le`` as the exporter writes it (prometheus_client's repr: 300.0), which
    Prometheus 2 keeps as written: a rule must select exactly this text."""
    return repr(float(value))


@dataclass(frozen=True)
class MetricDef:
    """One metric family. ``labels`` come after the account labels unless ``per_account`` is false."""

    name: str
    type: str  # "gauge", "counter" or "histogram"
    help: str
    labels: tuple[str, ...] = ()
    per_account: bool = True

    @property
    def label_names(self) -> list[str]:
        return [*ACCOUNT_LABELS, *self.labels] if self.per_account else list(self.labels)

    @property
    def sample_name(self) -> str:
        """The name in its ``# HELP`` and ``# TYPE`` lines (counters with ``_total``, as generate_latest)."""
        return f"{self.name}_total" if self.type == "counter" else self.name

    def family(self) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh, empty family to add samples to."""
        if self.type == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.label_names)
        assert self.type == "gauge", f"{self.name} is a {self.type}: use histogram_family()"
        return GaugeMetricFamily(self.name, self.help, labels=self.label_names)

    def histogram_family(self) -> HistogramMetricFamily:
        assert self.type == "histogram", self.name
        return HistogramMetricFamily(self.name, self.help, labels=self.label_names)


# --- health of the polls (always exported) -------------------------------------------------------

UP = MetricDef("whatsgate_up", "gauge", "1 if the last poll of get-chats for the account succeeded, else 0.")
POLL_DURATION = MetricDef(
    "whatsgate_poll_duration_seconds", "gauge", "Duration of the last poll of the account."
)
LAST_SUCCESS = MetricDef(
    "whatsgate_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful poll of the account.",
)
POLL_DELAY = MetricDef(
    "whatsgate_poll_delay_seconds",
    "gauge",
    "How late the last poll of the account started behind its schedule; growing values mean the"
    " exporter cannot keep up (raise poll_concurrency or poll_interval).",
)
POLL_ERRORS = MetricDef(
    "whatsgate_poll_errors",
    "counter",
    "Failed polls of the account, by reason (timeout, connection, http_status, unauthorized,"
    " api_error, invalid_response, internal).",
    ("reason",),
)

# --- per-account aggregates: (definition, the TypeSummary field it shows) --------------------------


def _count(name: str, text: str) -> MetricDef:
    """A per-account count by chat type, from get-chats."""
    return MetricDef(name, "gauge", text + POLL_NOTE, ("chat_type",))


CHATS = _count("whatsgate_chats", "Chats of the account, by chat type.")
CHATS_UNREAD = _count("whatsgate_chats_unread", "Chats with at least one unread message, by chat type.")
UNREAD_MESSAGES = _count("whatsgate_unread_messages", "Unread messages summed over all chats, by chat type.")
CHATS_READ_ONLY = _count(
    "whatsgate_chats_read_only", "Chats where sending is blocked (isReadOnly), by chat type."
)
CHATS_MUTED = _count("whatsgate_chats_muted", "Chats with notifications muted, by chat type.")
CHATS_PINNED = _count("whatsgate_chats_pinned", "Pinned chats, by chat type.")
AGGREGATES: tuple[tuple[MetricDef, str], ...] = (
    (CHATS, "chats"),
    (CHATS_UNREAD, "chats_unread"),
    (UNREAD_MESSAGES, "unread_messages"),
    (CHATS_READ_ONLY, "read_only"),
    (CHATS_MUTED, "muted"),
    (CHATS_PINNED, "pinned"),
)
CHATS_OMITTED = MetricDef(
    "whatsgate_chats_omitted",
    "gauge",
    "Chats without per-chat series: reason=filtered (chats.include/exclude) or"
    " reason=max_per_account (over the cap; waiting chats, then those with most unread messages are"
    " kept). With privacy.chat_ids: drop every chat counts as filtered.",
    ("reason",),
)

# --- per chat and per group -----------------------------------------------------------------------

CHAT_LABELS = ("chat_id", "chat_type")
CHAT_UNREAD = MetricDef(
    "whatsgate_chat_unread_messages", "gauge", "Unread messages in the chat." + POLL_NOTE, CHAT_LABELS
)
CHAT_LAST_ACTIVITY = MetricDef(
    "whatsgate_chat_last_activity_timestamp_seconds",
    "gauge",
    "Unix time of the last activity in the chat." + POLL_NOTE,
    CHAT_LABELS,
)
CHAT_INFO = MetricDef(
    "whatsgate_chat_info",
    "gauge",
    "Chat name, always 1; join on whatsapp_id and chat_id. The name lives only here so a rename"
    " does not break series." + POLL_NOTE,
    (*CHAT_LABELS, "name"),
)
GROUP_PARTICIPANTS = MetricDef(
    "whatsgate_group_participants",
    "gauge",
    "Participants of the group: the length of the participant list when present, else"
    " groupMetadata.size." + POLL_NOTE,
    ("chat_id",),
)
GROUP_ADMINS = MetricDef(
    "whatsgate_group_admins",
    "gauge",
    "Admins and super-admins in the group's participant list." + POLL_NOTE,
    ("chat_id",),
)
GROUP_CREATED = MetricDef(
    "whatsgate_group_created_timestamp_seconds",
    "gauge",
    "Unix time the group was created." + POLL_NOTE,
    ("chat_id",),
)

# --- waiting: how long customers have waited for an answer -------------------------------------

WAIT_NOTE = (
    " Estimated from successive polls: a wait starts at the chat's last activity when it is first seen"
    " unread (so it is under-estimated by at most one poll interval) and ends when it is read."
)
OPEN_HOURS_NOTE = " In open hours only where the account has a business-hours schedule."
CHAT_WAITING_SINCE = MetricDef(
    "whatsgate_chat_waiting_since_timestamp_seconds",
    "gauge",
    "Unix time the chat's current wait for an answer started." + WAIT_NOTE,
    CHAT_LABELS,
)
CHAT_WAITING_SECONDS = MetricDef(
    "whatsgate_chat_waiting_seconds",
    "gauge",
    "How long the chat has waited for an answer so far, as of the last poll." + OPEN_HOURS_NOTE + WAIT_NOTE,
    CHAT_LABELS,
)
OLDEST_WAITING_SINCE = MetricDef(
    "whatsgate_oldest_waiting_since_timestamp_seconds",
    "gauge",
    "Start of the longest current wait of the account, over all waiting chats (waiting.* filters only);"
    " no sample when nothing waits." + WAIT_NOTE,
    ("chat_type",),
)
OLDEST_WAITING_SECONDS = MetricDef(
    "whatsgate_oldest_waiting_seconds",
    "gauge",
    "The longest current wait of the account so far, as of the last poll, over all waiting chats;"
    " no sample when nothing waits." + OPEN_HOURS_NOTE + WAIT_NOTE,
    ("chat_type",),
)
CHATS_WAITING = MetricDef(
    "whatsgate_chats_waiting",
    "gauge",
    "Chats of the account that have waited longer than longer_than seconds (the waiting.buckets)"
    " as of the last poll." + OPEN_HOURS_NOTE + WAIT_NOTE,
    ("chat_type", "longer_than"),
)
WAIT_DURATION = MetricDef(
    "whatsgate_wait_duration_seconds",
    "histogram",
    "Time to read: every wait that ended because the chat was read, observed once with its"
    " duration." + OPEN_HOURS_NOTE + WAIT_NOTE,
    ("chat_type",),
)
BUSINESS_HOURS_OPEN = MetricDef(
    "whatsgate_business_hours_open",
    "gauge",
    "1 while the account's business-hours schedule is open, 0 while closed (as of the last poll);"
    " only for accounts with a schedule.",
)

# --- replies: when customers got an answer, exact, from the event log (replies.enabled) ----------

REPLY_NOTE = (
    " Exact, from events-get: an unanswered span opens at the first incoming message after our last"
    " outgoing one and closes at our next outgoing message."
)
CHAT_UNANSWERED_SINCE = MetricDef(
    "whatsgate_chat_unanswered_since_timestamp_seconds",
    "gauge",
    "Unix time of the chat's first customer message still waiting for an answer." + REPLY_NOTE,
    CHAT_LABELS,
)
CHAT_UNANSWERED_SECONDS = MetricDef(
    "whatsgate_chat_unanswered_seconds",
    "gauge",
    "How long the chat has waited for an answer so far." + OPEN_HOURS_NOTE + REPLY_NOTE,
    CHAT_LABELS,
)
OLDEST_UNANSWERED_SINCE = MetricDef(
    "whatsgate_oldest_unanswered_since_timestamp_seconds",
    "gauge",
    "Start of the account's longest unanswered span, over all unanswered chats; no sample when none."
    + REPLY_NOTE,
    ("chat_type",),
)
OLDEST_UNANSWERED_SECONDS = MetricDef(
    "whatsgate_oldest_unanswered_seconds",
    "gauge",
    "The account's longest wait for an answer so far; no sample when none." + OPEN_HOURS_NOTE + REPLY_NOTE,
    ("chat_type",),
)
CHATS_UNANSWERED = MetricDef(
    "whatsgate_chats_unanswered",
    "gauge",
    "Chats that have waited for an answer longer than longer_than seconds (the replies.buckets)."
    + OPEN_HOURS_NOTE
    + REPLY_NOTE,
    ("chat_type", "longer_than"),
)
RESPONSE_DURATION = MetricDef(
    "whatsgate_response_duration_seconds",
    "histogram",
    "Response times: every answered span, observed once when our message closed it; response is first"
    " (the span opened a conversation, after replies.conversation_gap of silence) or next."
    + OPEN_HOURS_NOTE
    + REPLY_NOTE,
    ("chat_type", "response"),
)
MESSAGES_RECEIVED = MetricDef(
    "whatsgate_messages_received", "counter", "Incoming messages seen in the event log.", ("chat_type",)
)
MESSAGES_SENT = MetricDef(
    "whatsgate_messages_sent",
    "counter",
    "Outgoing messages seen in the event log (action create).",
    ("chat_type",),
)
EVENTS_UP = MetricDef("whatsgate_events_up", "gauge", "1 if the last poll of events-get succeeded, else 0.")
EVENTS_LAST_SUCCESS = MetricDef(
    "whatsgate_events_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful poll of events-get.",
)
EVENTS_POLL_ERRORS = MetricDef(
    "whatsgate_events_poll_errors",
    "counter",
    "Failed polls of events-get by reason (the reasons of whatsgate_poll_errors_total).",
    ("reason",),
)
EVENTS_TRUNCATED = MetricDef(
    "whatsgate_events_truncated",
    "counter",
    "Polls of events-get that stopped at replies.max_pages; the rest is read at the next poll.",
)
SESSION_DISCONNECTS = MetricDef(
    "whatsgate_session_disconnects", "counter", "disconnect events seen in the account's event log."
)

# --- sessions (discover: true) ------------------------------------------------------------------

SESSION_STATUS = MetricDef(
    "whatsgate_session_status",
    "gauge",
    "1 for the session's current status in sessions-get (READY = working, AUTH = waiting for QR"
    " authorisation), 0 for the other known statuses.",
    ("status",),
)
DISCOVERY_UP = MetricDef(
    "whatsgate_discovery_up", "gauge", "1 if the last sessions-get call succeeded, else 0.", per_account=False
)
DISCOVERY_ERRORS = MetricDef(
    "whatsgate_discovery_errors", "counter", "Failed sessions-get calls, by reason.", ("reason",), False
)
DISCOVERY_REMOVED = MetricDef(
    "whatsgate_discovery_sessions_removed",
    "counter",
    "Discovered sessions no longer polled because sessions-get stopped listing them for longer"
    " than stale_after.",
    per_account=False,
)

# --- the exporter itself --------------------------------------------------------------------------

BUILD_INFO = MetricDef(
    "whatsgate_exporter_build_info",
    "gauge",
    "A metric with a constant '1' labelled by version.",
    ("version",),
    per_account=False,
)
CONFIG_RELOAD_SUCCESSFUL = MetricDef(
    "whatsgate_exporter_config_last_reload_successful",
    "gauge",
    "1 if the last configuration reload (SIGHUP or POST /-/reload) succeeded, else 0.",
    per_account=False,
)
CONFIG_RELOAD_SUCCESS_TIME = MetricDef(
    "whatsgate_exporter_config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful configuration load (start-up or reload).",
    per_account=False,
)
STATE_FILE_WRITE_ERRORS = MetricDef(
    "whatsgate_exporter_state_file_write_errors", "counter", "Failed writes of the state_file.", (), False
)
SHARD_INFO = MetricDef(
    "whatsgate_exporter_shard_info",
    "gauge",
    "Always 1: which shard of the accounts this exporter polls (index counted from 0, of total).",
    ("index", "total"),
    per_account=False,
)
ALERT_FIRING = MetricDef(
    "whatsgate_alert_firing",
    "gauge",
    "1 for each alert the exporter's own threshold evaluation finds firing (pending alerts are"
    " not shown); labels are the alert's, less the chat name (join whatsgate_chat_info on"
    " whatsapp_id and chat_id).",
    per_account=False,
)
ALERTMANAGER_SENT = MetricDef(
    "whatsgate_alertmanager_notifications_sent",
    "counter",
    "Alerts sent to Alertmanager (each alert of each successful POST).",
    per_account=False,
)
ALERTMANAGER_ERRORS = MetricDef(
    "whatsgate_alertmanager_notifications_errors",
    "counter",
    "Alerts that could not be sent to Alertmanager (each alert of each failed POST).",
    per_account=False,
)
