"""The agent's log: alert changes are told once, and a burst of them is one line with counts."""

from __future__ import annotations

import logging

import pytest

from exporter.alerting.agent import Agent
from exporter.config.settings import parse_config
from exporter.model import Chat
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
CONFIG = parse_config(
    {
        "whatsgate": {"api_key": "k"},
        "accounts": [{"whatsapp_id": "W1", "name": "support"}, {"whatsapp_id": "W2", "name": "sales"}],
        "thresholds": [
            {"name": "Unread", "metric": "chat_unread_messages", "above": 1},
            {"name": "Busy", "metric": "unread_messages", "above": 10},
        ],
    }
)


def chat(n: int, unread: int) -> Chat:
    return Chat(f"{n}@c.us", f"Customer {n}", False, False, unread, int(NOW) - 60, False, False)


def state(account: int, unread: int, chats: int = 12) -> AccountState:
    data = ChatData.build([chat(i, unread) for i in range(chats)], CONFIG.chats, NOW)
    return AccountState(CONFIG.accounts[account]).succeeded(data, 0.1)


def published(*states: AccountState) -> Store:
    store = Store(stale_after=300)
    for s in states:
        store.expect(s.account.whatsapp_id)
        store.publish(s)
    return store


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "exporter.alerting.evaluator" and r.levelno == level]


def test_a_burst_of_changes_is_one_line_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(CONFIG, "http://exporter:9877/", clock=lambda: NOW)
    store = published(state(0, 5), state(1, 5))
    with caplog.at_level(logging.DEBUG, logger="exporter.alerting.evaluator"):
        agent.evaluate(store)
    (line,) = lines(caplog)
    assert line.getMessage() == "alerts changed"
    assert line.fields == {  # type: ignore[attr-defined]
        "firing": 26,
        "resolved": 0,
        "accounts": 2,
        "alerts": "Busy firing 2, Unread firing 24",
    }
    assert len(lines(caplog, logging.DEBUG)) == 26  # each alert's labels, at debug
    caplog.clear()
    store.publish(state(0, 0))  # support's chats are read
    with caplog.at_level(logging.INFO, logger="exporter.alerting.evaluator"):
        agent.evaluate(store)
    (line,) = lines(caplog)
    assert line.fields == {  # type: ignore[attr-defined]
        "firing": 0,
        "resolved": 13,
        "account": "support",  # the one account that changed, not a count that looks like a total
        "alerts": "Busy resolved 1, Unread resolved 12",
    }


def test_one_change_is_one_line_with_its_labels(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(CONFIG, "http://exporter:9877/", clock=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="exporter.alerting.evaluator"):
        agent.evaluate(published(state(0, 5, chats=1)))
    (line,) = lines(caplog)
    assert line.getMessage() == "alert firing"
    assert line.fields == {  # type: ignore[attr-defined]
        "alertname": "Unread",
        "severity": "warning",
        "account": "support",
        "whatsapp_id": "W1",
        "chat_id": "0@c.us",
        "chat_type": "contact",
        "name": "Customer 0",
    }
