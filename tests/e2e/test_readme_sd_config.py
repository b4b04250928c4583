"""The README's service-discovery scrape config, exactly as written, in a real Prometheus.

Copied literally, it must store each account's series once: the /probe job
brings the accounts, the exporter's own job (``/metrics?accounts=false``) only
what is the exporter's. A config whose second job scraped plain /metrics stored
every account twice.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests
import yaml
from helpers import REPO, free_port, prometheus, spawn, wait_ready, wait_until


def readme_scrape_config() -> dict:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Per-account targets and service discovery", 1)[1]
    block = re.search(r"```yaml\n(scrape_configs:.*?)```", section, re.S)
    assert block is not None, "no scrape config in the README's service-discovery section"
    return yaml.safe_load(block.group(1))


def test_the_readmes_sd_config_stores_each_account_once(procs: list[subprocess.Popen[str]], tmp_path: Path):
    port = free_port()
    log = tmp_path / "exporter.log"
    exporter = spawn(
        procs,
        [sys.executable, "-m", "exporter", "--demo", f"--web.listen-address=127.0.0.1:{port}"],
        log,
        cwd=REPO,
    )
    wait_ready(exporter, f"http://127.0.0.1:{port}/ready", log, "exporter")
    accounts = sorted(
        g["labels"]["account"] for g in requests.get(f"http://127.0.0.1:{port}/sd", timeout=5).json()
    )
    assert len(accounts) >= 2

    text = yaml.safe_dump(readme_scrape_config()).replace("exporter-host:9877", f"127.0.0.1:{port}")
    query = prometheus(procs, tmp_path, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n" + text)
    wait_until(lambda: len(query("up == 1")) == len(accounts) + 1, timeout=40, what="every target up")
    wait_until(lambda: query("whatsgate_chat_info"), timeout=20, what="chat series")
    for expr in ("count by (account) (whatsgate_up)", "count by (account, chat_id) (whatsgate_chat_info)"):
        counts = query(expr)
        assert counts and {r["value"][1] for r in counts} == {"1"}, (expr, counts)
    assert sorted(r["metric"]["account"] for r in query("count by (account) (whatsgate_up)")) == accounts
    # The exporter's own metrics, once, from its own job.
    for own in ("whatsgate_exporter_build_info", "process_cpu_seconds_total"):
        found = query(own)
        assert [r["metric"]["job"] for r in found] == ["whatsgate-exporter"], (own, found)
