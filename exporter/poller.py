"""The poll loop: one worker thread per account, and one for session discovery.

Workers share nothing but the :class:`~exporter.metrics.store.Store` they publish
to, so a slow or failing account never delays another, and /metrics always
answers from the last published snapshot. After a failure a worker waits
longer before the next try (doubling, capped at four poll intervals): a
rate-limited or down API is not hammered, and recovery is still noticed soon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from .config import Config
from .metrics.store import Store
from .model import Account
from .snapshot.state import AccountState, ChatData, DiscoveryState
from .whatsgate.client import PollError, WhatsGateClient

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 4


def next_delay(interval: float, consecutive_failures: int) -> float:
    """Seconds to wait before the next poll: the interval, doubled per failure, capped."""
    if consecutive_failures <= 1:
        return interval
    return min(interval * 2 ** (consecutive_failures - 1), interval * MAX_BACKOFF_FACTOR)


class AccountPoller:
    def __init__(
        self,
        account: Account,
        client: WhatsGateClient,
        config: Config,
        publish: Callable[[AccountState], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.client = client
        self.config = config
        self.publish = publish
        self.clock = clock
        self.state = AccountState(account=account)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def poll_once(self) -> AccountState:
        """Poll the account once and publish the new snapshot; returns it."""
        started = time.monotonic()
        fields = {"account": self.account.name, "whatsapp_id": self.account.whatsapp_id}
        try:
            chats = self.client.get_chats(self.account.whatsapp_id)
            data = ChatData.build(chats, self.config.chats, polled_at=self.clock())
        except PollError as exc:
            state = self.state.failed(exc.reason, exc.detail, time.monotonic() - started)
            log.warning(
                "poll failed",
                extra={
                    "fields": {
                        **fields,
                        "reason": exc.reason,
                        "err": exc.detail,
                        "failures": state.consecutive_failures,
                    }
                },
            )
        else:
            if self.state.consecutive_failures:
                log.info(
                    "poll recovered",
                    extra={"fields": {**fields, "after_failures": self.state.consecutive_failures}},
                )
            state = self.state.succeeded(data, time.monotonic() - started)
            log.debug(
                "poll ok",
                extra={
                    "fields": {
                        **fields,
                        "chats": len(chats),
                        "duration": round(state.last_poll_duration or 0, 3),
                    }
                },
            )
        self.state = state
        self.publish(state)
        return state

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                state = self.poll_once()
                failures = state.consecutive_failures
            except Exception:  # a bug must not kill the worker silently and freeze the metrics
                log.exception("poll crashed", extra={"fields": {"account": self.account.name}})
                failures = self.state.consecutive_failures + 1
            self.stop_event.wait(next_delay(self.config.poll_interval, failures))

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"poll-{self.account.name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()


class Supervisor:
    """Starts a worker per account, and with ``discover: true`` follows ``sessions-get``."""

    def __init__(self, config: Config, client: WhatsGateClient, store: Store) -> None:
        self.config = config
        self.client = client
        self.store = store
        self.pollers: dict[str, AccountPoller] = {}
        self.discovery = DiscoveryState()
        self.stop_event = threading.Event()
        self._configured = {a.whatsapp_id: a for a in config.accounts}

    def start(self) -> None:
        for whatsapp_id in self._configured:
            self.store.expect(whatsapp_id)
        if self.config.discover:
            # Discovery runs first and synchronously once, so /ready waits for its accounts.
            self.discover_once()
            threading.Thread(target=self._discover_loop, name="discovery", daemon=True).start()
        self._ensure(self._configured.values())

    def stop(self) -> None:
        self.stop_event.set()
        for poller in list(self.pollers.values()):  # discovery may change the dict meanwhile
            poller.stop()

    def _ensure(self, accounts: Iterable[Account]) -> None:
        for account in accounts:
            if account.whatsapp_id not in self.pollers:
                self.store.expect(account.whatsapp_id)
                poller = AccountPoller(account, self.client, self.config, self.store.publish)
                self.pollers[account.whatsapp_id] = poller
                poller.start()

    def discover_once(self) -> None:
        try:
            sessions = self.client.sessions()
        except PollError as exc:
            self.discovery = self.discovery.failed(exc.reason)
            log.warning("discovery failed", extra={"fields": {"reason": exc.reason, "err": exc.detail}})
            self.store.publish_discovery(self.discovery)
            return
        pairs = tuple(
            (self._configured.get(s.whatsapp_id) or Account(s.whatsapp_id, s.whatsapp_id), s)
            for s in sessions
        )
        self.discovery = DiscoveryState(
            up=True, sessions=pairs, last_success=time.time(), errors=self.discovery.errors
        )
        self.store.publish_discovery(self.discovery)
        found = {account.whatsapp_id for account, _ in pairs}
        for gone in set(self.pollers) - found - set(self._configured):
            log.info("session gone, no longer polled", extra={"fields": {"whatsapp_id": gone}})
            self.pollers.pop(gone).stop()
            self.store.remove(gone)
        self._ensure(account for account, _ in pairs)

    def _discover_loop(self) -> None:
        while not self.stop_event.wait(self.config.poll_interval):
            try:
                self.discover_once()
            except Exception:
                log.exception("discovery crashed")
