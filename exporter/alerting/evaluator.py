"""Alert evaluation with Prometheus's own semantics, so that both alerting modes agree.

An alert is *pending* from the first evaluation that breaches the threshold
and *firing* once it has been breached for ``for``; when it clears, a firing
alert is kept as resolved (with the time it resolved) for a while, so that
Alertmanager hears of the resolution even if it was down at that moment.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from ..config.settings import Config
from ..snapshot.state import AccountState, DiscoveryState
from .kinds.history import History
from .templates import account_fields, render_text
from .thresholds import Threshold, breached

log = logging.getLogger(__name__)

RESOLVED_RETENTION = 15 * 60.0
# Resolved alerts are kept only to tell Alertmanager; under heavy chat churn there can be
# many, so keep at most this many (the newest), as a bound on memory.
MAX_RESOLVED = 10_000


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


# An alert is its labels (alertname and severity included): the config refuses two thresholds
# that could raise the same ones, so they identify it across evaluations and reloads.
Key = tuple[tuple[str, str], ...]
# One measured instance of one threshold: (threshold, labels, value, extra template fields).
Found = tuple[Threshold, dict[str, str], float, Mapping[str, str]]
_SESSIONS = "\x00sessions"  # the partition of session alerts; no whatsapp_id looks like it
_NO_ALERTS: Mapping[Key, Alert] = MappingProxyType({})


FIRING, RESOLVED = "firing", "resolved"


def _log_changes(changed: Sequence[tuple[str, Key]]) -> None:
    """One alert's change is one line with its labels; several are one line with counts per
    alert name (each alert's labels then at debug)."""
    if len(changed) == 1:
        what, key = changed[0]
        log.info(f"alert {what}", extra={"fields": dict(key)})
        return
    if not changed:
        return
    for what, key in changed:
        log.debug(f"alert {what}", extra={"fields": dict(key)})
    counts = Counter((dict(key)["alertname"], what) for what, key in changed)
    # Which account, when one changed (an evaluation is per account): "firing=3" after "firing=6"
    # otherwise reads like a total that fell. The session alerts carry an account too.
    accounts = {dict(key).get("account", "") for _, key in changed}
    fields: dict[str, object] = {
        FIRING: sum(1 for what, _ in changed if what == FIRING),
        RESOLVED: sum(1 for what, _ in changed if what == RESOLVED),
        **({"account": accounts.pop()} if len(accounts) == 1 else {"accounts": len(accounts)}),
        "alerts": ", ".join(f"{name} {what} {n}" for (name, what), n in sorted(counts.items())),
    }
    log.info("alerts changed", extra={"fields": fields})


class Evaluator:
    """Holds the pending/firing state of every threshold instance, account by account."""

    def __init__(
        self, config: Config, clock: Callable[[], float] = time.time, keep_resolved: bool = True
    ) -> None:
        self.thresholds: Sequence[Threshold] = config.thresholds
        self.stale_after = config.stale_after
        self.clock = clock
        self._lock = threading.Lock()
        # Partitioned by whatsapp_id (sessions under a key of their own), so that
        # one account's evaluation replaces only that account's alerts.
        self._active: dict[str, Mapping[Key, Alert]] = {}
        self._resolved: list[Alert] = []
        # Windowed thresholds' samples (responses_within), per account and threshold.
        self._histories: dict[str, dict[Threshold, History]] = {}
        # Without an Alertmanager to tell, a resolved alert is simply gone.
        self.keep_resolved = keep_resolved
        # Alerts that fired or resolved in the current batch (see batch()): logged together.
        self._changed: list[tuple[str, Key]] = []
        self._batches = 0
        # Alerts Alertmanager still held as firing when the agent started (see restore()).
        self._restored: dict[frozenset[tuple[str, str]], tuple[float, float]] = {}

    def restore(self, alerts: Iterable[tuple[Mapping[str, str], float, float]]) -> None:
        """Alerts (labels, startsAt, endsAt) that Alertmanager holds as firing, from before a restart.

        The pending/firing state lives in this process alone, so a restart began every ``for``
        again: an alert with a ``for`` longer than Alertmanager keeps an alert without news
        (``endsAt``) resolved there, and fired again a ``for`` later, as a new page. One whose
        labels this agent finds breached again continues firing since its ``startsAt``, as
        Prometheus restores its alerts' ``for`` state; only until its ``endsAt``, while
        Alertmanager itself still holds it. Empty label values are absent in Alertmanager; alerts
        of other sources (other alert names) are not kept.
        """
        names = {threshold.name for threshold in self.thresholds}
        with self._lock:
            self._restored = {
                frozenset((k, v) for k, v in lb.items() if v): (s, e)
                for lb, s, e in alerts
                if lb.get("alertname") in names
            }

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Log the alert changes of every evaluation made inside as one line (see _log_changes).

        At start-up every account's first poll can fire dozens of alerts within a second:
        one line each would bury the rest of the log.
        """
        with self._lock:
            self._batches += 1
        try:
            yield
        finally:
            with self._lock:
                self._batches -= 1
                changed, self._changed = (self._changed, []) if not self._batches else ([], self._changed)
            _log_changes(changed)

    def evaluate_account(self, state: AccountState) -> None:
        now = self.clock()
        found = []
        whatsapp_id = state.account.whatsapp_id
        with self._lock:
            past = self._histories.get(whatsapp_id, {})
        histories: dict[Threshold, History] = {}
        for threshold in self.thresholds:
            spec = threshold.spec
            if spec.on_sessions or not threshold.applies_to(state.account.name):
                continue
            if spec.windowed:
                history = spec.record(threshold, state, now, past.get(threshold))
                if history is not None:
                    histories[threshold] = history
                measured = spec.measure_over(threshold, state, now, history)
            else:
                measured = spec.measure(threshold, state, now, self.stale_after)
            for labels, value, extra in measured:
                found.append((threshold, labels, value, extra))
        with self._lock:
            # Replaced whole: a threshold removed by a reload leaves no history behind. None kept
            # for an account without any (most, without windowed thresholds): no dict each.
            if histories:
                self._histories[whatsapp_id] = histories
            else:
                self._histories.pop(whatsapp_id, None)
        self._update(whatsapp_id, found, now)

    def evaluate_sessions(self, discovery: DiscoveryState) -> None:
        now = self.clock()
        found = [
            (threshold, labels, value, extra)
            for threshold in self.thresholds
            if threshold.spec.on_sessions
            for labels, value, extra in threshold.spec.measure_sessions(discovery)
            if threshold.applies_to(labels["account"])
        ]
        self._update(_SESSIONS, found, now)

    def retain(self, whatsapp_ids: set[str]) -> None:
        """Keep only these accounts: the others' firing alerts resolve now (see :meth:`forget`)."""
        with self._lock:
            gone = [p for p in self._active if p != _SESSIONS and p not in whatsapp_ids]
        self.forget(gone)

    def forget(self, whatsapp_ids: Iterable[str]) -> None:
        """Accounts no longer polled (their session is gone): their firing alerts resolve now."""
        for partition in whatsapp_ids:
            self._update(partition, [], self.clock())
            with self._lock:
                del self._active[partition]
                self._histories.pop(partition, None)

    def _update(self, partition: str, found: list[Found], now: float) -> None:
        with self._lock:
            before = self._active.get(partition, {})
            after: dict[Key, Alert] = {}
            for threshold, labels, value, extra in found:
                limit = threshold.limit_for(labels["account"])
                if not breached(limit, value):
                    continue
                all_labels = {"alertname": threshold.name, "severity": limit.severity, **labels}
                key: Key = tuple(sorted(all_labels.items()))
                previous = before.get(key)
                since = previous.active_since if previous else now
                fired_before = previous.fired_at if previous else None
                if previous is None:  # new here, but maybe firing before a restart
                    restored = self._restored.pop(frozenset(kv for kv in key if kv[1]), None)
                    if restored is not None and restored[0] <= now < restored[1]:
                        since = fired_before = restored[0]
                fields = {
                    **{k: v for k, v in labels.items() if k != "name"},
                    **account_fields(labels["account"], labels["whatsapp_id"]),
                    **extra,
                    **threshold.fields(limit),
                    "value": threshold.format_value(value),
                }
                fired = fired_before or (now if now - since >= limit.for_ else None)
                after[key] = Alert(
                    labels=key,
                    annotations=(
                        ("description", render_text(threshold.description, fields)),
                        ("summary", render_text(threshold.summary, fields)),
                    ),
                    value=value,
                    active_since=since,
                    fired_at=fired,
                )
                if fired == now and (previous is None or previous.fired_at is None):
                    self._changed.append((FIRING, key))
            for key, alert in before.items():
                if key not in after and alert.fired_at is not None:
                    if self.keep_resolved:
                        self._resolved.append(replace(alert, resolved_at=now))
                    self._changed.append((RESOLVED, alert.labels))
            self._active[partition] = after or _NO_ALERTS  # most accounts: shared, not a dict each
            recent = [a for a in self._resolved if now - (a.resolved_at or now) <= RESOLVED_RETENTION]
            self._resolved = recent[-MAX_RESOLVED:]
            changed, self._changed = (self._changed, []) if not self._batches else ([], self._changed)
        _log_changes(changed)

    def alerts(self) -> list[Alert]:
        """Firing alerts and recently resolved ones: what Alertmanager should hear about."""
        with self._lock:
            firing = [a for part in self._active.values() for a in part.values() if a.fired_at is not None]
            return firing + list(self._resolved)
