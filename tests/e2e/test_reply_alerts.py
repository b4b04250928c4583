"""Reply-time alerts end to end, in both alerting modes at once, with parity.

As test_waiting_alerts.py: one exporter process polls the simulator (here, in this process);
a real Prometheus scrapes it and evaluates the rules ``python -m exporter rules`` generated from
the exporter's own config, while the exporter's agent evaluates the same thresholds; both send to
one real Alertmanager whose webhook this test records (Prometheus's alerts carry ``job`` and
``instance``, the agent's do not). Each of the four reply kinds fires and resolves, with the same
label sets in both modes. Customers' messages reach the event log with their true (past)
timestamps, as a phone that was offline delivers them.

Every message body and media key carries a marker, which must appear nowhere the exporter
writes: /metrics, the status page, its debug log, its state file, the rule file and what
Alertmanager receives from either mode.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import (
    Recorder,
    both_modes,
    chat_obj,
    config_for,
    delivered,
    simulating,
    wait_until,
)

from exporter.simulator import SimAccount, Simulator

pytestmark = pytest.mark.realtools

WAIT = 90.0
THRESHOLDS = """\
replies:
  buckets: [5s, 10s, 30s]
thresholds:
  - {name: CustomerUnanswered, metric: chat_unanswered, above: 20s}
  - {name: OldestUnanswered, metric: oldest_unanswered, above: 40s, severity: critical}
  - {name: UnansweredPilingUp, metric: chats_unanswered, longer_than: 10s, above: 1}
  - {name: SlowAnswers, metric: responses_within, target: 5s, window: 40s, below: 0.5}
"""
SUPPORT = {"account": "support", "whatsapp_id": "wa-1"}
MARKER = "BODY-MARKER-q7Zx"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    chats = [chat_obj(cid, 0, ts=int(time.time()) - 86400) for cid in ("11@c.us", "12@c.us", "13@c.us")]
    accounts = [
        SimAccount("wa-1", "one", chats=chats),
        SimAccount("wa-2", "two", chats=[chat_obj("21@c.us", 0)]),
    ]
    with simulating(accounts, body_marker=MARKER) as simulator:
        yield simulator


def test_reply_alerts_fire_and_resolve_in_both_modes_alike(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    config = config_for(sim, THRESHOLDS) + f"state_file: {state_file}\n"
    modes = both_modes(procs, tmp_path, hook, config)
    exporter, rules, prom = modes.exporter, modes.rules, modes.prometheus
    prometheus_firing, agent_firing = modes.prometheus_firing, modes.agent_firing

    # The first events poll sets the cursor and learns the chats (empty histories): nothing waits.
    def scraped_by_prometheus() -> bool:
        # Prometheus must have the histogram at 0 before the first answer: an increase needs both.
        query = "count_over_time(whatsgate_response_duration_seconds_count[1m])"
        found = requests.get(f"{prom}/api/v1/query", params={"query": query}, timeout=5).json()["data"][
            "result"
        ]
        return len(found) > 0 and min(float(r["value"][1]) for r in found) >= 3

    wait_until(scraped_by_prometheus, timeout=WAIT, what="Prometheus scraping the events poll's series")
    assert prometheus_firing() == set() and agent_firing() == set() and hook.notified() == []

    now = time.time()
    sim.receive("wa-1", "11@c.us", now - 60, logged_at=now)  # waiting 60 s: > 20 s, the oldest, > 40 s
    sim.receive("wa-1", "12@c.us", now - 30, logged_at=now)  # waiting 30 s: > 20 s
    sim.receive("wa-1", "13@c.us", now - 50, logged_at=now)
    sim.reply("wa-1", "13@c.us", now - 40, logged_at=now)  # answered in 10 s: slower than 5 s
    sim.receive("wa-2", "21@c.us", now - 5, logged_at=now, media=True)
    sim.reply("wa-2", "21@c.us", now - 2, logged_at=now)  # answered in 3 s: within 5 s, nothing fires

    def chat(cid: str) -> frozenset:
        return frozenset(
            {
                "alertname": "CustomerUnanswered",
                "severity": "warning",
                "chat_id": cid,
                "chat_type": "contact",
            }.items()
        )

    # The label sets as the agent writes them on whatsgate_alert_firing (no chat names there).
    wanted = {
        frozenset({"alertname": "OldestUnanswered", "severity": "critical", **SUPPORT}.items()),
        frozenset({"alertname": "UnansweredPilingUp", "severity": "warning", **SUPPORT}.items()),
        frozenset({"alertname": "SlowAnswers", "severity": "warning", **SUPPORT}.items()),
        chat("11@c.us") | frozenset(SUPPORT.items()),
        chat("12@c.us") | frozenset(SUPPORT.items()),
    }
    seen: list[tuple[set, set]] = []

    def settled() -> bool:
        seen.append((prometheus_firing(), agent_firing()))
        prom_set, agent_set = seen[-1]
        # Prometheus's per-chat alerts also carry the chat's name (from whatsgate_chat_info).
        stripped = {frozenset((k, v) for k, v in labels if k != "name") for labels in prom_set}
        return stripped == wanted and agent_set == wanted

    with contextlib.suppress(AssertionError):
        wait_until(settled, timeout=WAIT, what="both modes firing")
    prom_set, agent_set = seen[-1]
    assert {frozenset((k, v) for k, v in labels if k != "name") for labels in prom_set} == wanted, prom_set
    assert agent_set == wanted, (wanted - agent_set, agent_set - wanted)

    # Alertmanager gets identical label sets from both modes, and the wording of an answer wait.
    def delivered_both(status: str, names: set[str]) -> bool:
        def alertnames(from_prometheus: bool) -> set[str]:
            return {dict(labels)["alertname"] for labels in delivered(hook, status, from_prometheus)}

        return alertnames(True) >= names and alertnames(False) >= names

    names = {"CustomerUnanswered", "OldestUnanswered", "UnansweredPilingUp", "SlowAnswers"}
    wait_until(
        lambda: delivered_both("firing", names), timeout=WAIT, what="firing notifications from both modes"
    )
    from_rules, from_agent = delivered(hook, "firing", True), delivered(hook, "firing", False)
    assert set(from_rules) == set(from_agent)
    assert len(from_rules) == 5
    for labels, alert in from_agent.items():
        summary = alert["annotations"]["summary"]
        if dict(labels)["alertname"] in ("CustomerUnanswered", "OldestUnanswered"):
            assert "waiting for an answer for" in summary and "unread" not in summary, summary
        assert from_rules[labels]["annotations"].keys() == alert["annotations"].keys()

    # Answered: every alert resolves in both modes (the SLA one once its window holds no response).
    sim.reply("wa-1", "11@c.us")
    sim.reply("wa-1", "12@c.us")
    wait_until(
        lambda: delivered_both("resolved", names), timeout=WAIT, what="resolved notifications from both modes"
    )
    assert set(delivered(hook, "resolved", True)) == set(delivered(hook, "resolved", False))
    wait_until(lambda: prometheus_firing() == agent_firing() == set(), timeout=WAIT, what="nothing firing")
    scraped = exporter.scrape()
    answered = scraped["whatsgate_response_duration_seconds_count"]
    assert sum(v for k, v in answered.items() if dict(k)["whatsapp_id"] == "wa-1") == 3
    assert (
        "whatsgate_chat_unanswered_seconds" not in scraped or not scraped["whatsgate_chat_unanswered_seconds"]
    )

    # The marker was in every body and media key; it is nowhere the exporter writes.
    base = exporter.url
    assert all(MARKER in m["body"] for m in sim.history("wa-1", "11@c.us"))  # marked, every one
    wait_until(state_file.exists, timeout=WAIT, what="the state file")
    written = {
        "/metrics": requests.get(f"{base}/metrics", timeout=10).text,
        "the status page": requests.get(f"{base}/", timeout=10).text,
        "/probe": requests.get(f"{base}/probe", params={"target": "wa-1"}, timeout=10).text,
        "the log": exporter.logs(),
        "the state file": state_file.read_text(encoding="utf-8"),
        "the rule file": rules.read_text(encoding="utf-8"),
        "Alertmanager's notifications": json.dumps(hook.bodies),
    }
    assert "wa-1" in written["the state file"] and "11@c.us" in written["the state file"]
    assert [where for where, text in written.items() if MARKER in text] == []
