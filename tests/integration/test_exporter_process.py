"""The exporter as a real process, polling the simulator on loopback, scraped over HTTP.

Bodies are parsed with prometheus-client's own text parser and linted with
``promtool check metrics``. Expected values are computed here from the
simulator's raw chats, independently of the exporter's code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import (
    KEY,
    WEIRD,
    Exporter,
    config_for,
    free_port,
    get,
    promtool_check_metrics,
    start_exporter,
    stop,
    wait_until,
)

from exporter.simulator import Simulator


@pytest.fixture
def exporter(sim: Simulator, tmp_path: Path) -> Iterator[Exporter]:
    running = start_exporter(tmp_path, config_for(sim))
    yield running
    stop(running.proc)


def wait_up(exporter: Exporter, whatsapp_id: str, what: str) -> None:
    """Wait until the account's polls work again (whatsgate_up 1)."""
    wait_until(
        lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id=whatsapp_id) == 1, timeout=20, what=what
    )


def test_metrics_match_the_simulated_accounts(exporter: Exporter, sim: Simulator):
    m = exporter.scrape()
    one = {"whatsapp_id": "wa-1", "account": "support"}
    two = {"whatsapp_id": "wa-2", "account": "wa-2"}  # no name: the id is the account label
    assert get(m, "whatsgate_up", **one) == 1 and get(m, "whatsgate_up", **two) == 1
    expected = {  # from accounts() above, by hand
        ("whatsgate_chats", "contact"): 3,
        ("whatsgate_chats", "group"): 1,
        ("whatsgate_chats_unread", "contact"): 2,
        ("whatsgate_chats_unread", "group"): 1,
        ("whatsgate_unread_messages", "contact"): 8,
        ("whatsgate_unread_messages", "group"): 2,
        ("whatsgate_chats_read_only", "contact"): 1,
        ("whatsgate_chats_muted", "contact"): 1,
        ("whatsgate_chats_pinned", "contact"): 1,
        ("whatsgate_chats_pinned", "group"): 0,
    }
    for (name, chat_type), want in expected.items():
        assert get(m, name, chat_type=chat_type, **one) == want, (name, chat_type)
    assert get(m, "whatsgate_chat_unread_messages", chat_id="13@c.us", chat_type="contact", **one) == 5
    assert get(m, "whatsgate_chat_last_activity_timestamp_seconds", chat_id="11@c.us", **one) == 1_700_000_000
    assert get(m, "whatsgate_chat_info", chat_id="11@c.us", name=WEIRD, **one) == 1
    assert get(m, "whatsgate_group_participants", chat_id="19@g.us", **one) == 4  # list wins over size 0
    assert get(m, "whatsgate_group_admins", chat_id="19@g.us", **one) == 2  # admin + super-admin
    assert get(m, "whatsgate_group_created_timestamp_seconds", chat_id="19@g.us", **one) == 1_600_000_000
    assert get(m, "whatsgate_group_participants", chat_id="29@g.us", **two) == 12  # no list: size
    assert get(m, "whatsgate_poll_errors_total", reason="timeout", **one) == 0
    assert get(m, "whatsgate_poll_duration_seconds", **one) > 0
    assert abs(get(m, "whatsgate_last_success_timestamp_seconds", **one) - time.time()) < 30
    assert get(m, "whatsgate_exporter_build_info") == 1
    assert len(m["whatsgate_chat_unread_messages"]) == 6


def test_changes_and_removals_reach_the_next_scrape(exporter: Exporter, sim: Simulator):
    sim.set_chat("wa-1", "12@c.us", unreadCount=40)
    sim.remove_chat("wa-1", "13@c.us")
    wait_until(
        lambda: get(exporter.scrape(), "whatsgate_chat_unread_messages", chat_id="12@c.us") == 40,
        what="new unread count",
    )
    m = exporter.scrape()
    assert get(m, "whatsgate_chat_unread_messages", chat_id="13@c.us") is None
    assert get(m, "whatsgate_chat_info", chat_id="13@c.us") is None
    # One scrape is one poll: the aggregates agree with the per-chat series.
    per_chat = sum(v for k, v in m["whatsgate_chat_unread_messages"].items() if ("whatsapp_id", "wa-1") in k)
    total = sum(v for k, v in m["whatsgate_unread_messages"].items() if ("whatsapp_id", "wa-1") in k)
    assert per_chat == total == 3 + 40 + 2


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("unauthorized", "unauthorized"),
        ("api_error", "api_error"),
        ("rate_limited", "http_status"),
        ("bad_gateway", "http_status"),
        ("not_json", "invalid_response"),
        ("result_not_ok", "api_error"),
        ("bad_chat", "invalid_response"),
        ("down", "connection"),
        ("slow", "timeout"),
    ],
)
def test_each_fault_is_counted_and_isolated(sim: Simulator, tmp_path: Path, fault: str, reason: str):
    exporter = start_exporter(tmp_path, config_for(sim, timeout="500ms"))
    try:
        sim.set_fault("wa-1", fault, delay=2.0 if fault == "slow" else 0.0)
        wait_until(
            lambda: (
                (
                    get(exporter.scrape(), "whatsgate_poll_errors_total", reason=reason, whatsapp_id="wa-1")
                    or 0
                )
                >= 1
            ),
            what=f"{reason} counted",
        )
        m = exporter.scrape()
        assert get(m, "whatsgate_up", whatsapp_id="wa-1") == 0
        assert get(m, "whatsgate_up", whatsapp_id="wa-2") == 1  # the other account is untouched
        assert get(m, "whatsgate_chat_unread_messages", chat_id="13@c.us") == 5  # last good data kept
        others = [v for k, v in m["whatsgate_poll_errors_total"].items() if ("reason", reason) not in k]
        assert sum(others) == 0
        line = next(ln for ln in exporter.logs().splitlines() if "poll failed" in ln)
        assert f"reason={reason}" in line and "account=support" in line
        sim.set_fault("wa-1", None)
        wait_up(exporter, "wa-1", "recovery")
    finally:
        stop(exporter.proc)
    assert KEY not in exporter.logs()


@pytest.mark.timing
def test_a_slow_account_does_not_delay_another_or_the_endpoint(sim: Simulator, tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim, timeout="5s"))
    try:
        sim.set_fault("wa-1", "slow", delay=4.0)
        before = sim.request_count("get-chats", "wa-2")
        started = time.monotonic()
        wait_until(lambda: sim.request_count("get-chats", "wa-2") >= before + 2, what="wa-2 polls")
        assert time.monotonic() - started < 3.9  # wa-2 polled twice while wa-1 hangs in one call
        assert requests.get(f"{exporter.url}/metrics", timeout=2).status_code == 200
    finally:
        sim.set_fault("wa-1", None)
        stop(exporter.proc)


def test_secret_never_leaks(exporter: Exporter, sim: Simulator):
    sim.set_fault(None, "unauthorized")
    wait_until(lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-2") == 0, what="failure")
    for path in ("/", "/metrics", "/ready", "/healthz"):
        assert KEY not in requests.get(exporter.url + path, timeout=5).text
    exporter.proc.send_signal(signal.SIGTERM)
    assert exporter.proc.wait(10) == 0
    assert KEY not in exporter.logs()
    assert "poll failed" in exporter.logs()


def test_endpoints(exporter: Exporter):
    landing = requests.get(exporter.url + "/", timeout=5)
    assert landing.status_code == 200 and 'href="/metrics"' in landing.text
    assert "support" in landing.text
    assert requests.get(exporter.url + "/healthz", timeout=5).status_code == 200
    ready = requests.get(exporter.url + "/ready", timeout=5)
    assert ready.status_code == 200 and "2 of 2" in ready.text
    assert requests.get(exporter.url + "/nope", timeout=5).status_code == 404


def test_not_ready_until_every_account_was_polled(sim: Simulator, tmp_path: Path):
    sim.set_fault("wa-2", "slow", delay=3.0)
    exporter = start_exporter(tmp_path, config_for(sim, timeout="10s"), wait_ready=False)
    try:
        ready = requests.get(exporter.url + "/ready", timeout=5)
        assert ready.status_code == 503
        assert "1 of 2" in ready.text or "0 of 2" in ready.text
        wait_until(
            lambda: requests.get(exporter.url + "/ready", timeout=5).status_code == 200,
            what="ready after slow poll",
        )
    finally:
        sim.set_fault("wa-2", None)
        stop(exporter.proc)


@pytest.mark.realtools
def test_promtool_lints_a_live_scrape(exporter: Exporter):
    body = requests.get(exporter.url + "/metrics", timeout=5).text
    result = promtool_check_metrics(body)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_stale_data_drops_per_chat_series(sim: Simulator, tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim, extra="stale_after: 2s\n", timeout="500ms"))
    try:
        assert get(exporter.scrape(), "whatsgate_chat_unread_messages", chat_id="13@c.us") == 5
        sim.set_fault("wa-1", "down")
        wait_until(
            lambda: get(exporter.scrape(), "whatsgate_chat_unread_messages", chat_id="13@c.us") is None,
            what="stale per-chat series dropped",
        )
        m = exporter.scrape()
        assert get(m, "whatsgate_up", whatsapp_id="wa-1") == 0
        assert get(m, "whatsgate_chat_unread_messages", chat_id="21@c.us") == 1  # wa-2 keeps its series
    finally:
        sim.set_fault("wa-1", None)
        stop(exporter.proc)


def test_discovery_exports_session_status(sim: Simulator, tmp_path: Path):
    sim.set_status("wa-2", "AUTH")
    config = (
        f"whatsgate:\n  url: {sim.url}\n  api_key: {KEY}\n  timeout: 2s\n"
        "accounts:\n  - whatsapp_id: wa-1\n    name: support\ndiscover: true\npoll_interval: 1s\n"
    )
    exporter = start_exporter(tmp_path, config)
    try:
        m = exporter.scrape()
        assert get(m, "whatsgate_session_status", whatsapp_id="wa-1", account="support", status="READY") == 1
        assert get(m, "whatsgate_session_status", whatsapp_id="wa-2", account="wa-2", status="AUTH") == 1
        assert get(m, "whatsgate_session_status", whatsapp_id="wa-2", status="READY") == 0
        assert get(m, "whatsgate_up", whatsapp_id="wa-2") == 0  # a session not ready cannot list chats
        assert get(m, "whatsgate_up", whatsapp_id="wa-1") == 1
        assert get(m, "whatsgate_discovery_up") == 1
        sim.set_status("wa-2", "READY")
        wait_up(exporter, "wa-2", "wa-2 up once READY")
    finally:
        stop(exporter.proc)


@pytest.mark.parametrize(
    "config, key",
    [
        ("whatsgate: {api_key: k}\naccounts: [{name: x}]\n", "accounts[0].whatsapp_id"),
        ("whatsgate: {api_key: k}\naccounts: [{whatsapp_id: a}]\npoll_interval: soon\n", "poll_interval"),
        (
            "whatsgate: {api_key: k}\naccounts: [{whatsapp_id: a}]\nchats: {max_per_acount: 3}\n",
            "chats.max_per_acount",
        ),
        (
            "whatsgate: {api_key_file: /nonexistent/key}\naccounts: [{whatsapp_id: a}]\n",
            "whatsgate.api_key_file",
        ),
        ("whatsgate: [oops\n", "line"),
    ],
)
def test_bad_config_stops_start_up_with_one_line(tmp_path: Path, config: str, key: str):
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    for args in (["--config.file", str(path)], ["check-config", str(path)]):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_demo_runs_with_no_config(tmp_path: Path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # Log lines on stderr: starting, the simulator's URL, then where metrics are served.
        lines = [proc.stderr.readline()]
        while "Serving metrics on" not in lines[-1] and lines[-1] and len(lines) < 10:
            lines.append(proc.stderr.readline())
        assert f'msg="Serving metrics on http://127.0.0.1:{port}/metrics"' in lines[-1], lines
        demo = Exporter(proc, port, tmp_path / "unused")
        wait_until(lambda: requests.get(f"{demo.url}/ready", timeout=2).status_code == 200, what="demo ready")
        m = demo.scrape()
        ups = m["whatsgate_up"]
        assert len(ups) == 3 and all(v == 1 for v in ups.values())
        assert sum(m["whatsgate_chats"].values()) >= 30
        assert any(("status", "READY") in k and v == 1 for k, v in m["whatsgate_session_status"].items())
        assert len(m["whatsgate_group_participants"]) > 0
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_port_in_use_is_a_clear_error(exporter: Exporter, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{exporter.port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr
