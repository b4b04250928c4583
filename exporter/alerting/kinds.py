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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config.schema import format_duration
from ..metrics import definitions as d
from ..metrics.definitions import MetricDef
from ..model import CHAT_TYPES, GROUP, Chat, matches_any
from ..snapshot.replies import RESPONSE_TYPES
from ..snapshot.state import AccountState, ChatData, DiscoveryState
from ..snapshot.waiting import Wait
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
    @property
    def target(self) -> float | None: ...
    @property
    def response(self) -> str | None: ...
    @property
    def window(self) -> float | None: ...


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
    # "count", "duration" (above only), "fraction" (below only, in (0, 1]) or "none" (a condition)
    value: str
    summary: str
    description: str
    narrows_chat_types: bool = False
    on_sessions: bool = False  # measured on sessions-get, not on an account's snapshot
    on_replies: bool = False  # measured on the event log (AccountState.replies)
    # Measured on the snapshot's chats one by one: while no threshold of such a kind is
    # configured, snapshots drop their chats once rendered (ChatData.released).
    reads_chats: bool = False
    # Measured over a window of past snapshots (responses_within): the evaluator keeps a
    # History per account and threshold (record) and measures on it (measure_over).
    windowed: bool = False

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        """The alert expression; ``bound`` is the comparison (``> 20``), ``limit`` its number."""
        raise NotImplementedError

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        """What the kind measures on one account's snapshot, as Prometheus would see it exported."""
        return iter(())

    def record(self, t: Narrowing, state: AccountState, now: float, past: History | None) -> History | None:
        """Windowed kinds: the history after this snapshot, seen at ``now`` (a scrape, in Prometheus)."""
        return None

    def measure_over(
        self, t: Narrowing, state: AccountState, now: float, history: History | None
    ) -> Iterator[Instance]:
        """Windowed kinds: what they measure at ``now`` on the history that :meth:`record` kept
        (their :meth:`measure` finds nothing: one snapshot holds no window)."""
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
        account = _account_labels(state)
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


def _waiting(state: AccountState, now: float, stale_after: float) -> Sequence[Wait] | None:
    """Read-waits (get-chats): exported while the account has data, stale or not."""
    return None if state.data is None else state.data.waiting


def _unanswered(state: AccountState, now: float, stale_after: float) -> Sequence[Wait] | None:
    """Unanswered spans (the event log): none at all while the events poll is stale, as the
    exporter drops those series (a reply we cannot see must not page anyone)."""
    replies = state.replies
    return None if replies is None or replies.is_stale(now, stale_after) else replies.unanswered


Waits = Callable[[AccountState, float, float], Sequence[Wait] | None]


@dataclass(frozen=True)
class OldestWaiting(Kind):
    """The account's longest current wait, over the chat types the threshold keeps."""

    metric: MetricDef = d.OLDEST_WAITING_SECONDS
    waits: Waits = _waiting

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        sel = _selector(matchers(t, exclude_accounts))
        return f"max without (chat_type) ({self.metric.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        found = self.waits(state, now, stale_after)
        if found is not None:
            types = t.chat_types or CHAT_TYPES
            waits = [w.seconds for w in found if w.chat_type in types]
            if waits:
                yield _account_labels(state), max(waits), {}


@dataclass(frozen=True)
class ChatsWaiting(Kind):
    """How many chats have waited longer than the threshold's ``longer_than`` (one of the buckets)."""

    metric: MetricDef = d.CHATS_WAITING
    waits: Waits = _waiting

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        longer = f'longer_than="{d.go_number(t.longer_than or 0.0)}"'
        sel = _selector([*matchers(t, exclude_accounts), longer])
        # longer_than goes too: the agent's alert carries the account's labels only, so must the rule's.
        return f"sum without (chat_type, longer_than) ({self.metric.name}{sel}) {bound}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        found = self.waits(state, now, stale_after)
        if found is not None:
            types = t.chat_types or CHAT_TYPES
            longer = t.longer_than or 0.0
            count = sum(1 for w in found if w.chat_type in types and w.seconds > longer)
            yield _account_labels(state), float(count), {}


@dataclass(frozen=True)
class ChatUnanswered(PerChat):
    """One chat's wait for an answer: a selected chat (it has whatsgate_chat_info, joined for its
    name) with an open unanswered span; nothing while the chats or the event log are stale."""

    metric: MetricDef = d.CHAT_UNANSWERED_SECONDS

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        found = _unanswered(state, now, stale_after)
        if found is None:
            return iter(())
        by_chat = {w.chat_id: w.seconds for w in found}
        return self._chats(t, state, now, stale_after, lambda chat, _data: by_chat.get(chat.id))


# --- responses_within: a share over a window of past snapshots ------------------------------------

# At most this many samples per window and threshold and account (a day at one per 86 s):
# evaluations come every 15 s, and keeping each would hold 5,760 per day for nothing a
# 1%-precision share needs.
MAX_SAMPLES = 1000

# One evaluation's view of the histogram series a threshold reads, in a fixed series order:
# (bucket count at target, count) per series, flattened.
Sample = tuple[float, tuple[int, ...]]


@dataclass(frozen=True)
class History:
    """The samples of one threshold on one account within its window, oldest first (immutable)."""

    samples: tuple[Sample, ...] = ()

    def add(self, now: float, values: tuple[int, ...], window: float) -> History:
        """Samples older than the window are dropped, and the newest one is replaced rather than
        kept while it is closer than window / MAX_SAMPLES to the one before it."""
        kept = [s for s in self.samples if s[0] >= now - window and s[0] < now]
        if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < window / MAX_SAMPLES:
            kept.pop()
        return History((*kept, (now, values)))


def increase(points: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Prometheus's ``increase()`` of one counter over the range [start, end] (2.x's extrapolatedRate,
    float samples): None with fewer than two samples."""
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    prev = points[0][1]
    for _, value in points[1:]:
        if value < prev:  # a counter reset: the counter started again from 0
            result += prev
        prev = value
    to_start = points[0][0] - start
    to_end = end - points[-1][0]
    sampled = points[-1][0] - points[0][0]
    average = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        # Counters are never negative: extrapolate no further back than where this one was 0.
        to_zero = sampled * (points[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    extrapolated = sampled
    extrapolated += to_start if to_start < threshold else average / 2
    extrapolated += to_end if to_end < threshold else average / 2
    return result * (extrapolated / sampled)


@dataclass(frozen=True)
class ResponsesWithin(Kind):
    """The share of responses answered within ``target`` over the last ``window``.

    PromQL: the increase of the histogram's bucket at ``target`` over that of its count, per
    account. The agent records the same two counters per series at each evaluation (its
    "scrapes"), and computes each series' increase with Prometheus's own extrapolation
    (:func:`increase`). Differences that remain: its samples are taken at evaluations, not at
    scrapes, and thinned to MAX_SAMPLES per window, which moves the extrapolation by less than
    one sample interval; the range includes its start, as in Prometheus 2 (3 excludes it).
    No response in the window is 0/0 in PromQL, which compares false: no alert, in both modes.
    """

    windowed: bool = True

    def _series(self, t: Narrowing) -> list[tuple[str, str]]:
        types = t.chat_types or CHAT_TYPES
        responses = (t.response,) if t.response else RESPONSE_TYPES
        return [(chat_type, response) for chat_type in types for response in responses]

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        found = matchers(t, exclude_accounts)
        if t.response:
            found.append(f"response={promql_string(t.response)}")
        window = format_duration(t.window or 0.0)
        name = d.RESPONSE_DURATION.name
        within = _selector([*found, f'le="{d.bucket_le(t.target or 0.0)}"'])
        # Summed per series' labels less chat_type, response and le: the account's, with job and
        # instance, as the agent's alert (plus Prometheus's target labels).
        return (
            f"sum without (chat_type, response, le) (increase({name}_bucket{within}[{window}]))"
            f" / sum without (chat_type, response) (increase({name}_count{_selector(found)}[{window}]))"
            f" {bound}"
        )

    def record(self, t: Narrowing, state: AccountState, now: float, past: History | None) -> History | None:
        replies = state.replies
        window = t.window or 0.0
        if replies is None:  # no series exported: no sample, as a failed scrape
            return None if past is None else History(tuple(s for s in past.samples if s[0] >= now - window))
        values: list[int] = []
        for key in self._series(t):
            histogram = replies.tracker.histograms[key]
            if t.target not in histogram.buckets:  # buckets changed on reload: not this series
                return past
            values += [histogram.counts[histogram.buckets.index(t.target)], histogram.count]
        return (past or History()).add(now, tuple(values), window)

    def measure_over(
        self, t: Narrowing, state: AccountState, now: float, history: History | None
    ) -> Iterator[Instance]:
        if history is None:
            return
        start = now - (t.window or 0.0)
        samples = [s for s in history.samples if start <= s[0] <= now]
        within = total = 0.0
        seen = False
        for i in range(len(self._series(t))):
            bucket = increase([(at, float(v[2 * i])) for at, v in samples], start, now)
            count = increase([(at, float(v[2 * i + 1])) for at, v in samples], start, now)
            if bucket is not None and count is not None:
                within, total, seen = within + bucket, total + count, True
        if seen and total > 0:  # else 0/0: NaN, which no comparison breaches in PromQL
            yield _account_labels(state), within / total, {}


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
        'Chat "{chat_name}" on {account} unread for {value}',
        '{chat_type} "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has been'
        " unread for {value} ({condition}).",
        narrows_chat_types=True,
        metric=d.CHAT_WAITING_SECONDS,
        read=_waited,
    ),
    OldestWaiting(
        "oldest_waiting",
        "account",
        "duration",
        "A chat on {account} unread for {value}",
        "The longest-unread chat on WhatsApp account {account} ({whatsapp_id}) has been unread for"
        " {value} ({condition}).",
        narrows_chat_types=True,
    ),
    ChatsWaiting(
        "chats_waiting",
        "account",
        "count",
        "{value} chats on {account} unread for longer than {longer_than}",
        "WhatsApp account {account} ({whatsapp_id}) has {value} chats unread for longer than {longer_than}"
        " ({condition}).",
        narrows_chat_types=True,
    ),
    ChatUnanswered(
        "chat_unanswered",
        "chat",
        "duration",
        'Customer "{chat_name}" on {account} waiting for an answer for {value}',
        '{chat_type} "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has been'
        " waiting for an answer for {value} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
    ),
    OldestWaiting(
        "oldest_unanswered",
        "account",
        "duration",
        "A customer on {account} waiting for an answer for {value}",
        "The longest unanswered customer on WhatsApp account {account} ({whatsapp_id}) has been waiting"
        " for an answer for {value} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
        metric=d.OLDEST_UNANSWERED_SECONDS,
        waits=_unanswered,
    ),
    ChatsWaiting(
        "chats_unanswered",
        "account",
        "count",
        "{value} customers on {account} waiting for an answer for longer than {longer_than}",
        "WhatsApp account {account} ({whatsapp_id}) has {value} chats waiting for an answer for longer"
        " than {longer_than} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
        metric=d.CHATS_UNANSWERED,
        waits=_unanswered,
    ),
    ResponsesWithin(
        "responses_within",
        "account",
        "fraction",
        "Only {value} of {response} responses on {account} within {target} over the last {window}",
        "On WhatsApp account {account} ({whatsapp_id}), {value} of {response} responses came within"
        " {target} over the last {window} ({condition}).",
        narrows_chat_types=True,
        on_replies=True,
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
