"""The alerting agent: evaluates thresholds on its own thread and hands changes to the sender.

Publishing a snapshot only sets :attr:`Agent.wake`; the evaluation runs here,
never on a poller's thread, so a slow or failing evaluation cannot delay a
poll or count against an account. A wake evaluates only the accounts published
or removed (their alerts resolve) since the version of the store it last saw:
a wake comes at every publish, so going over every account at each made a first
cycle quadratic in the accounts. Time alone can breach a threshold (stale data)
and end a ``for``, so everything is also evaluated on a timer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ..config.settings import Config
from ..metrics import definitions as d
from ..snapshot.state import AccountState, DiscoveryState
from .evaluator import Evaluator
from .sender import Sender

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the agent reads of the store."""

    discovery: DiscoveryState | None

    def changes(self, since: int) -> tuple[int, dict[str, AccountState | None]]: ...


class Agent:
    def __init__(self, config: Config, generator_url: str, clock: Callable[[], float] = time.time) -> None:
        self.evaluator = Evaluator(config, clock, keep_resolved=config.alertmanager is not None)
        self.generator_url = generator_url
        self.clock = clock
        self.sender: Sender | None = None
        if config.alertmanager is not None:
            self.sender = Sender(config.alertmanager, self.evaluator, generator_url, clock)
        self._started = False
        self.tick = min(15.0, config.poll_interval)
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        # The store's version and discovery last evaluated: a wake evaluates only what changed since.
        self._seen = 0
        self._seen_discovery: DiscoveryState | None = None

    def apply(self, config: Config) -> None:
        """A reloaded config: new thresholds from the next evaluation; pending and firing alerts
        whose thresholds stay keep their state (an alert is its labels). A changed Alertmanager
        gets a new sender, which sends the current alerts at once."""
        self.evaluator.thresholds = config.thresholds
        self.evaluator.stale_after = config.stale_after
        self.evaluator.keep_resolved = config.alertmanager is not None
        self.tick = min(15.0, config.poll_interval)
        old = self.sender
        if old is not None and old.config == config.alertmanager:
            return
        self.sender = None
        if old is not None:
            old.stop()
        if config.alertmanager is not None:
            self.sender = Sender(config.alertmanager, self.evaluator, self.generator_url, self.clock)
            if self._started:
                self.sender.start()
        self.wake.set()

    def evaluate(self, store: Source, everything: bool = True) -> None:
        """Evaluate what changed since the last evaluation (everything when ``everything``), then
        wake the sender."""
        self._seen, changed = store.changes(0 if everything else self._seen)
        discovery = store.discovery
        with self.evaluator.batch():
            for state in changed.values():
                if state is not None:
                    self.evaluator.evaluate_account(state)
            if everything:
                self.evaluator.retain({key for key, state in changed.items() if state is not None})
            else:
                self.evaluator.forget(key for key, state in changed.items() if state is None)
            if discovery is not None and (everything or discovery is not self._seen_discovery):
                self.evaluator.evaluate_sessions(discovery)
                self._seen_discovery = discovery
        if self.sender is not None:
            self.sender.wake.set()

    def _loop(self, store: Source) -> None:
        if self.sender is not None:  # before the first evaluation: firing alerts go on firing
            self.evaluator.restore(self.sender.active_alerts())
        next_full = 0.0
        while not self.stop_event.is_set():
            self.wake.wait(max(0.0, next_full - time.monotonic()))
            self.wake.clear()  # before reading the store, so no publish made after is missed
            if self.stop_event.is_set():
                break
            now = time.monotonic()
            everything = now >= next_full
            if everything:
                next_full = now + self.tick
            try:
                self.evaluate(store, everything)
            except Exception:  # a bug here must not stop alerting for good
                log.exception("alert evaluation crashed")

    def start(self, store: Source) -> None:
        threading.Thread(target=self._loop, args=(store,), name="alert-eval", daemon=True).start()
        self._started = True
        if self.sender is not None:
            self.sender.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self.sender is not None:
            self.sender.stop()


class AlertsCollector(Collector):
    """``whatsgate_alert_firing`` and the sender's counters; tiny, so rendered per scrape.

    Sample::

        whatsgate_alert_firing{account="sales",alertname="WhatsGateAccountDown",severity="critical",...} 1.0
        whatsgate_alertmanager_notifications_sent_total 12.0
        whatsgate_alertmanager_notifications_errors_total 0.0
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        if not self.agent.evaluator.thresholds and self.agent.sender is None:
            return  # nothing configured to alert on: no empty families either
        firing = d.ALERT_FIRING.family()
        for alert in self.agent.evaluator.alerts():
            if alert.firing:
                labels = {k: v for k, v in alert.labels if k != "name"}
                firing.add_sample(d.ALERT_FIRING.name, labels, 1.0)
        yield firing
        sender = self.agent.sender
        if sender is not None:
            sent = d.ALERTMANAGER_SENT.family()
            sent.add_metric([], float(sender.sent))
            yield sent
            errors = d.ALERTMANAGER_ERRORS.family()
            errors.add_metric([], float(sender.errors))
            yield errors
