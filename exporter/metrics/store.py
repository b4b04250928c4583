"""The store: the latest snapshot of every account, the only state pollers and HTTP share.

Publishing replaces one immutable object with one assignment, so a reader sees
each account either before or after a poll, never half of it. Publishing then
only sets the events of its subscribers (the exposition, the alerting agent,
the state file): their work runs on their own threads, never on the poller's.
The /metrics body is :mod:`.exposition`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import memory
from ..snapshot.state import AccountState, DiscoveryState
from .render import RenderedAccount, RenderedData, render_account, render_data


@dataclass
class Store:
    """The latest snapshot of every account polled, with its rendering, and readiness."""

    stale_after: float
    clock: Callable[[], float] = time.time
    _accounts: Mapping[str, RenderedAccount] = field(default_factory=dict)
    discovery: DiscoveryState | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The accounts /ready waits for; replaced whole, never edited in place.
    _expected: frozenset[str] = frozenset()
    _subscribers: tuple[threading.Event, ...] = ()
    _needs_discovery: bool = False
    # One more at every change of the snapshots: what the exposition compares, rather than holding
    # on to the snapshots themselves (an account's last one would stay alive beside its new one).
    version: int = 0

    def subscribe(self, wake: threading.Event) -> None:
        """Set ``wake`` after every publish; the subscriber does its work on its own thread."""
        self._subscribers = (*self._subscribers, wake)

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

    def prepare(self, state: AccountState) -> RenderedData | None:
        """Render a state's chat data (the heavy part) on the caller's thread, before publishing.

        Raises on data that cannot be written as exposition text, so the poller can
        publish a failed poll instead.
        """
        return render_data(state)

    def publish(self, state: AccountState, prepared: object = None) -> None:
        key = state.account.whatsapp_id
        with self._lock:  # serialises writers only; readers never take it
            if key not in self._expected:
                return  # a worker stopped (session gone) while its last poll was in flight
            done = prepared if isinstance(prepared, RenderedData) else None
            rendered = render_account(state, self._accounts.get(key), done)
            self._accounts = {**self._accounts, key: rendered}
            self.version += 1
            del rendered
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

    def snapshots(self) -> Mapping[str, RenderedAccount]:
        """Every account's snapshot: the same object until the next publish or removal."""
        return self._accounts

    def states(self) -> list[AccountState]:
        return [r.state for r in self._accounts.values()]

    def ready(self) -> tuple[bool, str]:
        accounts, expected = self._accounts, self._expected
        if self._needs_discovery and (self.discovery is None or self.discovery.last_success is None):
            return False, "sessions-get has not succeeded yet"
        polled = sum(1 for key in expected if key in accounts and accounts[key].state.polls > 0)
        return polled >= len(expected), f"{polled} of {len(expected)} accounts polled"

    def accounts(self) -> list[tuple[str, str]]:
        """(whatsapp_id, account label) of every account polled now, for service discovery."""
        accounts, expected = self._accounts, self._expected
        return sorted((key, accounts[key].state.account.name if key in accounts else key) for key in expected)

    def knows(self, whatsapp_id: str) -> bool:
        return whatsapp_id in self._accounts
