"""The alerting agent: evaluate thresholds on each snapshot, tell Alertmanager.

Evaluation follows Prometheus's own semantics so that both alerting modes
agree: an alert is *pending* from the first evaluation that breaches the
threshold and *firing* once it has been breached for ``for``; when it clears,
a firing alert is sent once more with ``endsAt`` set to the time it resolved.

Sending is a separate thread. It posts the whole current set (firing, and
resolved within the last 15 minutes) to ``/api/v2/alerts`` whenever the set
changes and every ``resend_interval`` otherwise, with ``endsAt`` four resend
intervals ahead for firing alerts, as Prometheus does. So an Alertmanager that
was down simply receives the current truth when it comes back, and one that
never hears from the exporter again resolves its alerts on its own.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import requests
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import AlertmanagerConfig, Config
from .snapshot import AccountState, DiscoveryState
from .thresholds import Threshold, breached, instances, render_text, session_instances

log = logging.getLogger(__name__)

RESOLVED_RETENTION = 15 * 60.0
ENDS_AT_FACTOR = 4


@dataclass(frozen=True)
class Alert:
    labels: tuple[tuple[str, str], ...]  # sorted; alertname and severity included
    annotations: tuple[tuple[str, str], ...]
    value: float
    active_since: float
    fired_at: float | None = None
    resolved_at: float | None = None

    @property
    def firing(self) -> bool:
        return self.fired_at is not None and self.resolved_at is None

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


Key = tuple[int, tuple[tuple[str, str], ...]]
_SESSIONS = "\x00sessions"  # the partition of session alerts; no whatsapp_id looks like it


class Evaluator:
    """Holds the pending/firing state of every threshold instance, account by account."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.thresholds: Sequence[Threshold] = config.thresholds
        self.stale_after = config.stale_after
        self.clock = clock
        self._lock = threading.Lock()
        # Partitioned by whatsapp_id (sessions under a key of their own), so that
        # one account's evaluation replaces only that account's alerts.
        self._active: dict[str, dict[Key, Alert]] = {}
        self._resolved: list[Alert] = []

    def evaluate_account(self, state: AccountState) -> None:
        now = self.clock()
        found = []
        for index, threshold in enumerate(self.thresholds):
            if threshold.kind == "session_not_ready" or not threshold.applies_to(state.account.name):
                continue
            for labels, value, extra in instances(threshold, state, now, self.stale_after):
                found.append((index, threshold, labels, value, extra))
        self._update(state.account.whatsapp_id, found, now)

    def evaluate_sessions(self, discovery: DiscoveryState) -> None:
        now = self.clock()
        found = [
            (index, threshold, labels, value, extra)
            for index, threshold in enumerate(self.thresholds)
            if threshold.kind == "session_not_ready"
            for labels, value, extra in session_instances(discovery)
            if threshold.applies_to(labels["account"])
        ]
        self._update(_SESSIONS, found, now)

    def retain(self, whatsapp_ids: set[str]) -> None:
        """Accounts no longer polled (their session is gone): their firing alerts resolve now."""
        with self._lock:
            gone = [p for p in self._active if p != _SESSIONS and p not in whatsapp_ids]
        for partition in gone:
            self._update(partition, [], self.clock())
            with self._lock:
                del self._active[partition]

    def _update(self, partition: str, found: list, now: float) -> None:
        with self._lock:
            before = self._active.get(partition, {})
            after: dict[Key, Alert] = {}
            for index, threshold, labels, value, extra in found:
                limit = threshold.limit_for(labels["account"])
                if not breached(limit, value):
                    continue
                all_labels = {"alertname": threshold.name, "severity": limit.severity, **labels}
                key: Key = (index, tuple(sorted(all_labels.items())))
                previous = before.get(key)
                since = previous.active_since if previous else now
                fields = {
                    **{k: v for k, v in labels.items() if k != "name"},
                    **extra,
                    **threshold.fields(limit),
                    "value": threshold.format_value(value),
                }
                fired = (previous.fired_at if previous else None) or (
                    now if now - since >= limit.for_ else None
                )
                after[key] = Alert(
                    labels=key[1],
                    annotations=(
                        ("description", render_text(threshold.description, fields)),
                        ("summary", render_text(threshold.summary, fields)),
                    ),
                    value=value,
                    active_since=since,
                    fired_at=fired,
                )
                if fired == now and (previous is None or previous.fired_at is None):
                    log.info("alert firing", extra={"fields": dict(key[1])})
            for key, alert in before.items():
                if key not in after and alert.fired_at is not None:
                    self._resolved.append(replace(alert, resolved_at=now))
                    log.info("alert resolved", extra={"fields": dict(alert.labels)})
            self._active[partition] = after
            self._resolved = [a for a in self._resolved if now - (a.resolved_at or now) <= RESOLVED_RETENTION]

    def alerts(self) -> list[Alert]:
        """Firing alerts and recently resolved ones: what Alertmanager should hear about."""
        with self._lock:
            firing = [a for part in self._active.values() for a in part.values() if a.fired_at is not None]
            return firing + list(self._resolved)


def _rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def payload(alerts: Sequence[Alert], now: float, resend_interval: float, generator_url: str) -> list[dict]:
    """The body of ``POST /api/v2/alerts``."""
    out = []
    for alert in alerts:
        ends = alert.resolved_at if alert.resolved_at is not None else now + ENDS_AT_FACTOR * resend_interval
        out.append(
            {
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "startsAt": _rfc3339(alert.fired_at or alert.active_since),
                "endsAt": _rfc3339(ends),
                "generatorURL": generator_url,
            }
        )
    return out


class Sender:
    """Posts the evaluator's alerts to Alertmanager, on change and every resend interval."""

    def __init__(
        self,
        config: AlertmanagerConfig,
        evaluator: Evaluator,
        generator_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.evaluator = evaluator
        self.generator_url = generator_url
        self.clock = clock
        self.session = requests.Session()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self._last_sent: list[tuple] = []

    def send_once(self, force: bool = False) -> bool:
        alerts = self.evaluator.alerts()
        fingerprint = sorted((a.labels, a.fired_at, a.resolved_at, a.annotations) for a in alerts)
        if not alerts or (not force and fingerprint == self._last_sent):
            return True
        body = payload(alerts, self.clock(), self.config.resend_interval, self.generator_url)
        url = f"{self.config.url}/api/v2/alerts"
        try:
            response = self.session.post(url, json=body, timeout=self.config.timeout)
            ok = response.status_code // 100 == 2
            problem = f"HTTP {response.status_code}: {' '.join(response.text.split())[:200]}"
        except requests.RequestException as exc:
            ok, problem = False, type(exc).__name__
        if ok:
            self.sent += len(body)
            self._last_sent = fingerprint
            if self.last_error:
                log.info("alertmanager reachable again", extra={"fields": {"url": url}})
            self.last_error = None
            return True
        self.errors += len(body)
        if problem != self.last_error:  # one line per new problem, not one per retry
            log.warning(
                "alertmanager notification failed",
                extra={"fields": {"url": url, "alerts": len(body), "err": problem}},
            )
        self.last_error = problem
        return False

    def run(self) -> None:
        retry = 1.0
        next_resend = 0.0
        while not self.stop_event.is_set():
            self.wake.clear()  # before reading the alerts, so no change made after is missed
            now = time.monotonic()
            force = now >= next_resend
            if self.send_once(force=force):
                retry = 1.0
                if force:
                    next_resend = now + self.config.resend_interval
                self.wake.wait(max(0.0, next_resend - time.monotonic()))
            else:
                # Alertmanager unreachable: wait out the backoff whatever changes meanwhile
                # (waking on every poll would only hammer it), then send the whole state.
                self.stop_event.wait(retry)
                retry = min(retry * 2, self.config.resend_interval)
                next_resend = 0.0

    def start(self) -> None:
        threading.Thread(target=self.run, name="alertmanager", daemon=True).start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()


class Agent:
    """Glue: evaluates on every published snapshot and on a timer; wakes the sender on changes."""

    def __init__(self, config: Config, listen_url: str) -> None:
        self.evaluator = Evaluator(config)
        self.sender: Sender | None = None
        if config.alertmanager is not None:
            host_url = listen_url.replace("localhost", socket.gethostname(), 1)
            self.sender = Sender(config.alertmanager, self.evaluator, f"{host_url}/")
        # Time alone can breach a threshold (stale data) and end a `for`, so evaluate on a timer too.
        self.tick = min(15.0, config.poll_interval)
        self.stop_event = threading.Event()
        self.sources: Callable[[], tuple[list[AccountState], DiscoveryState | None]] | None = None

    def on_state(self, state: AccountState | DiscoveryState) -> None:
        if isinstance(state, DiscoveryState):
            self.evaluator.evaluate_sessions(state)
        else:
            self.evaluator.evaluate_account(state)
        self._changed()

    def _changed(self) -> None:
        if self.sender is not None:
            self.sender.wake.set()

    def _loop(self) -> None:
        while not self.stop_event.wait(self.tick):
            if self.sources is None:
                continue
            states, discovery = self.sources()
            for state in states:
                self.evaluator.evaluate_account(state)
            self.evaluator.retain({state.account.whatsapp_id for state in states})
            if discovery is not None:
                self.evaluator.evaluate_sessions(discovery)
            self._changed()

    def start(self, sources: Callable[[], tuple[list[AccountState], DiscoveryState | None]]) -> None:
        self.sources = sources
        threading.Thread(target=self._loop, name="alert-eval", daemon=True).start()
        if self.sender is not None:
            self.sender.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.sender is not None:
            self.sender.stop()


class AlertsCollector(Collector):
    """``whatsgate_alert_firing`` and the sender's counters; tiny, so rendered per scrape."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily(
            "whatsgate_alert_firing",
            "1 for each alert the exporter's own threshold evaluation finds firing (pending alerts are"
            " not shown); labels are the alert's, less the chat name (join whatsgate_chat_info on"
            " whatsapp_id and chat_id).",
        )
        for alert in self.agent.evaluator.alerts():
            if alert.firing:
                labels = {k: v for k, v in alert.labels if k != "name"}
                firing.add_sample("whatsgate_alert_firing", labels, 1.0)
        yield firing
        sender = self.agent.sender
        if sender is not None:
            sent = CounterMetricFamily(
                "whatsgate_alertmanager_notifications_sent",
                "Alerts sent to Alertmanager (each alert of each successful POST).",
            )
            sent.add_metric([], float(sender.sent))
            yield sent
            errors = CounterMetricFamily(
                "whatsgate_alertmanager_notifications_errors",
                "Alerts that could not be sent to Alertmanager (each alert of each failed POST).",
            )
            errors.add_metric([], float(sender.errors))
            yield errors
