"""The per-account poll against the simulator on loopback: every outcome is a published snapshot.

The rule under test: whatever goes wrong between the request and the publish
ends as a published failed poll with a reason, never as an exception that
leaves ``whatsgate_up`` at 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import answering, chat_obj, group_obj, metrics_body, rendering

from exporter import memory
from exporter.cli import logfmt
from exporter.config import redaction
from exporter.config.settings import parse_config
from exporter.model import Chat
from exporter.poller import AccountPoller, next_delay
from exporter.poller.discovery import Discovery
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot.state import NAMED_WAITS
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

KEY = "SECRET-poller-key-0123456789"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator([SimAccount("W1", "one", chats=[chat_obj("1@c.us", 4)])], api_key=KEY)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def setup(sim: Simulator) -> Iterator[tuple[AccountPoller, Store]]:
    config = parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": KEY, "timeout": "2s"},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}],
            "poll_interval": "1m",
        }
    )
    store = rendering(Store(stale_after=300))
    store.expect("W1")
    client = WhatsGateClient(config.whatsgate.url, KEY, timeout=2)
    yield AccountPoller(config.accounts[0], client, lambda: config, store), store
    client.close()


def metrics(store: Store) -> str:
    return metrics_body(store).decode()


def test_success_then_failure_keeps_data_and_counts(setup, sim, caplog):
    poller, store = setup
    first = poller.poll_once()
    assert first.up and first.data is not None and first.data.summary["contact"].unread_messages == 4
    sim.set_fault("W1", "unauthorized")
    redaction.redact(KEY)
    with caplog.at_level(logging.WARNING):
        second = poller.poll_once()
    assert not second.up and second.errors["unauthorized"] == 1 and second.consecutive_failures == 1
    assert second.data is first.data  # last good data is kept until stale
    lines = [logfmt.Formatter().format(r) for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0] and "reason=unauthorized" in lines[0]
    assert KEY not in lines[0]
    text = metrics(store)
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 0.0' in text
    assert 'whatsgate_chat_unread_messages{account="support",chat_id="1@c.us"' in text


def test_published_snapshots_drop_their_chats_unless_an_alert_reads_them(sim):
    """Rendering is the last reader of every chat, unless a threshold measures single chats."""
    sim.remove_chat("W1", "1@c.us")
    for i in range(30):
        sim.add_chat("W1", chat_obj(f"{i}@c.us", i % 3))  # 20 of them waiting
    store = rendering(Store(stale_after=300))
    store.expect("W1")
    raw = {
        "whatsgate": {"url": sim.url, "api_key": KEY, "timeout": "2s"},
        "accounts": [{"whatsapp_id": "W1", "name": "support"}],
        "chats": {"max_per_account": 0},
    }
    per_chat = {"name": "Unread", "metric": "chat_unread_messages", "above": 1}
    client = WhatsGateClient(sim.url, KEY, timeout=2)
    try:
        for thresholds, kept in (([], 0), ([per_chat], 30)):
            config = parse_config({**raw, "thresholds": thresholds})
            state = AccountPoller(config.accounts[0], client, lambda c=config: c, store).poll_once()
            assert state.up and state.data is not None
            assert len(state.data.selection.chats) == kept
            # Without the chats kept, only the longest waits' chats' names stay (the status page's).
            assert len(state.data.chats) == kept and len(state.data.names()) == (30 if kept else NAMED_WAITS)
            assert metrics(store).count("whatsgate_chat_unread_messages{") == 30  # rendered before
            for threshold in config.thresholds:  # the alert's Python evaluation sees every chat
                assert len(list(threshold.spec.measure(threshold, state, time.time(), 300))) == 30
    finally:
        client.close()


def test_recovery_resets_failures(setup, sim):
    poller, _ = setup
    sim.set_fault("W1", "rate_limited")
    assert poller.poll_once().errors["http_status"] == 1
    sim.set_fault("W1", None)
    state = poller.poll_once()
    assert state.up and state.consecutive_failures == 0 and state.errors["http_status"] == 1


@pytest.mark.parametrize("error", [RuntimeError("bug"), MemoryError()])
def test_an_exception_in_the_pipeline_is_a_failed_poll_not_a_frozen_up(setup, error):
    poller, store = setup
    assert poller.poll_once().up

    def broken(_whatsapp_id: str) -> list[Chat]:
        raise error

    answering(poller.client, broken)
    state = poller.poll_once()
    assert not state.up and state.errors["internal"] == 1
    text = metrics(store)
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 0.0' in text
    assert 'whatsgate_poll_errors_total{account="support",reason="internal",whatsapp_id="W1"} 1.0' in text


@pytest.mark.parametrize(
    "chat",
    [
        Chat("2@c.us", "bad \ud800 name", False, False, 1, 1, False, False),  # lone surrogate
        Chat("2@c.us", "big", False, False, 10**400, 1, False, False),  # beyond float range
    ],
    ids=["surrogate", "overflow"],
)
def test_data_that_cannot_be_rendered_is_invalid_response_and_keeps_the_last_good(setup, chat):
    poller, store = setup
    good = poller.poll_once()
    answering(poller.client, lambda _wid: [chat])
    state = poller.poll_once()
    assert not state.up and state.errors["invalid_response"] == 1 and state.data is good.data
    text = metrics(store)
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 0.0' in text
    assert 'chat_id="1@c.us"' in text and "2@c.us" not in text


def test_a_group_of_empty_participants_is_a_failed_poll_not_a_million_members(setup, sim):
    # Issue 21 (1): 200,000 {} participants (about 600 KB) were accepted, each decoded; now the
    # answer's JSON items are counted before decoding and it is refused with a reason.
    poller, store = setup
    good = poller.poll_once()
    group = group_obj("9@g.us", members=0)
    group["groupMetadata"]["participants"] = [{} for _ in range(200_000)]
    sim.add_chat("W1", group)
    state = poller.poll_once()
    assert not state.up and state.errors["invalid_response"] == 1 and state.data is good.data
    assert "JSON items" in (state.last_error or "")
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 0.0' in metrics(store)


def test_an_account_bad_from_its_first_poll_still_appears_down(setup):
    poller, store = setup
    answering(poller.client, lambda _wid: [Chat("2@c.us", "\ud800", False, False, 1, 1, False, False)])
    assert not poller.poll_once().up
    assert store.ready()[0]
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 0.0' in metrics(store)


def test_poll_duration_covers_rendering_and_delay_is_exported(setup):
    poller, store = setup
    state = poller.poll_once(lag=2.5)
    assert state.last_poll_duration is not None and state.last_poll_duration > 0
    assert 'whatsgate_poll_delay_seconds{account="support",whatsapp_id="W1"} 2.5' in metrics(store)


def test_backoff_doubles_and_is_capped():
    assert [next_delay(60, n) for n in range(6)] == [60, 60, 120, 240, 240, 240]


def test_a_lone_surrogate_in_sessions_get_is_a_discovery_error_not_a_crash(sim):
    """The simulator lists one extra session whose unique_id and status hold \\ud800."""
    client = WhatsGateClient(sim.url, KEY, timeout=2)
    store = rendering(Store(stale_after=300))
    found: list[set[str]] = []
    discovery = Discovery(
        client, dict, lambda: 300.0, store.publish_discovery, lambda accounts: found.append(set(accounts))
    )
    discovery.discover_once()
    assert found == [{"W1"}]
    sim.set_fault(None, "sessions_surrogate")
    discovery.discover_once()  # must not raise, must not drop W1
    assert discovery.state.errors["invalid_response"] == 1 and not discovery.state.up
    assert found == [{"W1"}]
    text = metrics_body(store).decode()
    assert "whatsgate_discovery_up 0.0" in text and 'whatsapp_id="W1"' in text
    client.close()


def test_a_key_echoed_in_chat_names_never_reaches_a_label(setup, sim):
    """The simulator's echo_key fault puts the request's key (plain and JSON-escaped) into two chat names."""
    poller, store = setup
    redaction.redact(KEY)
    sim.set_fault("W1", "echo_key", mode="name")
    state = poller.poll_once()
    text = metrics(store)
    assert state.up and KEY not in text
    assert "<secret>" in text  # the names are there, with the key cut out


def test_poll_duration_includes_the_rendering(setup):
    poller, store = setup
    render = store.prepare

    def slow_render(state):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        return render(state)

    store.prepare = slow_render  # type: ignore[method-assign]
    assert (poller.poll_once().last_poll_duration or 0) >= 0.3


class CountedHeavyWork:
    """memory.HEAVY_WORK, counting the times this thread takes it when not holding it already."""

    def __init__(self) -> None:
        self.lock, self.depth, self.taken = threading.RLock(), 0, 0

    def __enter__(self) -> None:
        self.lock.acquire()
        self.depth += 1
        self.taken += self.depth == 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        self.lock.release()


def test_a_poll_keeps_heavy_work_from_its_decode_to_the_end_of_its_render(setup, monkeypatch):
    """Taken for the decode and again for the render, other accounts' answers were decoded in
    between: several accounts' chats alive at once, the arenas' high-water mark (bench/RESULTS.md)."""
    poller, _ = setup
    heavy = CountedHeavyWork()
    monkeypatch.setattr(memory, "HEAVY_WORK", heavy)
    assert poller.poll_once().up
    assert heavy.taken == 1


class AnnouncedLock:
    """A lock that says when the poller starts waiting for it."""

    def __init__(self) -> None:
        self.lock, self.wanted = threading.Lock(), threading.Event()

    def __enter__(self) -> None:
        self.wanted.set()
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_the_poll_takes_the_accounts_lock_before_heavy_work_as_a_render_under_it_does(setup):
    """The events job (or a publish) under the account's lock may take HEAVY_WORK, as the poller's
    own render does: a poll waiting for that lock while holding HEAVY_WORK would deadlock with it."""
    poller, _ = setup
    poller.lock = announced = AnnouncedLock()
    done: list[bool] = []
    with announced.lock:  # the other job holds the account's lock
        polling = threading.Thread(target=lambda: done.append(poller.poll_once().up))
        polling.start()
        assert announced.wanted.wait(10)  # the answer is in; the poll waits for the account's lock
        got = memory.HEAVY_WORK.acquire(timeout=5)  # a deadlock in the wrong order: never free
        if got:
            memory.HEAVY_WORK.release()
    polling.join(10)
    assert got and done == [True]
