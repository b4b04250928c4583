"""The store: the latest snapshot of every account, the only state pollers and HTTP share.

Publishing replaces one immutable object with one assignment, so a reader sees
each account either before or after a poll, never half of it. Publishing then
only sets the events of its subscribers (the exposition, the alerting agent,
the state file): their work runs on their own threads, never on the poller's.
Rendering is :mod:`exporter.metrics.exposition`'s: it renders each snapshot it has not
seen yet, except a poll's chats, which it renders through :meth:`Store.prepare` on the
poller's thread (see there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import memory
from .state import AccountState, DiscoveryState


@dataclass
class Store:
    """The latest snapshot of every account polled, the discovery's, and readiness."""

    stale_after: float
    clock: Callable[[], float] = time.time
    _accounts: Mapping[str, AccountState] = field(default_factory=dict)
    discovery: DiscoveryState | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The accounts /ready waits for; replaced whole, never edited in place.
    _expected: frozenset[str] = frozenset()
    _subscribers: tuple[threading.Event, ...] = ()
    _render: Callable[[AccountState], object] | None = None
    _needs_discovery: bool = False
    # One more at every change of the snapshots: what the exposition compares to see a publish
    # since its last rebuild.
    version: int = 0

    def subscribe(
        self, wake: threading.Event, render: Callable[[AccountState], object] | None = None
    ) -> None:
        """Set ``wake`` after every publish; the subscriber does its work on its own thread.

        ``render``: what :meth:`prepare` calls (the exposition's, see there).
        """
        self._subscribers = (*self._subscribers, wake)
        if render is not None:
            self._render = render

    def _notify(self) -> None:
        for wake in self._subscribers:
            wake.set()

    # --- written by the poller -------------------------------------------------

    def expect(self, whatsapp_id: str) -> None:
        """An account is polled from now on: /ready waits for its first poll."""
        with self._lock:
            self._expected = self._expected | {whatsapp_id}
        self._notify()

    def expect_discovery(self) -> None:
        """With discovery, /ready also waits until sessions-get has worked once."""
        self._needs_discovery = True

    def prepare(self, state: AccountState) -> object:
        """A poll's chat data rendered by the subscriber that renders (None without one), on the
        caller's thread before publishing: the poller then drops the chats (ChatData.released)
        and publishes the rendering with the data, so the chats must be read first; and data
        that cannot be written as exposition text raises here, so the poller publishes a
        failed poll instead.
        """
        return self._render(state) if self._render is not None else None

    def publish(self, state: AccountState) -> None:
        key = state.account.whatsapp_id
        with self._lock:  # serialises writers only; readers never take it
            if key not in self._expected:
                return  # a worker stopped (session gone) while its last poll was in flight
            self._accounts = {**self._accounts, key: state}
            self.version += 1
            memory.trim()  # the poll's transient (decoded JSON, render) is freed by now
        self._notify()

    def publish_discovery(self, state: DiscoveryState) -> None:
        with self._lock:
            self.discovery = state
            self.version += 1
        self._notify()

    def remove(self, whatsapp_id: str) -> None:
        with self._lock:
            self._accounts = {k: v for k, v in self._accounts.items() if k != whatsapp_id}
            self.version += 1
            self._expected = self._expected - {whatsapp_id}
        self._notify()

    # --- read by the exposition, the web server and the alerting agent --------

    def snapshots(self) -> Mapping[str, AccountState]:
        """Every account's snapshot: the same object until the next publish or removal."""
        return self._accounts

    def states(self) -> list[AccountState]:
        return list(self._accounts.values())

    def ready(self) -> tuple[bool, str]:
        accounts, expected = self._accounts, self._expected
        if self._needs_discovery and (self.discovery is None or self.discovery.last_success is None):
            return False, "sessions-get has not succeeded yet"
        polled = sum(1 for key in expected if key in accounts and accounts[key].polls > 0)
        return polled >= len(expected), f"{polled} of {len(expected)} accounts polled"

    def accounts(self) -> list[tuple[str, str]]:
        """(whatsapp_id, account label) of every account polled now, for service discovery."""
        accounts, expected = self._accounts, self._expected
        return sorted((key, accounts[key].account.name if key in accounts else key) for key in expected)

    def knows(self, whatsapp_id: str) -> bool:
        return whatsapp_id in self._accounts
