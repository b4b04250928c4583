"""Reload applied in process: accounts added, removed, changed; state kept; a bad config changes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import chat_obj, metrics_body, rendering, wait_until

from exporter.alerting.agent import Agent
from exporter.config.reload import Reloader
from exporter.config.schema import ConfigError
from exporter.config.settings import Config, parse_config
from exporter.poller import Supervisor
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

KEY = "SECRET-reload-key-0123456789"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(
        [
            SimAccount("wa-1", "one", chats=[chat_obj("11@c.us", 3, ts=int(time.time()) - 60)]),
            SimAccount("wa-2", "two", chats=[chat_obj("21@c.us", 1)]),
            SimAccount("wa-3", "three", chats=[chat_obj("31@c.us", 0)]),
        ],
        api_key=KEY,
    )
    simulator.start()
    yield simulator
    simulator.stop()


def config(sim: Simulator, accounts: list[dict[str, Any]], **extra: Any) -> Config:
    raw = {
        "whatsgate": {"url": sim.url, "api_key": KEY, "timeout": "2s"},
        "accounts": accounts,
        "poll_interval": "1s",
        **extra,
    }
    return parse_config(raw)


class Running:
    def __init__(self, sim: Simulator, initial: Config) -> None:
        self.store = rendering(Store(stale_after=300))
        self.client = WhatsGateClient(sim.url, KEY, timeout=2)
        self.supervisor = Supervisor(initial, self.client, self.store)
        self.agent = Agent(initial, "http://test/")
        self.store.subscribe(self.agent.wake)
        self.next: Config | Exception = initial

        def load() -> Config:
            if isinstance(self.next, Exception):
                raise self.next
            return self.next

        def apply(new: Config) -> None:
            self.supervisor.apply(new)
            self.agent.apply(new)

        self.reloader = Reloader(load, apply)
        self.supervisor.start()
        self.agent.start(self.store)

    def metrics(self) -> str:
        return metrics_body(self.store).decode()

    def state(self, whatsapp_id: str):
        return next((s for s in self.store.states() if s.account.whatsapp_id == whatsapp_id), None)

    def stop(self) -> None:
        self.supervisor.stop()
        self.agent.stop()
        self.client.close()


@pytest.fixture
def running(sim: Simulator) -> Iterator[Running]:
    r = Running(sim, config(sim, [{"whatsapp_id": "wa-1", "name": "support"}, {"whatsapp_id": "wa-2"}]))
    wait_until(lambda: r.store.ready()[0] and r.state("wa-2") is not None, what="first polls")
    yield r
    r.stop()


def test_accounts_added_removed_and_kept_with_their_state(running, sim):
    sim.set_fault("wa-1", "rate_limited")
    wait_until(lambda: running.state("wa-1").errors["http_status"] >= 1, what="a counted error")
    sim.set_fault("wa-1", None)
    wait_until(lambda: running.state("wa-1").up, what="recovery")
    kept = running.state("wa-1")
    waits_before = kept.data.waits.since["11@c.us"]
    running.next = config(sim, [{"whatsapp_id": "wa-1", "name": "support"}, {"whatsapp_id": "wa-3"}])
    assert running.reloader.reload("test") == (True, "configuration reloaded")
    wait_until(lambda: running.state("wa-3") is not None, what="the added account polled")
    assert 'whatsapp_id="wa-2"' not in running.metrics()  # removed: gone from the next scrape
    after = running.state("wa-1")
    assert after.errors["http_status"] == kept.errors["http_status"]  # counters not reset
    assert after.polls >= kept.polls and after.data.waits.since["11@c.us"] == waits_before


def test_an_invalid_config_changes_nothing_and_says_why(running, sim, caplog):
    before = running.supervisor.config
    running.next = ConfigError("poll_interval", "invalid duration 'soon'")
    with caplog.at_level(logging.ERROR):
        ok, message = running.reloader.reload("SIGHUP")
    assert not ok and message == "config error: poll_interval: invalid duration 'soon'"
    assert running.supervisor.config is before and not running.reloader.successful
    assert [r.getMessage() for r in caplog.records] == [
        "configuration reload failed, keeping the running one"
    ]


def test_changed_thresholds_apply_and_pending_alerts_survive(running, sim):
    base = [{"whatsapp_id": "wa-1", "name": "support"}, {"whatsapp_id": "wa-2"}]
    pending = {"name": "Unread", "metric": "chat_unread_messages", "above": 0, "for": "1h"}
    running.next = config(sim, base, thresholds=[pending])
    assert running.reloader.reload("test")[0]
    wait_until(lambda: running.agent.evaluator._active.get("wa-1"), what="a pending alert")
    since = next(iter(running.agent.evaluator._active["wa-1"].values())).active_since
    running.next = config(sim, base, thresholds=[pending, {"name": "Down", "metric": "account_down"}])
    assert running.reloader.reload("test")[0]
    time.sleep(1.5)
    alert = next(iter(running.agent.evaluator._active["wa-1"].values()))
    assert alert.active_since == since and not alert.firing  # still pending: its clock kept
