"""Reload (SIGHUP and POST /-/reload), /probe and /sd on the exporter as a process."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import KEY, accounts, config_for, get, start_exporter, stop, wait_until

from exporter.simulator import SimAccount, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator([*accounts(), SimAccount("wa-3", "three")], api_key=KEY, dynamic=False)
    simulator.start()
    yield simulator
    simulator.stop()


def reload_metrics(exporter) -> tuple[float | None, float | None]:
    scraped = exporter.scrape()
    return (
        get(scraped, "whatsgate_exporter_config_last_reload_successful"),
        get(scraped, "whatsgate_exporter_config_last_reload_success_timestamp_seconds"),
    )


def test_reload_by_http_and_sighup_applies_or_keeps_the_running_config(sim: Simulator, tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim), "--web.enable-lifecycle")
    config = tmp_path / "config.yaml"
    try:
        ok, started = reload_metrics(exporter)
        assert ok == 1.0 and started is not None
        # Remove wa-2, add wa-3, over HTTP.
        config.write_text(config_for(sim).replace("wa-2", "wa-3"), encoding="utf-8")
        answer = requests.post(f"{exporter.url}/-/reload", timeout=10)
        assert (answer.status_code, answer.text) == (200, "configuration reloaded\n")
        wait_until(lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-3") == 1.0, what="wa-3 up")
        assert get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-2") is None
        # A broken file: 500 with the key, the running config stays, the metric says so.
        config.write_text(config_for(sim) + "poll_interval: soon\n", encoding="utf-8")
        answer = requests.post(f"{exporter.url}/-/reload", timeout=10)
        assert answer.status_code == 500 and "poll_interval" in answer.text
        assert reload_metrics(exporter)[0] == 0.0
        assert get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-3") == 1.0
        # SIGHUP with a good file again: wa-2 back, success recorded.
        config.write_text(config_for(sim), encoding="utf-8")
        exporter.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_metrics(exporter)[0] == 1.0, what="reload by SIGHUP")
        assert (reload_metrics(exporter)[1] or 0) > started
        wait_until(
            lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-2") == 1.0, what="wa-2 back"
        )
        assert (
            "configuration reload failed" in exporter.logs() and "configuration reloaded" in exporter.logs()
        )
        assert requests.get(f"{exporter.url}/-/reload", timeout=5).status_code == 405
    finally:
        stop(exporter.proc)


def test_probe_and_sd(sim: Simulator, tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim))
    try:
        assert requests.post(f"{exporter.url}/-/reload", timeout=5).status_code == 403  # no lifecycle flag
        body = requests.get(f"{exporter.url}/probe", params={"target": "wa-1"}, timeout=5).text
        assert 'whatsapp_id="wa-1"' in body and 'whatsapp_id="wa-2"' not in body
        assert "whatsgate_exporter_build_info" not in body and "process_" not in body
        missing = requests.get(f"{exporter.url}/probe", params={"target": "nope"}, timeout=5)
        assert missing.status_code == 404 and missing.text.count("\n") == 1
        groups = requests.get(f"{exporter.url}/sd", timeout=5).json()
        assert [g["labels"] for g in groups] == [
            {"__metrics_path__": "/probe", "__param_target": "wa-1", "account": "support"},
            {"__metrics_path__": "/probe", "__param_target": "wa-2", "account": "wa-2"},
        ]
        assert all(g["targets"] == [f"127.0.0.1:{exporter.port}"] for g in groups)
    finally:
        stop(exporter.proc)


@pytest.mark.timing
def test_health_at_once_and_a_prompt_stop_during_a_slow_first_discovery(tmp_path: Path):
    slow = Simulator([SimAccount("wa-1", "one")], api_key=KEY, dynamic=False)
    slow.start()
    slow.set_fault(None, "slow", delay=30, command="sessions-get")
    config = (
        f"whatsgate:\n  url: {slow.url}\n  api_key: {KEY}\n  timeout: 60s\n"
        "discover: true\npoll_interval: 1s\n"
    )
    try:
        exporter = start_exporter(tmp_path, config, wait_ready=False)  # waits for /healthz only
        ready = requests.get(f"{exporter.url}/ready", timeout=5)
        assert ready.status_code == 503 and "sessions-get has not succeeded yet" in ready.text
        started = time.monotonic()
        exporter.proc.send_signal(signal.SIGTERM)
        assert exporter.proc.wait(10) == 0
        assert time.monotonic() - started < 3, "SIGTERM waited for the slow sessions-get"
    finally:
        slow.stop()


def test_a_reload_says_what_changed_and_what_did_not_apply(sim: Simulator, tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim), "--web.enable-lifecycle")
    rotated_key = "SECRET-rotated-key-9876543210"

    def reload(config: str) -> str:
        """Reload ``config``; the one line the reload logged."""
        done = exporter.logs().count("configuration reloaded")
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
        assert requests.post(f"{exporter.url}/-/reload", timeout=10).status_code == 200
        lines = [line for line in exporter.logs().splitlines() if "configuration reloaded" in line]
        assert len(lines) == done + 1, lines
        return lines[-1]

    try:
        unchanged = reload(config_for(sim))
        assert "level=info" in unchanged and "changed=nothing" in unchanged, unchanged
        assert "not_applied" not in unchanged and "whatsgate" not in unchanged, unchanged
        # A rotated key and a longer poll interval (so stale_after's default too): the key needs a restart.
        moved = config_for(sim).replace(KEY, rotated_key).replace("poll_interval: 1s", "poll_interval: 2m")
        line = reload(moved)
        assert "level=warn" in line and 'changed="whatsgate, poll_interval, stale_after"' in line, line
        assert "not_applied=whatsgate" in line, line
        time.sleep(1.5)  # a poll after the reload still works: the running client keeps its key
        assert get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-1") == 1.0
        # The same file again: the key still differs from the running one, until a restart.
        assert "changed=whatsgate not_applied=whatsgate" in reload(moved)
        # Back to the first key and interval, with a poll_concurrency and a threshold added.
        added = reload(
            config_for(sim, "poll_concurrency: 3\nthresholds: [{name: Down, metric: account_down}]\n")
        )
        expected = (
            'changed="poll_interval, stale_after, poll_concurrency, thresholds" not_applied=poll_concurrency'
        )
        assert expected in added, added
        assert rotated_key not in exporter.logs()
    finally:
        stop(exporter.proc)
