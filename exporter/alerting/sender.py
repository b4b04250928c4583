"""Posting alerts to Alertmanager's v2 API, from the agent's own thread.

It posts the whole current set (firing, and recently resolved) to
``/api/v2/alerts`` whenever the set changes and every ``resend_interval``
otherwise, with ``endsAt`` four resend intervals ahead for firing alerts, as
Prometheus does. So an Alertmanager that was down simply receives the current
truth when it comes back, and one that never hears from the exporter again
resolves its alerts on its own. At start the agent reads back the alerts
Alertmanager holds as firing (:meth:`Sender.active_alerts`), so a restart does
not begin their ``for`` again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import requests

from ..config import redaction
from ..config.session import describe_error, new_session
from ..config.settings import AlertmanagerConfig
from .evaluator import Alert, Evaluator

log = logging.getLogger(__name__)

ENDS_AT_FACTOR = 4


def _rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


_FRACTION = re.compile(r"\.(\d+)")


def _from_rfc3339(text: str) -> float:
    # Python 3.10's fromisoformat takes neither "Z" nor Alertmanager's nanoseconds.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text.replace("Z", "+00:00"), count=1)
    return datetime.fromisoformat(text).timestamp()


def firing_alerts(body: object) -> list[tuple[dict[str, str], float, float]]:
    """(labels, startsAt, endsAt) of each alert in a ``GET /api/v2/alerts`` answer; entries that
    are not alerts as its API describes them are left out."""
    found = []
    for alert in body if isinstance(body, list) else ():
        try:
            labels, starts, ends = alert["labels"], alert["startsAt"], alert["endsAt"]
            if isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()):
                found.append((labels, _from_rfc3339(starts), _from_rfc3339(ends)))
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
    return found


def payload(
    alerts: Sequence[Alert], now: float, resend_interval: float, generator_url: str
) -> list[dict[str, object]]:
    """The body of ``POST /api/v2/alerts``."""
    out: list[dict[str, object]] = []
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
        # Auth, TLS and proxy from alertmanager's http_config keys; secrets registered for redaction.
        self.session = new_session(config.http, "alertmanager")
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.sent = 0
        self.errors = 0
        self.last_error: str | None = None
        self._last_sent: Sequence[tuple[object, ...]] = []

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
            problem = f"HTTP {response.status_code}: {redaction.excerpt(response.text)}"
        except requests.RequestException as exc:
            ok, problem = False, describe_error(exc)
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

    def active_alerts(self) -> list[tuple[dict[str, str], float, float]]:
        """The alerts Alertmanager holds now (labels, startsAt, endsAt); none, with one log line,
        when it cannot say."""
        url = f"{self.config.url}/api/v2/alerts"
        try:
            response = self.session.get(url, params={"active": "true"}, timeout=self.config.timeout)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}: {redaction.excerpt(response.text)}")
            return firing_alerts(response.json())
        except (requests.RequestException, ValueError) as exc:
            problem = describe_error(exc) if isinstance(exc, requests.RequestException) else str(exc)
            log.warning(
                "cannot read the firing alerts back from alertmanager",
                extra={"fields": {"url": url, "err": problem}},
            )
            return []

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
