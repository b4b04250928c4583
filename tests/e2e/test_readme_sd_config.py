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
from helpers import REPO, free_port, spawn, tool, wait_ready, wait_until


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

    config = readme_scrape_config()
    text = yaml.safe_dump(config).replace("exporter-host:9877", f"127.0.0.1:{port}")
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n" + text, encoding="utf-8")
    prom_port = free_port()
    prom_log = tmp_path / "prometheus.log"
    prom = spawn(
        procs,
        [
            tool("prometheus"),
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        prom_log,
    )
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_ready(prom, f"{prom_url}/-/ready", prom_log, "prometheus")

    def query(expr: str) -> list[dict]:
        answer = requests.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

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
