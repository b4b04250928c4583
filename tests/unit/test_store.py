"""The store: what a reader gets is whole and its own, and the changes since a version name
exactly the accounts published or removed since."""

from __future__ import annotations

import threading

from exporter.config.settings import parse_config
from exporter.model import Chat
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
CONFIG = parse_config(
    {"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": f"W{i}"} for i in range(3)]}
)


def state(account: int, unread: int = 1) -> AccountState:
    chat = Chat("1@c.us", "Customer", False, False, unread, int(NOW) - 60, False, False)
    return AccountState(CONFIG.accounts[account]).succeeded(ChatData.build([chat], CONFIG.chats, NOW), 0.1)


def new_store() -> Store:
    store = Store(stale_after=300, clock=lambda: NOW)
    for account in CONFIG.accounts:
        store.expect(account.whatsapp_id)
    return store


def test_changes_since_a_version_are_the_accounts_published_or_removed_since():
    store = new_store()
    assert store.changes(0) == (0, {})
    w0, w1 = state(0), state(1)
    store.publish(w0)
    store.publish(w1)
    version, changed = store.changes(0)
    assert changed == {"W0": w0, "W1": w1}
    assert store.changes(version) == (version, {})
    again = state(0, unread=2)
    store.publish(again)
    store.publish_discovery(DiscoveryState())  # a version, but no account's change
    store.remove("W1")
    latest, changed = store.changes(version)
    assert changed == {"W0": again, "W1": None}  # the last of each, a removal as None
    assert store.changes(0) == (latest, {"W0": again, "W1": None})  # from 0: all there, all gone
    store.publish(state(1))  # a late poll of a removed account is not taken back in
    assert store.changes(latest) == (latest, {})


def test_a_readers_copy_is_its_own_and_never_changes_under_it():
    store = new_store()
    store.publish(state(0))
    snapshots, states = store.snapshots(), store.states()
    store.publish(state(1))
    store.publish(state(0, unread=2))
    assert list(snapshots) == ["W0"] and snapshots["W0"] is states[0]
    assert set(store.snapshots()) == {"W0", "W1"} and store.snapshots()["W0"] is not states[0]


def test_a_reader_that_keeps_its_version_misses_no_change_made_while_it_reads():
    """Publishes from several threads while a reader copies and follows the changes: every copy
    is whole, and the changes it gathered name every account's last state."""
    store, done = new_store(), threading.Event()
    last: dict[str, AccountState | None] = {}
    seen: dict[str, AccountState | None] = {}
    torn: list[str] = []
    version = 0

    def publish(account: int) -> None:
        for unread in range(200):
            last[f"W{account}"] = s = state(account, unread)
            store.publish(s)

    def read() -> None:
        nonlocal version
        while not done.is_set():
            copy = store.snapshots()
            torn.extend(key for key, r in copy.items() if r.account.whatsapp_id != key)
            version, changed = store.changes(version)
            seen.update(changed)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=publish, args=(i,)) for i in range(3)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    seen.update(store.changes(version)[1])
    assert not torn and seen == last
