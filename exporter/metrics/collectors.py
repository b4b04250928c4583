"""Metric families built from immutable snapshots.

Each collector wraps one snapshot and yields fresh families, built from the definitions in
:mod:`exporter.metrics.definitions`. They hold no state of their own, so they are used both ways:
rendered once per snapshot by :mod:`exporter.metrics.render` (the hot path), and registered like any
prometheus-client collector where a registry is wanted (tests, tools). The split into health,
aggregates and per-chat series follows what may be dropped independently: per-chat series go when the
data is stale, health stays. The per-chat series themselves are written straight to text by
:mod:`.fastrender`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..config.reload import Reloader
from ..config.sharding import Shard
from ..model import CHAT_TYPES, Account
from ..snapshot.replies import RESPONSE_TYPES, ReplyData
from ..snapshot.state import AccountState, ChatData, DiscoveryState
from ..snapshot.waiting import Wait, longer_than_counts, oldest_by_type
from . import definitions as d


class HealthCollector(Collector):
    """Whether and how the last polls of one account worked; always exported.

    Sample::

        whatsgate_up{account="support",whatsapp_id="79990001122"} 1.0
        whatsgate_poll_duration_seconds{account="support",whatsapp_id="79990001122"} 0.21
        whatsgate_last_success_timestamp_seconds{account="support",whatsapp_id="79990001122"} 1.767e+09
        whatsgate_poll_errors_total{account="support",reason="timeout",whatsapp_id="79990001122"} 2.0
    """

    def __init__(self, state: AccountState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        s = self.state
        acc = list(s.account.labels)
        yield _sample(d.UP, acc, 1.0 if s.up else 0.0)
        yield _sample(d.POLL_DURATION, acc, s.last_poll_duration)
        yield _sample(d.POLL_DELAY, acc, s.last_poll_delay)
        yield _sample(d.LAST_SUCCESS, acc, s.last_success)
        yield _by_reason(d.POLL_ERRORS, acc, s.errors)


def _sample(definition: d.MetricDef, labels: list[str], value: float | None) -> Metric:
    """A family of one sample (an account's, or the exporter's), or of none (``value`` None: unknown)."""
    family = definition.family()
    if value is not None:
        family.add_metric(labels, value)
    return family


def _by_reason(definition: d.MetricDef, acc: list[str], errors: Mapping[str, int]) -> Metric:
    """Failed polls by reason, every reason present (zeros too)."""
    family = definition.family()
    for reason, count in errors.items():
        family.add_metric([*acc, reason], float(count))
    return family


class AggregateCollector(Collector):
    """Per-account counts and waits; they count every chat, whatever the per-chat filters and cap.

    Sample::

        whatsgate_chats{account="support",chat_type="contact",whatsapp_id="79990001122"} 812.0
        whatsgate_unread_messages{account="support",chat_type="group",whatsapp_id="79990001122"} 37.0
        whatsgate_chats_omitted{account="support",reason="max_per_account",whatsapp_id="79990001122"} 0.0
        whatsgate_oldest_waiting_since_timestamp_seconds{account="support",chat_type="contact",...} 1.7645e+09
        whatsgate_oldest_waiting_seconds{account="support",chat_type="contact",...} 1260.0
        whatsgate_chats_waiting{account="support",chat_type="contact",longer_than="900",...} 2.0
        whatsgate_wait_duration_seconds_bucket{account="support",chat_type="contact",le="300.0",...} 17.0
        whatsgate_business_hours_open{account="support",whatsapp_id="79990001122"} 1.0
    """

    def __init__(self, account: Account, data: ChatData) -> None:
        self.account = account
        self.data = data

    def collect(self) -> Iterator[Metric]:
        acc = list(self.account.labels)
        for definition, attr in d.AGGREGATES:
            family = definition.family()
            for chat_type in CHAT_TYPES:
                family.add_metric([*acc, chat_type], float(getattr(self.data.summary[chat_type], attr)))
            yield family
        omitted = d.CHATS_OMITTED.family()
        omitted.add_metric([*acc, "filtered"], float(self.data.selection.filtered))
        omitted.add_metric([*acc, "max_per_account"], float(self.data.selection.over_limit))
        yield omitted
        # How long customers wait, over all waiting chats (never capped by ``chats.*``).
        histograms = self.data.waits.histograms
        buckets = histograms[CHAT_TYPES[0]].buckets
        yield from _wait_families(acc, self.data.waiting, buckets, WAIT_FAMILIES)
        histogram = d.WAIT_DURATION.histogram_family()
        for chat_type in CHAT_TYPES:
            observed = histograms[chat_type]
            le = [(repr(float(b)), float(n)) for b, n in zip(observed.buckets, observed.counts, strict=True)]
            histogram.add_metric([*acc, chat_type], [*le, ("+Inf", float(observed.count))], observed.sum)
        yield histogram
        if self.data.business_hours_open is not None:
            open_now = d.BUSINESS_HOURS_OPEN.family()
            open_now.add_metric(acc, 1.0 if self.data.business_hours_open else 0.0)
            yield open_now


# (oldest since, oldest seconds, longer than) of one kind of wait: unread, or waiting for an answer.
WAIT_FAMILIES = (d.OLDEST_WAITING_SINCE, d.OLDEST_WAITING_SECONDS, d.CHATS_WAITING)
UNANSWERED_FAMILIES = (d.OLDEST_UNANSWERED_SINCE, d.OLDEST_UNANSWERED_SECONDS, d.CHATS_UNANSWERED)


def _wait_families(
    acc: list[str], waits: Sequence[Wait], buckets: Sequence[float], defs: tuple[d.MetricDef, ...]
) -> Iterator[Metric]:
    """An account's oldest wait per chat type (no sample without one) and its waits longer than
    each bucket (``longer_than`` written as Prometheus writes ``le``), for either kind of wait."""
    oldest = oldest_by_type(waits)
    since, seconds, longer = (definition.family() for definition in defs)
    for chat_type in CHAT_TYPES:
        if chat_type in oldest:
            since.add_metric([*acc, chat_type], oldest[chat_type].since)
            seconds.add_metric([*acc, chat_type], oldest[chat_type].seconds)
    yield since
    yield seconds
    counts = longer_than_counts(waits, buckets)
    for chat_type in CHAT_TYPES:
        for bucket, count in zip(buckets, counts[chat_type], strict=True):
            longer.add_metric([*acc, chat_type, d.go_number(bucket)], float(count))
    yield longer


class ReplyCollector(Collector):
    """The event log's poll and what it counted; exported from the first events poll on, stale
    or not (counters and the histogram stay true while polls fail).

    Sample::

        whatsgate_events_up{account="support",whatsapp_id="79990001122"} 1.0
        whatsgate_events_last_success_timestamp_seconds{account="support",...} 1.7645e+09
        whatsgate_events_poll_errors_total{account="support",reason="timeout",...} 0.0
        whatsgate_events_truncated_total{account="support",whatsapp_id="79990001122"} 0.0
        whatsgate_session_disconnects_total{account="support",whatsapp_id="79990001122"} 1.0
        whatsgate_messages_received_total{account="support",chat_type="contact",...} 412.0
        whatsgate_messages_sent_total{account="support",chat_type="contact",...} 388.0
        whatsgate_response_duration_seconds_bucket{chat_type="contact",le="900.0",response="first",...} 31.0
    """

    def __init__(self, account: Account, replies: ReplyData) -> None:
        self.account = account
        self.replies = replies

    def collect(self) -> Iterator[Metric]:
        acc, r = list(self.account.labels), self.replies
        yield _sample(d.EVENTS_UP, acc, 1.0 if r.up else 0.0)
        yield _sample(d.EVENTS_LAST_SUCCESS, acc, r.last_success)
        yield _by_reason(d.EVENTS_POLL_ERRORS, acc, r.errors)
        yield _sample(d.EVENTS_TRUNCATED, acc, float(r.truncated))
        yield _sample(d.SESSION_DISCONNECTS, acc, float(r.disconnects))
        for definition, counts in (
            (d.MESSAGES_RECEIVED, r.tracker.received),
            (d.MESSAGES_SENT, r.tracker.sent),
        ):
            family = definition.family()
            for chat_type in CHAT_TYPES:
                family.add_metric([*acc, chat_type], float(counts.get(chat_type, 0)))
            yield family
        histogram = d.RESPONSE_DURATION.histogram_family()
        for chat_type in CHAT_TYPES:
            for response in RESPONSE_TYPES:
                h = r.tracker.histograms[(chat_type, response)]
                le = [(d.bucket_le(b), float(n)) for b, n in zip(h.buckets, h.counts, strict=True)]
                histogram.add_metric([*acc, chat_type, response], [*le, ("+Inf", float(h.count))], h.sum)
        yield histogram


class UnansweredCollector(Collector):
    """Who waits for an answer now; dropped by the store while the events poll is stale (a reply
    the exporter cannot see must not page anyone), as per-chat series are for get-chats.

    Per-chat series only for the chats that have per-chat series from get-chats (``chats.*``
    rules, ``max_per_account``): the rule joins them with ``whatsgate_chat_info``, and the agent
    alerts on the same chats. The account's oldest wait and the counts per bucket cover every
    unanswered chat. Sample::

        whatsgate_chat_unanswered_since_timestamp_seconds{chat_id="79991112233@c.us",...} 1.7645e+09
        whatsgate_chat_unanswered_seconds{chat_id="79991112233@c.us",chat_type="contact",...} 1260.0
        whatsgate_oldest_unanswered_seconds{account="support",chat_type="contact",...} 1260.0
        whatsgate_chats_unanswered{account="support",chat_type="contact",longer_than="900",...} 1.0
    """

    def __init__(self, account: Account, replies: ReplyData, selected: Collection[str]) -> None:
        self.account = account
        self.replies = replies
        self.selected = selected

    def collect(self) -> Iterator[Metric]:
        acc, waits = list(self.account.labels), self.replies.unanswered
        since, seconds = d.CHAT_UNANSWERED_SINCE.family(), d.CHAT_UNANSWERED_SECONDS.family()
        for w in waits:
            if w.chat_id in self.selected:
                since.add_metric([*acc, w.chat_id, w.chat_type], w.since)
                seconds.add_metric([*acc, w.chat_id, w.chat_type], w.seconds)
        yield since
        yield seconds
        buckets = self.replies.tracker.histograms[(CHAT_TYPES[0], RESPONSE_TYPES[0])].buckets
        yield from _wait_families(acc, waits, buckets, UNANSWERED_FAMILIES)


# Known session states are always exported (0 or 1), so an alert can test
# status="READY" == 0 without knowing which other state the session is in.
KNOWN_SESSION_STATUSES = ("AUTH", "READY")


class DiscoveryCollector(Collector):
    """What the last ``sessions-get`` said, and whether it worked.

    Sample::

        whatsgate_session_status{account="support",status="AUTH",whatsapp_id="79990001122"} 0.0
        whatsgate_session_status{account="support",status="READY",whatsapp_id="79990001122"} 1.0
        whatsgate_discovery_up 1.0
        whatsgate_discovery_errors_total{reason="timeout"} 0.0
    """

    def __init__(self, state: DiscoveryState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        status = d.SESSION_STATUS.family()
        for account, session in self.state.sessions:
            current = session.status
            for known in sorted({*KNOWN_SESSION_STATUSES, current}):
                status.add_metric([*account.labels, known], 1.0 if known == current else 0.0)
        yield status
        yield _sample(d.DISCOVERY_UP, [], 1.0 if self.state.up else 0.0)
        errors = d.DISCOVERY_ERRORS.family()
        for reason, count in self.state.errors.items():
            errors.add_metric([reason], float(count))
        yield errors
        yield _sample(d.DISCOVERY_REMOVED, [], float(self.state.removed))


class BuildInfoCollector(Collector):
    """Sample: ``whatsgate_exporter_build_info{version="0.1.0"} 1.0``."""

    def collect(self) -> Iterator[Metric]:
        yield _sample(d.BUILD_INFO, [__version__], 1.0)


class ShardCollector(Collector):
    """Sample: ``whatsgate_exporter_shard_info{index="1",total="3"} 1.0``."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    def collect(self) -> Iterator[Metric]:
        yield _sample(d.SHARD_INFO, [str(self.shard.index), str(self.shard.total)], 1.0)


class ReloadCollector(Collector):
    """Sample::

    whatsgate_exporter_config_last_reload_successful 1.0
    whatsgate_exporter_config_last_reload_success_timestamp_seconds 1.7644e+09
    """

    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader

    def collect(self) -> Iterator[Metric]:
        yield _sample(d.CONFIG_RELOAD_SUCCESSFUL, [], 1.0 if self.reloader.successful else 0.0)
        yield _sample(d.CONFIG_RELOAD_SUCCESS_TIME, [], self.reloader.last_success)
