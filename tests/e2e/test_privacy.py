"""End to end: privacy mode keeps every phone number and name out of everything the exporter writes.

The exporter runs as a process with ``privacy: {chat_ids: hash, names: drop}``
against the WhatsGate simulator (in process), alerts in agent mode to a real
Alertmanager, keeps a state file and writes a rule file; a second exporter in
plain mode polls the same simulator. Every chat id, phone number and name of
the simulator's data is then searched for in /metrics, /, the logs (logfmt and
JSON), Alertmanager's alerts, the rule file and the state file; and every
aggregate must match the plain run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import (
    REPO,
    Exporter,
    alertmanager,
    chat_obj,
    group_obj,
    simulating,
    start_exporter,
    stop,
    wait_until,
)

from exporter.simulator import SimAccount, Simulator

pytestmark = pytest.mark.realtools

API_KEY = "SECRET-privacy-e2e-key-5d8e"
HMAC_KEY = "privacy-e2e-hmac-key-7a1f03c9"
NOW = int(time.time())
# Distinctive, phone-like ids and names: a hit in any output is a leak, never a coincidence.
CHATS = {
    "wa-1": [
        chat_obj("79161234567@c.us", 3, ts=NOW - 2400, name="Zinaida Quagmire"),  # waits 40 min
        chat_obj("79267654321@c.us", 1, ts=NOW - 10800, name="Bartholomew Xylophone"),  # waits 3 h
        chat_obj("79035550101@c.us", 0, ts=NOW - 300, name="Ignatius Pumpernickel", pinned=True),
        chat_obj("79037770202@c.us", 6, ts=NOW - 600, name="Muted Marmaduke", muted=True),
        group_obj("120363041234567890@g.us", 2, members=3, admins=1, name="Fjord Otter Society"),
    ],
    "wa-2": [chat_obj("4915112345678@c.us", 4, ts=NOW - 5000, name="Gwendolyn Okapi")],
}
CHATS["wa-1"][4]["timestamp"] = NOW - 1200
PARTICIPANTS = ["79998887766@c.us", "79995554433@c.us", "79991112200@c.us"]
for person, pid in zip(CHATS["wa-1"][4]["groupMetadata"]["participants"], PARTICIPANTS, strict=True):
    person["id"] = pid
CHATS["wa-1"][4]["groupMetadata"]["owner"] = PARTICIPANTS[0]
BROKEN = "79170001122@c.us"  # served with a bad unreadCount at the end: named in the parser's error


def personal_data() -> list[str]:
    """Every chat id, its phone number, every name and participant id in the simulator's data."""
    out = [BROKEN, BROKEN.split("@")[0], "Broken Bramblewood"]
    for chats in CHATS.values():
        for chat in chats:
            out += [chat["id"], chat["id"].split("@")[0], chat["name"]]
    return out + PARTICIPANTS + [p.split("@")[0] for p in PARTICIPANTS]


THRESHOLDS = """\
thresholds:
  - name: PrivacyChatUnread
    metric: chat_unread_messages
    above: 0
  - name: PrivacyAccountUnread
    metric: unread_messages
    above: 1
  - name: PrivacyCustomerWaiting
    metric: chat_waiting
    above: 1m
"""


def config(sim: Simulator, tmp_path: Path, privacy: str, extra: str = "") -> str:
    return (
        f"whatsgate:\n  url: {sim.url}\n  api_key: {API_KEY}\n  timeout: 2s\n"
        "accounts:\n  - whatsapp_id: wa-1\n    name: support\n  - whatsapp_id: wa-2\n    name: sales\n"
        f"poll_interval: 1s\n{privacy}{extra}"
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    accounts = [SimAccount(wid, wid, chats=[dict(c) for c in chats]) for wid, chats in CHATS.items()]
    with simulating(accounts, api_key=API_KEY) as simulator:
        yield simulator


def exporter_in(procs: list, tmp_path: Path, name: str, config_text: str, *args: str) -> Exporter:
    directory = tmp_path / name
    directory.mkdir()
    exporter = start_exporter(directory, config_text, *args)
    procs.append(exporter.proc)
    return exporter


def aggregates(exporter: Exporter) -> dict[tuple[str, frozenset], float]:
    """The account-level samples that privacy mode must leave exact (wait durations: see below)."""
    names = (
        "whatsgate_chats",
        "whatsgate_chats_unread",
        "whatsgate_unread_messages",
        "whatsgate_chats_read_only",
        "whatsgate_chats_muted",
        "whatsgate_chats_pinned",
        "whatsgate_oldest_waiting_since_timestamp_seconds",
        "whatsgate_chats_waiting",
        "whatsgate_wait_duration_seconds_bucket",
        "whatsgate_wait_duration_seconds_count",
    )
    scraped = exporter.scrape()
    return {(n, labels): v for n in names for labels, v in scraped.get(n, {}).items()}


def oldest(exporter: Exporter) -> dict[frozenset, float]:
    return exporter.scrape().get("whatsgate_oldest_waiting_seconds", {})


def polled(exporter: Exporter, after: float) -> bool:
    found = exporter.scrape().get("whatsgate_last_success_timestamp_seconds", {}).values()
    return len(found) == 2 and min(found) > after


def assert_hidden(where: str, text: str) -> None:
    leaked = [secret for secret in personal_data() if secret in text]
    assert not leaked, f"{where} shows {leaked}"


def test_privacy_mode_hides_personal_data_and_keeps_aggregates(sim: Simulator, procs: list, tmp_path: Path):
    (tmp_path / "privacy.key").write_text(HMAC_KEY + "\n")
    am = alertmanager(procs, tmp_path, {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    privacy = f"privacy:\n  chat_ids: hash\n  names: drop\n  key_file: {tmp_path / 'privacy.key'}\n"
    agent = f"{THRESHOLDS}alertmanager:\n  url: {am}\n  resend_interval: 1s\n"
    state_file = tmp_path / "state.json"
    private_cfg = config(sim, tmp_path, privacy, f"{agent}state_file: {state_file}\n")
    private = exporter_in(procs, tmp_path, "private", private_cfg, "--log.level", "debug")
    private_json = exporter_in(
        procs, tmp_path, "json", config(sim, tmp_path, privacy, agent), "--log.format", "json"
    )
    plain = exporter_in(procs, tmp_path, "plain", config(sim, tmp_path, ""))
    private_file = tmp_path / "private" / "config.yaml"
    rules = subprocess.run(
        [sys.executable, "-m", "exporter", "rules", "--config.file", str(private_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert rules.returncode == 0, rules.stderr
    (tmp_path / "rules.yml").write_text(rules.stdout)

    # Aggregates: the same in both modes, once both have polled the same data.
    for exporter in (private, plain):
        wait_until(lambda e=exporter: polled(e, NOW), what="both accounts polled")
    assert aggregates(private) == aggregates(plain)
    assert aggregates(plain)[("whatsgate_unread_messages", frozenset({
        ("account", "support"), ("whatsapp_id", "wa-1"), ("chat_type", "contact")
    }))] == 10  # fmt: skip
    for labels, seconds in oldest(plain).items():
        assert abs(oldest(private)[labels] - seconds) <= 2.5  # within a poll (1s) and a scrape apart
    # A customer gets an answer: the wait ends in both histograms alike.
    sim.set_chat("wa-1", "79161234567@c.us", unreadCount=0)
    read_at = time.time()
    for exporter in (private, plain):
        wait_until(lambda e=exporter: polled(e, read_at + 0.1), what="a poll after the read")
    assert aggregates(private) == aggregates(plain)
    assert sum(v for (n, _), v in aggregates(plain).items() if n.endswith("_count")) == 1

    # Alerts reached Alertmanager, per chat (hashed id, no name) and per account.
    def alerts() -> list[dict]:
        return requests.get(f"{am}/api/v2/alerts", timeout=5).json()

    wait_until(
        lambda: (
            {"PrivacyChatUnread", "PrivacyAccountUnread", "PrivacyCustomerWaiting"}
            <= {a["labels"]["alertname"] for a in alerts()}
        ),
        timeout=30,
        what="alerts in Alertmanager",
    )
    chat_alerts = [a for a in alerts() if a["labels"]["alertname"] == "PrivacyChatUnread"]
    assert chat_alerts and all(len(a["labels"]["chat_id"]) == 16 for a in chat_alerts)
    assert all("name" not in a["labels"] for a in chat_alerts)  # as Prometheus would send them

    # A broken answer: the parser names the chat by its id; the failure must not.
    sim.add_chat("wa-1", {**chat_obj(BROKEN, 1, name="Broken Bramblewood"), "unreadCount": "many"})
    wait_until(lambda: "invalid_response" in private.logs(), what="the failed poll logged")
    wait_until(lambda: "invalid_response" in private_json.logs(), what="the failed poll logged (JSON)")
    status_page = requests.get(f"{private.url}/", timeout=5).text
    metrics = requests.get(f"{private.url}/metrics", timeout=5).text
    alert_payloads = json.dumps(alerts(), ensure_ascii=False)
    stop(private.proc)  # the state file is written one last time on the way out
    stop(private_json.proc)

    assert "wa-1" in status_page and 'chat_id="' in metrics  # the outputs are there, just hidden
    assert_hidden("/metrics", metrics)
    assert_hidden("/", status_page)
    assert_hidden("the logfmt log", private.logs())
    assert_hidden("the JSON log", private_json.logs())
    assert_hidden("Alertmanager's alerts", alert_payloads)
    assert_hidden("the rule file", rules.stdout)
    assert_hidden("the state file", state_file.read_text())
    assert json.loads(state_file.read_text())["accounts"]["wa-1"]["waits"]["since"]  # waits were kept
    assert HMAC_KEY not in private.logs() + private_json.logs() + metrics + status_page
    # and the plain run shows them all, so the searches above could find them
    assert "79161234567@c.us" in requests.get(f"{plain.url}/metrics", timeout=5).text
