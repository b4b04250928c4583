"""A restarted agent goes on with the alerts Alertmanager still holds as firing.

The agent's pending/firing state lived in the process alone: after a restart every ``for``
began again, so an alert with a ``for`` longer than Alertmanager keeps an alert without news
(``endsAt``: four resend intervals) was resolved there and fired again a ``for`` later, a
resolved and a new page for every restart or rollout. Prometheus restores its alerts' ``for``
state after its own restarts; the agent now reads the firing alerts back from Alertmanager.
"""

from __future__ import annotations

import time

import pytest
import responses

from exporter.alerting.agent import Agent
from exporter.alerting.sender import firing_alerts
from exporter.config.settings import parse_config
from exporter.model import Chat
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
AM = "http://alertmanager.test:9093"
CONFIG = parse_config(
    {
        "whatsgate": {"api_key": "k"},
        "accounts": [{"whatsapp_id": "W1", "name": "support"}],
        "thresholds": [{"name": "UnreadHigh", "metric": "unread_messages", "above": 1, "for": "1h"}],
        "alertmanager": {"url": AM},
    }
)
LABELS = {"alertname": "UnreadHigh", "severity": "warning", "account": "support", "whatsapp_id": "W1"}


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".123456789Z"


def held(labels: dict[str, str], starts: float, ends: float) -> dict[str, object]:
    """One alert of Alertmanager's GET /api/v2/alerts, as it answers."""
    return {
        "labels": labels,
        "annotations": {"summary": "..."},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
        "generatorURL": "http://exporter:9877/",
        "fingerprint": "0123456789abcdef",
        "receivers": [{"name": "team"}],
        "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
        "updatedAt": rfc3339(ends - 240),
    }


def store_with_unread() -> Store:
    chat = Chat("1@c.us", "Customer", False, False, 5, int(NOW) - 60, False, False)
    store = Store(stale_after=300, clock=lambda: NOW)
    store.expect("W1")
    store.publish(AccountState(CONFIG.accounts[0]).succeeded(ChatData.build([chat], CONFIG.chats, NOW), 0.1))
    return store


def started(store: Store) -> Agent:
    """An agent started as serve starts it, stopped once it has evaluated the store."""
    agent = Agent(CONFIG, "http://exporter:9877/", clock=lambda: NOW)
    agent.start(store)
    deadline = time.monotonic() + 5
    while not any(a.label("whatsapp_id") == "W1" for a in agent.evaluator._active.get("W1", {}).values()):
        assert time.monotonic() < deadline, "the agent never evaluated the account"
        time.sleep(0.01)
    agent.stop()
    return agent


@responses.activate
def test_an_alert_alertmanager_holds_as_firing_goes_on_firing_after_a_restart():
    """Fired two hours ago, still breached: firing at once, since then, not pending for an hour."""
    responses.get(f"{AM}/api/v2/alerts", json=[held(LABELS, NOW - 7200, NOW + 120)])
    responses.post(f"{AM}/api/v2/alerts", json={})
    firing = [a for a in started(store_with_unread()).evaluator.alerts() if a.firing]
    assert [(dict(a.labels), int(a.fired_at or 0)) for a in firing] == [(LABELS, NOW - 7200)]


@responses.activate
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param([held(LABELS, NOW - 7200, NOW - 1)], id="ended-in-alertmanager-meanwhile"),
        pytest.param([held({**LABELS, "severity": "critical"}, NOW - 7200, NOW + 120)], id="other-labels"),
        pytest.param([held({**LABELS, "job": "whatsgate"}, NOW - 7200, NOW + 120)], id="prometheus-alert"),
        pytest.param([], id="nothing-held"),
    ],
)
def test_what_alertmanager_does_not_hold_as_this_alert_starts_its_for_again(answer: list[object]):
    responses.get(f"{AM}/api/v2/alerts", json=answer)
    responses.post(f"{AM}/api/v2/alerts", json={})
    alerts = started(store_with_unread()).evaluator._active["W1"].values()
    assert [(a.active_since, a.fired_at) for a in alerts] == [(NOW, None)]  # pending, for 1h


@responses.activate
@pytest.mark.parametrize("status, body", [(503, "unavailable"), (200, "<html>proxy</html>")])
def test_an_alertmanager_that_cannot_say_costs_only_the_restore_with_one_line(
    status: int, body: str, caplog: pytest.LogCaptureFixture
):
    responses.get(f"{AM}/api/v2/alerts", status=status, body=body)
    responses.post(f"{AM}/api/v2/alerts", json={})
    alerts = started(store_with_unread()).evaluator._active["W1"].values()
    assert [(a.active_since, a.fired_at) for a in alerts] == [(NOW, None)]
    lines = [r for r in caplog.records if "alertmanager" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "WARNING"


def test_alertmanagers_answer_is_read_field_by_field_and_odd_entries_are_left_out():
    good = held({"alertname": "A"}, NOW - 60, NOW + 60)
    odd: list[object] = [
        "x",
        {"labels": {"alertname": 1}, "startsAt": rfc3339(NOW), "endsAt": rfc3339(NOW)},
        {"labels": {"alertname": "B"}, "startsAt": "yesterday", "endsAt": rfc3339(NOW)},
        {"labels": {"alertname": "C"}},
    ]
    assert firing_alerts([*odd, good]) == [({"alertname": "A"}, NOW - 60 + 0.123456, NOW + 60 + 0.123456)]
    assert firing_alerts({"not": "a list"}) == []
    assert firing_alerts([{**good, "startsAt": "2027-01-15T11:00:00+03:00"}])[0][1] == NOW
