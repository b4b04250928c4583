"""Waiting-time alerts end to end, in both alerting modes at once, with parity.

One exporter (a process) polls the simulator (in this process). Prometheus (Debian's binary)
scrapes it and evaluates the rules ``python -m exporter rules`` generated from the exporter's
own config; the exporter's agent evaluates the same thresholds itself. Both send to one real
Alertmanager, whose webhook this test records: an alert from Prometheus carries ``job`` and
``instance``, the agent's does not, which tells the modes apart in one place. The waits are
set with known starts; the thresholds are short (seconds) so that the test takes seconds.

``sales`` (wa-2) has business hours that open only the day after tomorrow: its customer
waits as long as the others in wall-clock time, but zero open time, so nothing fires for it.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import (
    Recorder,
    both_modes,
    chat_obj,
    config_for,
    delivered,
    frozen,
    simulating,
    tool,
    wait_until,
)

from exporter.simulator import SimAccount, Simulator

pytestmark = pytest.mark.realtools

WAIT = 60.0

THRESHOLDS = """\
waiting:
  buckets: [5s, 10s, 30s]
thresholds:
  - {name: CustomerWaiting, metric: chat_waiting, above: 30s}
  - {name: OldestWaiting, metric: oldest_waiting, above: 1m, severity: critical}
  - {name: QueueBuildingUp, metric: chats_waiting, longer_than: 10s, above: 1}
"""

SUPPORT = {"account": "support", "whatsapp_id": "wa-1"}
# Every alert either mode must fire, labels written out by hand (without Prometheus's job/instance).
EXPECTED = [
    {
        "alertname": "CustomerWaiting",
        "severity": "warning",
        **SUPPORT,
        "chat_id": "11@c.us",
        "chat_type": "contact",
        "name": "Chat 11@c.us",
    },
    {
        "alertname": "CustomerWaiting",
        "severity": "warning",
        **SUPPORT,
        "chat_id": "12@c.us",
        "chat_type": "contact",
        "name": "Chat 12@c.us",
    },
    {"alertname": "OldestWaiting", "severity": "critical", **SUPPORT},
    {"alertname": "QueueBuildingUp", "severity": "warning", **SUPPORT},
]
QUEUE_ANNOTATIONS = {
    "summary": "2 chats on support unread for longer than 10s",
    "description": "WhatsApp account support (wa-1) has 2 chats unread for longer than 10s (above 1).",
}
# A duration as both modes write it: Prometheus's humanizeDuration and the agent's formatting.
DURATION = r"(\d+h )?\d+m \d+(\.\d+)?s"
SUMMARIES = {
    "CustomerWaiting": rf'Chat "Chat 1[12]@c\.us" on support unread for {DURATION}',
    "OldestWaiting": rf"A chat on support unread for {DURATION}",
}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    chats = [chat_obj(cid, 0) for cid in ("11@c.us", "12@c.us", "13@c.us")]
    accounts = [
        SimAccount("wa-1", "one", chats=chats),
        SimAccount("wa-2", "two", chats=[chat_obj("21@c.us", 0)]),
    ]
    with simulating(accounts) as simulator:
        yield simulator


def closed_until_after_tomorrow() -> str:
    """A schedule open only on the day after tomorrow (UTC): closed throughout the test."""
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(UTC) + timedelta(days=2)).weekday()]
    return f"schedules:\n  later:\n    timezone: UTC\n    hours: {{{day}: ['00:00-24:00']}}\n"


# --- the test ----------------------------------------------------------------------------------


def test_waiting_alerts_fire_and_resolve_in_both_modes_alike(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    config = config_for(sim, THRESHOLDS + closed_until_after_tomorrow())
    config = config.replace(
        "  - whatsapp_id: wa-2\n", "  - whatsapp_id: wa-2\n    name: sales\n    schedule: later\n"
    )
    modes = both_modes(procs, tmp_path, hook, config)
    exporter, rules = modes.exporter, modes.rules
    prometheus_firing, agent_firing = modes.prometheus_firing, modes.agent_firing
    check = subprocess.run([tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 3 rules found" in check.stdout, check.stdout + check.stderr

    time.sleep(3)  # polls, scrapes and evaluations of nothing waiting
    assert prometheus_firing() == set() and agent_firing() == set() and hook.notified() == []

    now = int(time.time())
    sim.set_chat("wa-1", "11@c.us", unreadCount=1, timestamp=now - 120)  # > 30s, the oldest, > 1m
    sim.set_chat("wa-1", "12@c.us", unreadCount=4, timestamp=now - 90)  # > 30s
    sim.set_chat("wa-2", "21@c.us", unreadCount=9, timestamp=now - 600)  # closed hours: 0 s of open time

    expected = {frozen(labels) for labels in EXPECTED}
    # whatsgate_alert_firing drops the chat's name (it is in whatsgate_chat_info).
    expected_on_metrics = {frozenset((k, v) for k, v in labels if k != "name") for labels in expected}
    seen: list[tuple[set, set]] = []

    def settled() -> bool:
        seen.append((prometheus_firing(), agent_firing()))
        return len(seen) >= 10 and all(p == expected and a == expected_on_metrics for p, a in seen[-10:])

    with contextlib.suppress(AssertionError):
        wait_until(settled, timeout=WAIT, what="both modes firing")
    prom_set, agent_set = seen[-1]
    assert prom_set == expected, f"missing: {expected - prom_set}; unexpected: {prom_set - expected}"
    assert agent_set == expected_on_metrics, (
        expected_on_metrics - agent_set,
        agent_set - expected_on_metrics,
    )

    # Alertmanager delivers the same alerts from both modes: labels equal, annotations alike.
    def delivered_both(status: str) -> bool:
        return (
            set(delivered(hook, status, True)) >= expected and set(delivered(hook, status, False)) >= expected
        )

    wait_until(lambda: delivered_both("firing"), timeout=WAIT, what="firing notifications from both modes")
    from_rules, from_agent = delivered(hook, "firing", True), delivered(hook, "firing", False)
    assert set(from_rules) == set(from_agent) == expected
    for labels in expected:
        name = dict(labels)["alertname"]
        for alert in (from_rules[labels], from_agent[labels]):
            if name == "QueueBuildingUp":
                assert alert["annotations"] == QUEUE_ANNOTATIONS
            else:
                assert re.fullmatch(SUMMARIES[name], alert["annotations"]["summary"]), alert["annotations"]
    assert all(alert["labels"]["instance"] == f"127.0.0.1:{exporter.port}" for alert in from_rules.values())

    # Read: every alert resolves, in both modes.
    sim.set_chat("wa-1", "11@c.us", unreadCount=0)
    sim.set_chat("wa-1", "12@c.us", unreadCount=0)
    wait_until(
        lambda: delivered_both("resolved"), timeout=WAIT, what="resolved notifications from both modes"
    )
    assert set(delivered(hook, "resolved", True)) == set(delivered(hook, "resolved", False)) == expected
    wait_until(lambda: prometheus_firing() == agent_firing() == set(), timeout=WAIT, what="nothing firing")
    # sales's customer still waits, in closed hours: under every threshold, nothing fires again.
    time.sleep(2)
    assert prometheus_firing() == agent_firing() == set()
    waiting = exporter.scrape()["whatsgate_chat_waiting_seconds"]
    assert {dict(k)["chat_id"]: v for k, v in waiting.items()} == {"21@c.us": 0.0}
