"""The supervisor: which accounts are polled, by whom, and when.

Configured accounts are polled from the start; with ``discover: true`` the
discovery thread adds and removes the sessions ``sessions-get`` lists. All
accounts share one :class:`~exporter.poller.scheduler.Scheduler`, so threads
stay bounded (``poll_concurrency`` workers) whatever the number of accounts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from ..config.settings import Config
from ..model import Account
from ..snapshot.statefile import Entry
from ..snapshot.store import Store
from ..whatsgate.client import WhatsGateClient
from .account import AccountPoller
from .discovery import Discovery
from .events import EVENTS_JOB, EventsPoller
from .scheduler import Scheduler

# The most chats whose answers are polled at once, for accounts of more than an eighth of it
# (see Scheduler: each account weighs the chats of its last answer; a huge one counts as the
# budget, and twice the budget is let in while the answers are slow): one account of 10,000 chats.
# What it saves in peak RSS: bench/RESULTS.md.
CHATS_IN_FLIGHT = 10_000


class Supervisor:
    def __init__(
        self,
        config: Config,
        client: WhatsGateClient,
        store: Store,
        clock: Callable[[], float] = time.time,
        restored: Mapping[str, Entry] | None = None,
    ) -> None:
        self.config = config
        # Read from the state file at start, each handed to the first poller of its account only:
        # a later poller (after a reload, a session back) starts from the live state instead.
        self.restored = dict(restored or {})
        self.client = client
        self.store = store
        self.clock = clock
        self.scheduler = Scheduler(
            config.poll_concurrency,
            budget=CHATS_IN_FLIGHT,
            weight=self._weight,
            patience=lambda: self.config.poll_interval,
        )
        self.pollers: dict[str, AccountPoller] = {}
        # What every poller reads its settings through: one bound method for all of them, not
        # one made (and kept) for each account.
        self._settings: Callable[[], Config] = self.settings
        self._lock = threading.Lock()  # pollers is changed by discovery while stop() or a reload reads it
        self._discovery_stop = threading.Event()
        self.discovery = Discovery(
            client,
            configured=lambda: {a.whatsapp_id: a for a in self.config.accounts},
            owns=lambda whatsapp_id: self.config.shard.owns(whatsapp_id),
            grace=lambda: self.config.stale_after,
            publish=store.publish_discovery,
            sync=self._sync_discovered,
            clock=clock,
            scrub=lambda detail: self.config.privacy.scrub(detail),
        )

    def _weight(self, whatsapp_id: str) -> int:
        poller = self.pollers.get(whatsapp_id)
        return poller.last_answer_chats if poller is not None else 0

    def settings(self) -> Config:
        return self.config

    def _configured(self) -> dict[str, Account]:
        """The configured accounts this exporter's shard owns."""
        return {a.whatsapp_id: a for a in self.config.accounts if self.config.shard.owns(a.whatsapp_id)}

    def start(self) -> None:
        self.scheduler.start()
        if self.config.discover:
            self.store.expect_discovery()
            self._start_discovery()
        for account in self._configured().values():
            self._add(account)

    def _start_discovery(self) -> None:
        self._discovery_stop = threading.Event()
        threading.Thread(
            target=self.discovery.run,
            args=(lambda: self.config.poll_interval, self._discovery_stop),
            name="discovery",
            daemon=True,
        ).start()

    def stop(self, grace: float = 0.0) -> None:
        """No new poll starts; polls under way get up to ``grace`` seconds to finish."""
        self._discovery_stop.set()
        self.scheduler.stop(grace)

    def apply(self, config: Config) -> None:
        """A reloaded config: one assignment for every setting read at poll time, then the accounts.

        Accounts that stay keep their poller and so their state (waits, counters, last
        success); a renamed account is a new series set, so its counters start afresh, but its
        open waits continue (the chats are the same).
        """
        old, self.config = self.config, config  # poll_concurrency stays (the reloader keeps it)
        if config.discover and not old.discover:
            self._start_discovery()
        elif old.discover and not config.discover:
            self._discovery_stop.set()
            self.discovery.forget()
        wanted = self._configured()
        discovered = self.discovery.accounts() if config.discover else {}
        with self._lock:
            polled = dict(self.pollers)
        renamed: dict[str, Entry | None] = {}
        for whatsapp_id, poller in polled.items():
            account = wanted.get(whatsapp_id) or discovered.get(whatsapp_id)
            if account is None or account.name != poller.account.name:
                self._remove(whatsapp_id)
                if account is not None:
                    renamed[whatsapp_id] = poller.saved(self.clock(), config.stale_after)
            elif account != poller.account:
                poller.rename(account)  # same labels, another schedule: keep its state
        for account in [*wanted.values(), *(a for i, a in discovered.items() if i not in wanted)]:
            self._add(account, renamed.get(account.whatsapp_id))

    def _add(self, account: Account, waits: Entry | None = None) -> None:
        """Poll ``account`` from now on, continuing ``waits`` or else what the state file held for it."""
        with self._lock:
            if account.whatsapp_id in self.pollers:
                return
            restored = self.restored.pop(account.whatsapp_id, None)
            poller = AccountPoller(
                account, self.client, self._settings, self.store, self.clock, waits or restored
            )
            self.pollers[account.whatsapp_id] = poller
        self.store.expect(account.whatsapp_id)
        self.scheduler.add(account.whatsapp_id, poller)
        # The account's event log (reply times), a job of its own: it never delays the get-chats
        # poll. Always scheduled, it reads nothing while replies.enabled is false (a reload may
        # turn it on). In the background: it gives way to due get-chats polls, its own account's
        # and the others' (up to a poll interval), so thousands of accounts starting together are
        # all polled, and ready, before their event logs and get-history backfills are read.
        events = EventsPoller(poller, self.client, self.clock)
        self.scheduler.add(account.whatsapp_id + EVENTS_JOB, events, background=True)

    def saved(self) -> dict[str, Entry]:
        """What the state file keeps: each account's open waits as of its last good poll and, for an
        account without one since the start, what the file held, until its first good poll replaces
        it or ``stale_after`` says the account is gone (failing at start must not lose its waits).
        An entry of another shard's account is dropped at once: that pod keeps its waits now."""
        now, config = self.clock(), self.config
        with self._lock:
            pollers = dict(self.pollers)
        saved = {
            s.account.whatsapp_id: Entry.of(
                s.data, p.saved_replies() if (p := pollers.get(s.account.whatsapp_id)) else None
            )
            for s in self.store.states()
            if s.data is not None
        }
        with self._lock:
            self.restored = {
                w: e
                for w, e in self.restored.items()
                if not e.expired(now, config.stale_after) and config.shard.owns(w)
            }
            polled = {w: p.saved(now, config.stale_after) for w, p in self.pollers.items() if w not in saved}
            pending = {**self.restored, **polled}
        for whatsapp_id, entry in pending.items():
            if entry is not None and whatsapp_id not in saved:
                saved[whatsapp_id] = entry
        return saved

    def _remove(self, whatsapp_id: str) -> None:
        with self._lock:
            self.pollers.pop(whatsapp_id, None)
        self.scheduler.remove(whatsapp_id)
        self.scheduler.remove(whatsapp_id + EVENTS_JOB)
        self.store.remove(whatsapp_id)

    def _sync_discovered(self, discovered: dict[str, Account]) -> None:
        configured = set(self._configured())
        with self._lock:
            polled = set(self.pollers)
        for whatsapp_id in polled - set(discovered) - configured:
            self._remove(whatsapp_id)
        for account in discovered.values():
            self._add(account)
