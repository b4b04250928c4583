"""End to end: thresholds alerted through the real Prometheus and Alertmanager, and by the agent.

Every server here is real and on loopback: the WhatsGate simulator (in process),
the exporter (a subprocess), Prometheus and Alertmanager (the Debian binaries),
and a tiny webhook receiver that records what Alertmanager delivers. Each test
starts what it needs on free ports with temporary data directories, and stops
it again. Expected labels and annotations are written out here by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import requests
import yaml
from helpers import (
    REPO,
    WEIRD,
    Exporter,
    Recorder,
    accounts,
    alerting_prometheus,
    alertmanager,
    config_for,
    firing_in_prometheus,
    firing_on_metrics,
    free_port,
    promtool_check_metrics,
    run_exporter,
    simulating,
    stop,
    tool,
    wait_until,
    webhook_only,
)

from exporter.simulator import SimAccount, Simulator

pytestmark = pytest.mark.realtools

WAIT = 60.0  # the bound of every wait for a notification or an alert state

THRESHOLDS = """\
thresholds:
  - name: WhatsGateChatUnreadHigh
    metric: chat_unread_messages
    above: 10
  - name: WhatsGateAccountUnreadHigh
    metric: unread_messages
    above: 30
    for: 2s
  - name: WhatsGateAccountDown
    metric: account_down
    severity: critical
"""

CHAT_ALERT = {
    "alertname": "WhatsGateChatUnreadHigh",
    "severity": "warning",
    "account": "support",
    "whatsapp_id": "wa-1",
    "chat_id": "11@c.us",
    "chat_type": "contact",
    "name": WEIRD,
}
CHAT_ANNOTATIONS = {
    "summary": f'40 unread messages in contact "{WEIRD}" on support',
    "description": f'Chat "{WEIRD}" (11@c.us) on WhatsApp account support (wa-1) has 40 unread messages'
    " (above 10).",
}
ACCOUNT_ALERT = {
    "alertname": "WhatsGateAccountUnreadHigh",
    "severity": "warning",
    "account": "support",
    "whatsapp_id": "wa-1",
}
ACCOUNT_ANNOTATIONS = {  # 40 + 0 + 5 + 2 unread on wa-1 once chat 11 has 40
    "summary": "47 unread messages on WhatsApp account support",
    "description": "WhatsApp account support (wa-1) has 47 unread messages (above 30).",
}
DOWN_ALERT = {
    "alertname": "WhatsGateAccountDown",
    "severity": "critical",
    "account": "wa-2",
    "whatsapp_id": "wa-2",
}
DOWN_ANNOTATIONS = {
    "summary": "WhatsGate polls of wa-2 are failing",
    "description": "get-chats for WhatsApp account wa-2 has failed for at least 0s;"
    " whatsgate_poll_errors_total tells the reason.",
}


# --- processes ---------------------------------------------------------------------------------


def run_alertmanager(procs: list[subprocess.Popen], tmp_path: Path, hook_url: str, port: int = 0) -> str:
    url = alertmanager(procs, tmp_path, webhook_only(hook_url), port)
    check = subprocess.run(
        [tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    return url


def generate_rules(config: Path, out: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "rules", "--config.file", str(config)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    out.write_text(result.stdout, encoding="utf-8")
    return result.stdout


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def account_series_firing(exporter: Exporter) -> bool:
    return frozenset(ACCOUNT_ALERT.items()) in firing_on_metrics(exporter)


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- 1 and 2: one scenario, alerted by Prometheus's rules or by the agent ------------------------


def drive_scenario(
    sim: Simulator, hook: Recorder, extra: dict[str, str], on_firing: Callable[[], None]
) -> None:
    """Breach, check the notifications, clear, check the resolved ones; then an account goes down.

    ``extra`` are the labels only one mode adds (Prometheus's job and instance).
    """
    time.sleep(2.5)  # a few polls, scrapes and evaluations of the untouched data
    assert hook.notified() == [], "nothing is breached yet"

    sim.set_chat("wa-1", "11@c.us", unreadCount=40)
    chat = hook.wait_for("firing", CHAT_ALERT)
    assert chat["labels"] == {**CHAT_ALERT, **extra}
    assert chat["annotations"] == CHAT_ANNOTATIONS
    account = hook.wait_for("firing", ACCOUNT_ALERT)
    assert account["labels"] == {**ACCOUNT_ALERT, **extra}
    assert account["annotations"] == ACCOUNT_ANNOTATIONS
    # `for: 2s`: both became active at the same evaluation, the account alert fires 2s later.
    assert ts(account["startsAt"]) - ts(chat["startsAt"]) >= 1.9, (chat["startsAt"], account["startsAt"])
    on_firing()

    sim.set_chat("wa-1", "11@c.us", unreadCount=0)
    resolved = hook.wait_for("resolved", CHAT_ALERT)
    assert resolved["labels"] == {**CHAT_ALERT, **extra}
    assert resolved["annotations"] == CHAT_ANNOTATIONS  # as last seen while firing
    assert ts(resolved["endsAt"]) >= ts(chat["startsAt"])
    hook.wait_for("resolved", ACCOUNT_ALERT)

    sim.set_fault("wa-2", "unauthorized")
    down = hook.wait_for("firing", DOWN_ALERT)
    assert down["labels"] == {**DOWN_ALERT, **extra}
    assert down["annotations"] == DOWN_ANNOTATIONS
    sim.set_fault("wa-2", None)
    hook.wait_for("resolved", DOWN_ALERT)

    names = {a["labels"]["alertname"] for a in hook.notified()}
    assert names == {CHAT_ALERT["alertname"], ACCOUNT_ALERT["alertname"], DOWN_ALERT["alertname"]}
    keys = {
        (a["labels"]["alertname"], a["labels"]["account"], a["labels"].get("chat_id"))
        for a in hook.notified()
    }
    assert len(keys) == 3, f"alerts on other accounts or chats than the ones breached: {keys}"


def test_rules_mode_prometheus_fires_and_alertmanager_delivers(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    exporter = run_exporter(procs, tmp_path, config_for(sim, THRESHOLDS))
    rules = tmp_path / "rules.yml"
    generate_rules(exporter.log.parent / "exporter.yaml", rules)
    check = promtool("check", "rules", str(rules))
    assert check.returncode == 0 and "SUCCESS: 3 rules found" in check.stdout, check.stdout + check.stderr
    am = run_alertmanager(procs, tmp_path, hook.url)
    prom = alerting_prometheus(procs, tmp_path, exporter.port, rules, am)

    def prometheus_agrees() -> None:
        firing = {a["labels"]["alertname"] for a in firing_in_prometheus(prom)}
        assert firing == {CHAT_ALERT["alertname"], ACCOUNT_ALERT["alertname"]}

    extra = {"job": "whatsgate", "instance": f"127.0.0.1:{exporter.port}"}
    drive_scenario(sim, hook, extra, prometheus_agrees)
    assert all(a["generatorURL"].startswith("http") for a in hook.notified())


def test_agent_mode_alertmanager_delivers_without_prometheus(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    am = run_alertmanager(procs, tmp_path, hook.url)
    config = config_for(sim, THRESHOLDS + f"alertmanager:\n  url: {am}\n  resend_interval: 1s\n")
    exporter = run_exporter(procs, tmp_path, config)
    chat_series = frozenset({k: v for k, v in CHAT_ALERT.items() if k != "name"}.items())
    account_series = frozenset(ACCOUNT_ALERT.items())
    assert firing_on_metrics(exporter) == set()

    def metrics_while_firing() -> None:
        assert firing_on_metrics(exporter) == {chat_series, account_series}
        body = requests.get(f"{exporter.url}/metrics", timeout=5).text
        assert "whatsgate_alert_firing{" in body
        lint = promtool_check_metrics(body)
        assert lint.returncode == 0 and lint.stderr.strip() == "", lint.stderr
        sent = exporter.scrape()["whatsgate_alertmanager_notifications_sent_total"]
        assert next(iter(sent.values())) >= 2

    drive_scenario(sim, hook, {}, metrics_while_firing)
    assert firing_on_metrics(exporter) == set()
    assert exporter.scrape()["whatsgate_alertmanager_notifications_errors_total"] == {frozenset(): 0.0}
    # The agent's own alert log: each firing and each resolution told once (alone, or counted in
    # the line of a burst), not once per evaluation.
    log = exporter.logs()
    assert logged_changes(log, "firing") == 3, log
    assert logged_changes(log, "resolved") == 3, log


def logged_changes(log: str, what: str) -> int:
    """Alert changes in the agent's log: a line each, or counted in one line for a burst."""
    bursts = re.findall(r'msg="alerts changed" firing=(\d+) resolved=(\d+)', log)
    return log.count(f'msg="alert {what}"') + sum(int(b[0 if what == "firing" else 1]) for b in bursts)


def test_agent_catches_up_when_alertmanager_comes_back(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    am_port = free_port()  # nothing listens here until Alertmanager starts, later
    am_config = f"alertmanager:\n  url: http://127.0.0.1:{am_port}\n  resend_interval: 1s\n"
    config = config_for(sim, THRESHOLDS + am_config)
    exporter = run_exporter(procs, tmp_path, config)
    chat_series = frozenset({k: v for k, v in CHAT_ALERT.items() if k != "name"}.items())

    sim.set_chat("wa-1", "11@c.us", unreadCount=40)
    wait_until(lambda: chat_series in firing_on_metrics(exporter), timeout=WAIT, what="agent fires")
    wait_until(lambda: account_series_firing(exporter), timeout=WAIT, what="agent fires after `for`")
    time.sleep(2)  # more retries, each failing the same way
    m = exporter.scrape()  # the exporter goes on serving, and polling
    assert m["whatsgate_up"] and all(v == 1 for v in m["whatsgate_up"].values())
    assert m["whatsgate_alertmanager_notifications_errors_total"][frozenset()] >= 3
    assert m["whatsgate_alertmanager_notifications_sent_total"][frozenset()] == 0
    failures = [line for line in exporter.logs().splitlines() if "alertmanager notification failed" in line]
    assert len(failures) == 1, failures  # one line for the outage, not one per retry
    assert f"127.0.0.1:{am_port}" in failures[0] and "level=warn" in failures[0]

    am_started = time.time()
    am = run_alertmanager(procs, tmp_path, hook.url, port=am_port)
    chat = hook.wait_for("firing", CHAT_ALERT)
    assert chat["annotations"] == CHAT_ANNOTATIONS
    assert ts(chat["startsAt"]) < am_started  # the alert as it began, not as first delivered
    account = hook.wait_for("firing", ACCOUNT_ALERT)
    assert account["annotations"] == ACCOUNT_ANNOTATIONS
    active = requests.get(f"{am}/api/v2/alerts", timeout=5).json()
    assert {a["labels"]["alertname"] for a in active} == {CHAT_ALERT["alertname"], ACCOUNT_ALERT["alertname"]}
    wait_until(lambda: "alertmanager reachable again" in exporter.logs(), what="recovery logged")
    log = exporter.logs()
    assert log.count("alertmanager notification failed") == 1 and log.count("reachable again") == 1


def test_a_restarted_agent_keeps_firing_what_alertmanager_holds(
    sim: Simulator, hook: Recorder, procs: list, tmp_path: Path
):
    """The agent's pending/firing state lived in the process alone: after a restart, an alert
    whose ``for`` is longer than Alertmanager keeps an alert without news (``endsAt``, four
    resend intervals) was resolved there, and fired again a ``for`` later: a resolved and a new
    page for every restart or rollout. Prometheus keeps its own ``for`` state across restarts."""
    am = run_alertmanager(procs, tmp_path, hook.url)
    threshold = "thresholds:\n  - {name: HeldAcrossRestarts, metric: unread_messages, above: 30, for: 15s}\n"
    # endsAt is four resend intervals after the last news: 12 s, so that a restart slowed by a busy
    # machine (the second exporter's imports and first poll) still comes before it.
    config = config_for(sim, threshold + f"alertmanager:\n  url: {am}\n  resend_interval: 3s\n")
    labels = {
        "alertname": "HeldAcrossRestarts",
        "severity": "warning",
        "account": "support",
        "whatsapp_id": "wa-1",
    }
    sim.set_chat("wa-1", "11@c.us", unreadCount=40)
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        run.mkdir()
    first = run_exporter(procs, runs[0], config)

    def held() -> list[str]:
        active = requests.get(f"{am}/api/v2/alerts", timeout=5).json()
        return [a["startsAt"] for a in active if a["labels"] == labels]

    wait_until(lambda: held() != [], timeout=WAIT, what="the alert firing in Alertmanager")
    (starts,) = held()
    stop(first.proc)
    run_exporter(procs, runs[1], config)
    until = time.monotonic() + 20  # past endsAt (12 s after the last news) and past a new for:
    while time.monotonic() < until:
        assert held() == [starts], "the alert ended in Alertmanager, or began again, after the restart"
        time.sleep(0.5)
    assert hook.find("resolved", labels) == []


def test_agent_backs_off_while_alertmanager_is_down(sim: Simulator, procs: list, tmp_path: Path):
    """While Alertmanager is unreachable the sender retries after 1 s, 2 s, 4 s, ... (at most one
    resend interval apart), as alerting.Sender.run says: not at every poll of every account."""
    am_config = f"alertmanager:\n  url: http://127.0.0.1:{free_port()}\n  resend_interval: 30s\n"
    exporter = run_exporter(procs, tmp_path, config_for(sim, THRESHOLDS + am_config))
    sim.set_chat("wa-1", "11@c.us", unreadCount=15)  # one alert only: one failed POST counts one error

    def errors() -> float:
        return exporter.scrape()["whatsgate_alertmanager_notifications_errors_total"][frozenset()]

    wait_until(lambda: errors() >= 1, timeout=WAIT, what="first failed send")
    first = errors()
    time.sleep(6)
    attempts = errors() - first
    assert len(firing_on_metrics(exporter)) == 1
    # Retries due 1 s, 3 s and 7 s after the first: 2 in 6 s; allow one more for timing.
    assert attempts <= 3, f"{attempts:g} POSTs to an unreachable Alertmanager in 6 s"


# --- 4: promtool on generated and shipped files ---------------------------------------------------


def test_shipped_rules_are_generated_from_the_example_config_and_pass_their_tests(tmp_path: Path):
    # A clean environment: the example's ${WHATSGATE_API_KEY} is unset, and `rules` must not need it.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    generated = generate_rules(REPO / "config.example.yaml", tmp_path / "alerts.yml", env=env)
    assert generated == (REPO / "prometheus" / "alerts.yml").read_text(encoding="utf-8"), (
        "prometheus/alerts.yml drifted from config.example.yaml: regenerate it with"
        " `whatsgate-exporter rules --config.file config.example.yaml`"
    )
    check = promtool("check", "rules", str(tmp_path / "alerts.yml"))
    assert check.returncode == 0 and "SUCCESS: 16 rules found" in check.stdout, check.stdout + check.stderr
    test = promtool("test", "rules", str(REPO / "prometheus" / "alerts_test.yml"))
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


AWKWARD = '«{chat_name}» ≠ "{account}" {{ not an action }} `tick` $value 100% {value}/{threshold} 😀 שלום'

ODD = 'a.b*c "d" \u0435'  # an account name with regex metacharacters, quotes and a Cyrillic letter
EVERY_KIND = {
    "whatsgate": {"url": "http://127.0.0.1:1/api/v1", "api_key": "unused"},
    "accounts": [
        {"whatsapp_id": "1", "name": "support"},
        {"whatsapp_id": "2", "name": "sales"},
        {"whatsapp_id": "3", "name": ODD},
    ],
    "thresholds": [
        {
            "name": "ChatUnread",
            "metric": "chat_unread_messages",
            "above": 5,
            "for": "1m",
            "chat_types": ["contact"],
            "chats": ["^Team ", "@g\\.us$", "VIP|Boss", "Ωmega"],
            "overrides": {"sales": {"above": 1, "severity": "critical"}, ODD: {"for": "10s"}},
            "summary": AWKWARD,
            "description": "{{ {chat_id} }} {chat_type} {whatsapp_id} {condition} {for} {severity}"
            " {alertname}",
        },
        {
            "name": "UnreadMessages",
            "metric": "unread_messages",
            "below": 1,
            "chat_types": ["group"],
            "accounts": ["support", ODD],
        },
        {"name": "Chats", "metric": "chats", "above": 100, "overrides": {"support": {"below": 2}}},
        {"name": "ChatsUnread", "metric": "chats_unread", "above": 3, "chat_types": ["contact", "group"]},
        {"name": "ChatsReadOnly", "metric": "chats_read_only", "above": 0, "severity": "info"},
        {"name": "ChatsMuted", "metric": "chats_muted", "above": 0.5},
        {"name": "ChatsPinned", "metric": "chats_pinned", "below": 1, "summary": "None pinned on {account}"},
        {
            "name": "GroupParticipants",
            "metric": "group_participants",
            "above": 900,
            "chats": ["^Team"],
            "overrides": {"sales": {"above": 500, "for": "5m"}},
        },
        {
            "name": "GroupAdmins",
            "metric": "group_admins",
            "below": 1,
            "summary": "No admin in «{chat_name}» ({chat_id}): {value}",
        },
        {
            "name": "AccountDown",
            "metric": "account_down",
            "for": "5m",
            "severity": "critical",
            "overrides": {"sales": {"for": "1m"}},
        },
        {
            "name": "Stale",
            "metric": "stale",
            "above": "1h30m",
            "overrides": {ODD: {"above": "10m", "severity": "critical"}},
        },
        {
            "name": "SessionNotReady",
            "metric": "session_not_ready",
            "accounts": ["sales"],
            "description": "{status} ≠ READY {{",
        },
        {"name": "ChatUnanswered", "metric": "chat_unanswered", "above": "1h", "chats": ["VIP"]},
        {"name": "OldestUnanswered", "metric": "oldest_unanswered", "above": "4h", "chat_types": ["group"]},
        {"name": "ChatsUnanswered", "metric": "chats_unanswered", "longer_than": "30m", "above": 3},
        {
            "name": "ResponsesWithin",
            "metric": "responses_within",
            "target": "15m",
            "window": "1d",
            "response": "next",
            "below": 0.9,
            "accounts": [ODD],
        },
    ],
}


def test_promtool_accepts_rules_for_every_metric_kind(tmp_path: Path):
    config = tmp_path / "every-kind.yaml"
    config.write_text(yaml.safe_dump(EVERY_KIND, allow_unicode=True), encoding="utf-8")
    rules = tmp_path / "every-kind.rules.yml"
    text = generate_rules(config, rules)
    # 16 thresholds, plus one rule per applicable override (2 + 1 + 1 + 1 + 1). Validity only here:
    # the duplicate-rule lint is the next test's subject.
    check = promtool("check", "rules", "--lint=none", str(rules))
    # One rule per distinct (for, severity) of each threshold: 16 thresholds, plus 5 overrides that change
    # `for` or severity (the Chats override only changes the value, so it joins the default rule).
    assert check.returncode == 0 and "SUCCESS: 21 rules found" in check.stdout, check.stdout + check.stderr
    groups = yaml.safe_load(text)["groups"]
    assert [g["name"] for g in groups] == ["whatsgate"]
    assert len({r["alert"] for r in groups[0]["rules"]}) == 16
    # The override of the account with regex metacharacters in its name selects it, and only it.
    lookalike = ODD.replace(".", "X")
    inputs = [
        (series("whatsgate_last_success_timestamp_seconds", {"job": "j", "account": account}), "0x20")
        for account in (ODD, lookalike)
    ]
    summary = "No fresh WhatsGate data for {} for 11m 0s"
    description = "The last successful poll of WhatsApp account {} () was 11m 0s ago (above 10m 0s)."
    expected = [
        (
            {"job": "j", "account": ODD, "severity": "critical"},
            {"summary": summary.format(ODD), "description": description.format(ODD)},
        )
    ]
    result = promtool_test_rules(tmp_path, rules.name, inputs, "Stale", expected)
    assert result.returncode == 0, result.stdout + result.stderr


def test_per_account_value_overrides_pass_promtools_lint(tmp_path: Path):
    """The most common override, another value for one account, must not draw promtool's
    duplicate-rule lint ("FAILED: lint error ... duplicate rule(s)"; exit 3 with --lint-fatal)."""
    threshold = {
        "name": "ChatUnread",
        "metric": "chat_unread_messages",
        "above": 20,
        "for": "10m",
        "overrides": {"sales": {"above": 5}},
    }
    config = {"whatsgate": {"url": "http://x", "api_key": "k"}, "accounts": [{"whatsapp_id": "1"}]}
    config_file = tmp_path / "override.yaml"
    config_file.write_text(yaml.safe_dump({**config, "thresholds": [threshold]}), "utf-8")
    generate_rules(config_file, tmp_path / "override.rules.yml")
    check = promtool("check", "rules", "--lint-fatal", str(tmp_path / "override.rules.yml"))
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr


# The rendered annotation of one awkward template, as Prometheus writes it for this series: chat
# 'Anna "VIP"' (1@c.us, contact) of account support (whatsapp_id 100), 25 unread, threshold 20 for 10m.
TEMPLATES = {
    "quotes": (
        'Chat "{chat_name}" on {account}: {value} > {threshold}',
        'Chat "Anna "VIP"" on support: 25 > 20',
    ),
    "go-braces": (
        "{{ not an action }} and {{{{ then {account} }}",
        "{{ not an action }} and {{{{ then support }}",
    ),
    "unicode": (
        "Чат «{chat_name}» 😀 на {account} — {condition}, שלום",
        'Чат «Anna "VIP"» 😀 на support — above 20, שלום',
    ),
    "adjacent": (
        "{account}{whatsapp_id}{chat_id}",
        "support1001@c.us",
    ),
    "go-syntax": (
        "$value {{ $labels.account }} `tick` 100% }} {{`",
        "$value {{ $labels.account }} `tick` 100% }} {{`",
    ),
    "fields": (
        "{for} {severity} {alertname} {chat_type}",
        "10m warning AwkwardText contact",
    ),
    "json-like": (
        '{"account": "{account}"}',
        '{"account": "support"}',
    ),
    "brace-pairs": (
        "{{{account}}}",
        "{{support}}",
    ),
    "brace-before-placeholder": (
        "{{chat_id}} in {{account}}",
        "{1@c.us} in {support}",
    ),
}


@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_awkward_annotation_text_renders_in_prometheus_as_written(tmp_path: Path, case: str):
    template, expected = TEMPLATES[case]
    threshold = {
        "name": "AwkwardText",
        "metric": "chat_unread_messages",
        "above": 20,
        "for": "10m",
        "summary": template,
        "description": "d {value}",
    }
    config = {"whatsgate": {"url": "http://x", "api_key": "k"}, "accounts": [{"whatsapp_id": "100"}]}
    config_file = tmp_path / "awkward.yaml"
    config_file.write_text(yaml.safe_dump({**config, "thresholds": [threshold]}, allow_unicode=True), "utf-8")
    generate_rules(config_file, tmp_path / "awkward.rules.yml")
    check = promtool("check", "rules", str(tmp_path / "awkward.rules.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    labels = {
        "job": "j",
        "instance": "i",
        "whatsapp_id": "100",
        "account": "support",
        "chat_id": "1@c.us",
        "chat_type": "contact",
    }
    result = promtool_test_rules(
        tmp_path,
        "awkward.rules.yml",
        [
            (series("whatsgate_chat_unread_messages", labels), "25x20"),
            (series("whatsgate_chat_info", {**labels, "name": 'Anna "VIP"'}), "1x20"),
        ],
        "AwkwardText",
        [
            (
                {**labels, "severity": "warning", "name": 'Anna "VIP"'},
                {"summary": expected, "description": "d 25"},
            )
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in labels.items()) + "}"


def promtool_test_rules(
    tmp_path: Path,
    rule_file: str,
    inputs: list[tuple[str, str]],
    alertname: str,
    expected: list[tuple[dict[str, str], dict[str, str]]],
) -> subprocess.CompletedProcess[str]:
    """promtool test rules: at 11m, exactly these alerts (labels, annotations) of ``alertname``."""
    exp = [{"exp_labels": labels, "exp_annotations": annotations} for labels, annotations in expected]
    doc = {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in inputs],
                "alert_rule_test": [{"eval_time": "11m", "alertname": alertname, "exp_alerts": exp}],
            }
        ],
    }
    test_file = tmp_path / "rules_test.yml"
    test_file.write_text(yaml.safe_dump(doc, allow_unicode=True, width=1000), encoding="utf-8")
    return promtool("test", "rules", str(test_file))


def test_chat_narrowing_in_prometheus_matches_names_across_a_newline(tmp_path: Path):
    """``chats:`` patterns are searched in the chat name (Python ``re.search``, as the agent does);
    the rule must select the same chats, also when the name has a line break."""
    threshold = {"name": "Narrowed", "metric": "chat_unread_messages", "above": 1, "chats": ["He said"]}
    config = {"whatsgate": {"url": "http://x", "api_key": "k"}, "accounts": [{"whatsapp_id": "100"}]}
    config_file = tmp_path / "narrow.yaml"
    config_file.write_text(yaml.safe_dump({**config, "thresholds": [threshold]}), "utf-8")
    generate_rules(config_file, tmp_path / "narrow.rules.yml")
    labels = {"job": "j", "instance": "i", "whatsapp_id": "100", "account": "100", "chat_id": "1@c.us"}
    inputs = []
    expected = []
    for cid, name in (("1@c.us", "He said hi"), ("2@c.us", WEIRD), ("3@c.us", "Someone else")):
        chat = {**labels, "chat_id": cid, "chat_type": "contact"}
        inputs += [(series("whatsgate_chat_unread_messages", chat), "5x20")]
        inputs += [(series("whatsgate_chat_info", {**chat, "name": name}), "1x20")]
        if "He said" in name:
            annotations = {
                "summary": f'5 unread messages in contact "{name}" on 100',
                "description": f'Chat "{name}" ({cid}) on WhatsApp account 100 has 5 unread messages'
                " (above 1).",
            }
            expected.append(({**chat, "name": name, "severity": "warning"}, annotations))
    assert len(expected) == 2
    result = promtool_test_rules(tmp_path, "narrow.rules.yml", inputs, "Narrowed", expected)
    assert result.returncode == 0, result.stdout + result.stderr


# --- 5: parity of the two modes -----------------------------------------------------------------

PARITY_THRESHOLDS = f"""\
discover: true
thresholds:
  - name: ChatUnread
    metric: chat_unread_messages
    above: 2
    summary: '{AWKWARD}'
    overrides:
      sales: {{above: 0, severity: critical}}
  - {{name: ChatUnread, metric: chat_unread_messages, above: 4, severity: critical, accounts: [support]}}
  - {{name: GroupUnread, metric: chat_unread_messages, above: 1, chat_types: [group]}}
  - {{name: NamedChatUnread, metric: chat_unread_messages, above: 0, chats: ['^13@', '^Chat 21', 'nothing']}}
  - {{name: AccountUnread, metric: unread_messages, above: 5, for: 2s, accounts: [support, sales]}}
  - {{name: ContactUnread, metric: unread_messages, above: 7, chat_types: [contact]}}
  - {{name: FewChats, metric: chats, below: 3}}
  - {{name: ChatsWaiting, metric: chats_unread, above: 2}}
  - {{name: ReadOnly, metric: chats_read_only, above: 0}}
  - {{name: Muted, metric: chats_muted, above: 0}}
  - {{name: NothingPinned, metric: chats_pinned, below: 1}}
  - {{name: BigGroup, metric: group_participants, above: 10}}
  - {{name: Admins, metric: group_admins, above: 1, chats: ['^Group 19']}}
  - {{name: Down, metric: account_down, severity: critical}}
  - {{name: Stale, metric: stale, above: 3s}}
  - {{name: NotReady, metric: session_not_ready, severity: critical}}
"""

# (alertname, severity, account, chat_id or session status), from the simulator's accounts by hand:
# - support (wa-1): chats 11 (3 unread, pinned), 12 (0, muted), 13 (5, read-only),
#   group 19 (2 unread; 4 members, 2 admins);
# - sales (wa-2): chat 21 (1), group 29 (0; 12 members), then its polls fail;
# - wa-3: session AUTH, never polled.
PARITY_EXPECTED = {
    ("ChatUnread", "warning", "support", "11@c.us"),
    ("ChatUnread", "warning", "support", "13@c.us"),
    ("ChatUnread", "critical", "support", "13@c.us"),
    ("ChatUnread", "critical", "sales", "21@c.us"),
    ("GroupUnread", "warning", "support", "19@g.us"),
    ("NamedChatUnread", "warning", "support", "13@c.us"),
    ("NamedChatUnread", "warning", "sales", "21@c.us"),
    ("AccountUnread", "warning", "support", ""),
    ("ContactUnread", "warning", "support", ""),
    ("FewChats", "warning", "sales", ""),
    ("ChatsWaiting", "warning", "support", ""),
    ("ReadOnly", "warning", "support", ""),
    ("Muted", "warning", "support", ""),
    ("NothingPinned", "warning", "sales", ""),
    ("BigGroup", "warning", "sales", "29@g.us"),
    ("Admins", "warning", "support", "19@g.us"),
    ("Down", "critical", "sales", ""),
    ("Down", "critical", "wa-3", ""),
    ("Stale", "warning", "sales", ""),
    ("NotReady", "critical", "wa-3", "AUTH"),
}


def key(labels: dict[str, str]) -> tuple[str, str, str, str]:
    return (
        labels["alertname"],
        labels["severity"],
        labels["account"],
        labels.get("chat_id") or labels.get("status", ""),
    )


def test_prometheus_rules_and_agent_fire_the_same_alerts(hook: Recorder, procs: list, tmp_path: Path):
    with simulating([*accounts(), SimAccount("wa-3", "three", status="AUTH")]) as sim:
        config = config_for(
            sim, PARITY_THRESHOLDS + f"alertmanager:\n  url: {hook.base}\n  resend_interval: 1s\n"
        )
        config = config.replace("  - whatsapp_id: wa-2\n", "  - whatsapp_id: wa-2\n    name: sales\n")
        exporter = run_exporter(procs, tmp_path, config)
        sim.set_fault("wa-2", "unauthorized")  # after one good poll: down, with data that goes stale
        rules = tmp_path / "parity.rules.yml"
        generate_rules(exporter.log.parent / "exporter.yaml", rules)
        check = promtool("check", "rules", str(rules))
        assert check.returncode == 0, check.stdout + check.stderr
        prom = alerting_prometheus(procs, tmp_path, exporter.port, rules, None)

        def prometheus_firing() -> dict[tuple, dict]:
            return {key(a["labels"]): a for a in firing_in_prometheus(prom)}

        def agent_firing() -> set[tuple]:
            return {key(dict(labels)) for labels in firing_on_metrics(exporter)}

        seen: list[tuple[set, set]] = []

        def settled() -> bool:
            seen.append((set(prometheus_firing()), agent_firing()))
            last = seen[-15:]  # unchanged and equal for 1.5 s
            return len(last) == 15 and all(p == a == last[0][0] for p, a in last)

        with contextlib.suppress(AssertionError):  # not settled: the assertions below tell how
            wait_until(settled, timeout=WAIT, what="both modes settled on the same alerts")
        prom_set, agent_set = seen[-1]
        assert prom_set == agent_set, (
            f"only Prometheus: {sorted(prom_set - agent_set)}; only the agent: {sorted(agent_set - prom_set)}"
        )
        assert prom_set == PARITY_EXPECTED, (
            f"missing: {sorted(PARITY_EXPECTED - prom_set)}; unexpected: {sorted(prom_set - PARITY_EXPECTED)}"
        )

        # Annotations too: the agent's last POST to "Alertmanager" (the recorder) against Prometheus's.
        firing = prometheus_firing()
        with hook.lock:
            posted = hook.bodies[-1]
        now = time.time()
        agent_annotations = {key(a["labels"]): a["annotations"] for a in posted if ts(a["endsAt"]) > now}
        assert set(agent_annotations) == PARITY_EXPECTED
        for k, alert in firing.items():
            if k[0] != "Stale":  # its value is the age of the data, a moving target
                assert agent_annotations[k] == alert["annotations"], k
        summary = agent_annotations[("ChatUnread", "warning", "support", "11@c.us")]["summary"]
        assert summary == f'«{WEIRD}» ≠ "support" {{{{ not an action }}}} `tick` $value 100% 3/2 😀 שלום'
