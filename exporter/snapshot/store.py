"""The store: the latest snapshot of every account, the only state pollers and HTTP share.

An account's snapshot is immutable and replaced whole, so a reader sees each account
either before or after a poll, never half of it. The map of accounts is edited in place
under a lock held only for that, and a reader copies it under the same lock, once per
read: copying the whole map at every publish instead made a first cycle quadratic in the
accounts. Each change is also numbered (:attr:`Store.version`) in a log with one entry
per account, so a reader that keeps the number it last saw (the alerting agent) gets what
changed since, in proportion to the change (:meth:`Store.changes`). Publishing then
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
    _accounts: dict[str, AccountState] = field(default_factory=dict)
    discovery: DiscoveryState | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # serialises writers
    # Held to change or read the map and the log, never while rendering: readers wait for no poll.
    _view: threading.Lock = field(default_factory=threading.Lock)
    # Account -> the version of its last publish or removal, oldest first. A removed account's
    # entry stays (one per account ever removed) so that a reader behind still sees it go.
    _changed: dict[str, int] = field(default_factory=dict)
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
        with self._lock:
            if key not in self._expected:
                return  # a worker stopped (session gone) while its last poll was in flight
            self._change(key, state)
            memory.trim()  # the poll's transient (decoded JSON, render) is freed by now
        self._notify()

    def publish_discovery(self, state: DiscoveryState) -> None:
        with self._lock:
            self.discovery = state
            self.version += 1
        self._notify()

    def remove(self, whatsapp_id: str) -> None:
        with self._lock:
            self._change(whatsapp_id, None)
            self._expected = self._expected - {whatsapp_id}
        self._notify()

    def _change(self, key: str, state: AccountState | None) -> None:
        """One account replaced (or removed, with None) and logged; the caller holds _lock."""
        with self._view:
            if state is None:
                self._accounts.pop(key, None)
            else:
                self._accounts[key] = state
            self.version += 1
            self._changed.pop(key, None)  # to the end of the log, in the order of the changes
            self._changed[key] = self.version

    # --- read by the exposition, the web server and the alerting agent --------

    def snapshots(self) -> Mapping[str, AccountState]:
        """Every account's snapshot as of one moment: the reader's own copy of the map."""
        with self._view:
            return dict(self._accounts)

    def states(self) -> list[AccountState]:
        with self._view:
            return list(self._accounts.values())

    def changes(self, since: int) -> tuple[int, dict[str, AccountState | None]]:
        """The version now, and every account published (its state) or removed (None) after
        version ``since``; from 0, every account there is, and every one removed."""
        changed: dict[str, AccountState | None] = {}
        with self._view:
            for key in reversed(self._changed):
                if self._changed[key] <= since:
                    break
                changed[key] = self._accounts.get(key)
            return self.version, changed

    def ready(self) -> tuple[bool, str]:
        if self._needs_discovery and (self.discovery is None or self.discovery.last_success is None):
            return False, "sessions-get has not succeeded yet"
        with self._view:
            accounts, expected = self._accounts, self._expected
            polled = sum(1 for key in expected if key in accounts and accounts[key].polls > 0)
        return polled >= len(expected), f"{polled} of {len(expected)} accounts polled"

    def accounts(self) -> list[tuple[str, str]]:
        """(whatsapp_id, account label) of every account polled now, for service discovery."""
        with self._view:
            accounts, expected = self._accounts, self._expected
            named = [(key, accounts[key].account.name if key in accounts else key) for key in expected]
        return sorted(named)

    def knows(self, whatsapp_id: str) -> bool:
        return whatsapp_id in self._accounts
