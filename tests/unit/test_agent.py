"""The agent's evaluations: a wake evaluates what changed since the last one, a tick everything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from exporter.alerting.agent import Agent
from exporter.config.settings import parse_config
from exporter.model import Chat
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
ACCOUNTS = 50
CONFIG = parse_config(
    {
        "whatsgate": {"api_key": "k"},
        "accounts": [{"whatsapp_id": f"W{i}"} for i in range(ACCOUNTS)],
        "thresholds": [{"name": "Unread", "metric": "chat_unread_messages", "above": 1}],
    }
)


def state(account: int, unread: int = 5) -> AccountState:
    chat = Chat("1@c.us", "Customer", False, False, unread, int(NOW) - 60, False, False)
    return AccountState(CONFIG.accounts[account]).succeeded(ChatData.build([chat], CONFIG.chats, NOW), 0.1)


def store_of_every_account() -> Store:
    store = Store(stale_after=300, clock=lambda: NOW)
    for i in range(ACCOUNTS):
        store.expect(f"W{i}")
        store.publish(state(i))
    return store


class Counting:
    """Stands in for the evaluator: records which accounts each call was about."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def evaluate_account(self, state: AccountState) -> None:
        self.calls.append(("evaluate", state.account.whatsapp_id))

    def evaluate_sessions(self, discovery: DiscoveryState) -> None:
        self.calls.append(("sessions", ""))

    def retain(self, whatsapp_ids: set[str]) -> None:
        self.calls.extend(("retain", w) for w in sorted(whatsapp_ids))

    def forget(self, whatsapp_ids: Iterable[str]) -> None:
        self.calls.extend(("forget", w) for w in whatsapp_ids)

    def take(self) -> Iterator[tuple[str, str]]:
        calls, self.calls = self.calls, []
        return iter(sorted(calls))


def test_a_wake_is_about_the_accounts_changed_since_the_last_evaluation_only():
    """A wake comes at every publish: one that went over every account (as it did) made a first
    cycle quadratic in the accounts."""
    store, agent, counting = store_of_every_account(), Agent(CONFIG, "http://x/"), Counting()
    agent.evaluator = counting  # type: ignore[assignment]
    agent.evaluate(store)  # everything, as the first look does
    every = [f"W{i}" for i in range(ACCOUNTS)]
    assert list(counting.take()) == sorted([("evaluate", w) for w in every] + [("retain", w) for w in every])
    store.publish(state(7, unread=0))
    agent.evaluate(store, everything=False)
    assert list(counting.take()) == [("evaluate", "W7")]
    agent.evaluate(store, everything=False)
    assert list(counting.take()) == []  # nothing published since
    store.remove("W3")
    store.publish(state(8))
    store.publish_discovery(DiscoveryState())
    agent.evaluate(store, everything=False)
    assert list(counting.take()) == [("evaluate", "W8"), ("forget", "W3"), ("sessions", "")]
    agent.evaluate(store)  # the tick: time alone can breach a threshold
    kept = [w for w in every if w != "W3"]
    assert list(counting.take()) == sorted(
        [("evaluate", w) for w in kept] + [("retain", w) for w in kept] + [("sessions", "")]
    )


def test_an_account_removed_has_its_alerts_resolved_at_the_next_wake():
    store, agent = store_of_every_account(), Agent(CONFIG, "http://x/", clock=lambda: NOW)
    agent.evaluate(store)
    assert {a.label("whatsapp_id") for a in agent.evaluator.alerts() if a.firing} == {
        f"W{i}" for i in range(ACCOUNTS)
    }
    store.remove("W3")
    store.publish(state(4, unread=0))
    agent.evaluate(store, everything=False)
    firing = {a.label("whatsapp_id") for a in agent.evaluator.alerts() if a.firing}
    assert firing == {f"W{i}" for i in range(ACCOUNTS)} - {"W3", "W4"}
