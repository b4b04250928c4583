"""Session discovery (``discover: true``): which accounts to poll, from ``sessions-get``.

Discovery must neither drop nor freeze accounts on a bad answer. Pages are
followed with checks (:func:`exporter.whatsgate.sessions.paginate`), and a
session missing from one answer is dropped only after it has been missing for
the grace period (``stale_after``), logged and counted. A failed discovery
changes nothing but ``whatsgate_discovery_up`` and its error count.

Sessions enter the exporter here, so every value of theirs passes redaction here, before
it can become a label, a page, a log line or a key of the state file: a status holding
the API key is scrubbed, and a session whose id holds it is not polled at all (its id is
the ``whatsapp_id`` label and is sent back in every request: scrubbing it would label,
and ask for, a session that does not exist).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from ..config import redaction
from ..model import INTERNAL, Account, Session
from ..snapshot.state import DiscoveryState
from ..whatsgate.client import PollError, WhatsGateClient

log = logging.getLogger(__name__)


class Discovery:
    """Runs ``sessions-get`` every poll interval and tells the supervisor which accounts exist."""

    def __init__(
        self,
        client: WhatsGateClient,
        configured: Callable[[], dict[str, Account]],
        grace: Callable[[], float],
        publish: Callable[[DiscoveryState], None],
        sync: Callable[[dict[str, Account]], None],
        clock: Callable[[], float] = time.time,
        owns: Callable[[str], bool] = lambda _whatsapp_id: True,
        scrub: Callable[[str], str] = lambda detail: detail,
    ) -> None:
        self.client = client
        self.configured = configured
        self.grace = grace
        self.owns = owns  # sharding: sessions of other shards are neither polled nor reported
        self.publish = publish
        self.sync = sync
        self.clock = clock
        self.scrub = scrub  # privacy mode, for error details (an answer's excerpt may hold numbers)
        self.state = DiscoveryState()
        self._refused = 0  # sessions whose id holds the API key, at the last discovery
        self._known: dict[str, tuple[Account, Session]] = {}
        self._missing_since: dict[str, float] = {}

    def discover_once(self) -> None:
        try:
            sessions = self.client.sessions()
        except PollError as exc:
            self._failed(exc.reason, exc.detail)
            return
        except Exception as exc:  # never let a bug freeze discovery with discovery_up at 1
            log.debug("internal error in discovery", exc_info=True)
            self._failed(INTERNAL, f"sessions-get: {type(exc).__name__} in the exporter")
            return
        sessions = [s for s in self._redacted(sessions) if self.owns(s.whatsapp_id)]
        now = self.clock()
        configured = self.configured()
        current = {s.whatsapp_id: (self._account(s.whatsapp_id, configured), s) for s in sessions}
        removed = 0
        for whatsapp_id, pair in self._known.items():
            if whatsapp_id in current:
                continue
            since = self._missing_since.setdefault(whatsapp_id, now)
            if now - since <= self.grace():
                current[whatsapp_id] = pair  # keep it (and its last status) through the grace period
            else:
                removed += 1
                del self._missing_since[whatsapp_id]
                log.info(
                    "session gone, no longer polled",
                    extra={"fields": {"whatsapp_id": whatsapp_id, "missing_for": round(now - since)}},
                )
        for whatsapp_id in list(self._missing_since):
            if whatsapp_id in {s.whatsapp_id for s in sessions}:
                del self._missing_since[whatsapp_id]
        self._known = current
        self.state = replace(
            self.state,
            up=True,
            sessions=tuple(current.values()),
            last_success=now,
            removed=self.state.removed + removed,
        )
        # Expected before the success is published: from then on /ready counts these sessions,
        # and between the two it would have counted none ("0 of 0 accounts polled": ready).
        self.sync({whatsapp_id: account for whatsapp_id, (account, _) in current.items()})
        self.publish(self.state)

    def _account(self, whatsapp_id: str, configured: dict[str, Account]) -> Account:
        """The session's account: as configured, or named by its id; the one the last discovery
        made when it is the same, so that its poller and this share one object, not one each."""
        account = configured.get(whatsapp_id) or Account(whatsapp_id, whatsapp_id)
        known = self._known.get(whatsapp_id)
        return known[0] if known is not None and known[0] == account else account

    def _redacted(self, sessions: list[Session]) -> list[Session]:
        """The sessions fit to show: secrets scrubbed from their fields, ids holding one left out."""
        if not redaction.mentions_secret(f"{s.whatsapp_id}\x00{s.name}\x00{s.status}" for s in sessions):
            refused = 0
        else:
            kept = [s for s in sessions if redaction.scrub(s.whatsapp_id) == s.whatsapp_id]
            refused = len(sessions) - len(kept)
            sessions = [
                Session(s.whatsapp_id, redaction.scrub(s.name), redaction.scrub(s.status)) for s in kept
            ]
        if refused and refused != self._refused:  # one line per change, not one per discovery
            log.warning(
                "sessions whose id holds the API key are not polled", extra={"fields": {"sessions": refused}}
            )
            self._refused = refused
        return sessions

    def accounts(self) -> dict[str, Account]:
        """The accounts of the sessions discovered (and still in their grace period)."""
        return {whatsapp_id: account for whatsapp_id, (account, _) in self._known.items()}

    def forget(self) -> None:
        """Discovery was turned off: its sessions are no longer reported."""
        self._known, self._missing_since = {}, {}
        self.state = DiscoveryState()
        self.publish(self.state)

    def _failed(self, reason: str, detail: str) -> None:
        self.state = self.state.failed(reason)
        log.warning("discovery failed", extra={"fields": {"reason": reason, "err": self.scrub(detail)}})
        self.publish(self.state)

    def run(self, interval: Callable[[], float], stop: threading.Event) -> None:
        """Discover at once (the web server is already answering), then every interval."""
        while not stop.is_set():
            try:
                self.discover_once()
            except Exception:
                log.exception("discovery crashed")
            stop.wait(interval())
