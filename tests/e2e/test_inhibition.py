"""The shipped inhibit rule (deploy/alertmanager/alertmanager.yml) in a real Alertmanager, fed by a real
Prometheus evaluating the generated rules.

While get-chats fails, the exporter keeps serving the account's last good poll: its account-level
series (the oldest wait, the counts) stay, so an alert pending on them when the account went down
goes on to fire, on data no poll confirms. The rule must hold those back as it does the chat alerts,
and leave the account's health alerts (the cause) alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from helpers import (
    REPO,
    Recorder,
    alerting_prometheus,
    alertmanager,
    config_for,
    run_exporter,
    wait_until,
    webhook_only,
)

from exporter.simulator import Simulator

pytestmark = pytest.mark.realtools

# The chats of helpers.accounts() were last active in 2023: every unread one has waited for years.
# The account alert's `for` leaves time to take the account down while it is pending.
THRESHOLDS = """\
thresholds:
  - name: WhatsGateAccountDown
    metric: account_down
    severity: critical
  - name: WhatsGateOldestWaitTooLong
    metric: oldest_waiting
    above: 1h
    for: 8s
  - name: WhatsGateCustomerWaiting
    metric: chat_waiting
    above: 1h
"""
SHIPPED = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def alerts(am: str, name: str) -> list[dict]:
    answer = requests.get(f"{am}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=5)
    return [a for a in answer.json() if a["labels"].get("whatsapp_id") == "wa-1"]


def prometheus_alerts(prom: str, name: str, state: str) -> list[dict]:
    found = requests.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in found if a["labels"]["alertname"] == name and a["state"] == state]


def test_while_an_account_is_down_its_account_level_alerts_are_inhibited_too(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    config = webhook_only(hook.url)
    config["inhibit_rules"] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["inhibit_rules"]
    am = alertmanager(procs, tmp_path, config)
    exporter = run_exporter(procs, tmp_path, config_for(sim, THRESHOLDS))
    rules = tmp_path / "rules.yml"
    command = [sys.executable, "-m", "exporter", "rules", "--config.file", str(tmp_path / "exporter.yaml")]
    subprocess.run([*command, "--output", str(rules)], check=True, timeout=60, cwd=REPO)
    prom = alerting_prometheus(procs, tmp_path, exporter.port, rules, am)

    wait_until(lambda: prometheus_alerts(prom, "WhatsGateOldestWaitTooLong", "pending"), what="pending")
    sim.set_fault("wa-1", "unauthorized")
    wait_until(lambda: alerts(am, "WhatsGateAccountDown"), what="the account down in Alertmanager")
    # It fires although the account is down: the exporter still serves the last good poll.
    wait_until(lambda: prometheus_alerts(prom, "WhatsGateOldestWaitTooLong", "firing"), what="firing")
    wait_until(lambda: alerts(am, "WhatsGateOldestWaitTooLong"), what="the account alert in Alertmanager")

    def inhibited(name: str) -> bool:
        return all(a["status"]["inhibitedBy"] for a in alerts(am, name)) and bool(alerts(am, name))

    wait_until(lambda: inhibited("WhatsGateOldestWaitTooLong"), timeout=15, what="account alert inhibited")
    wait_until(lambda: inhibited("WhatsGateCustomerWaiting"), timeout=15, what="chat alerts inhibited")
    [down] = alerts(am, "WhatsGateAccountDown")
    assert down["status"]["state"] == "active" and not down["status"]["inhibitedBy"], down["status"]
    hook.wait_for("firing", {"alertname": "WhatsGateAccountDown", "whatsapp_id": "wa-1"})
