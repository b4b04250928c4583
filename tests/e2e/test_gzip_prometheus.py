"""A real Prometheus scrapes the exporter's multi-member gzip body (it sends Accept-Encoding: gzip)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests
import yaml
from helpers import config_for, prometheus, start_exporter, wait_until

from exporter.simulator import Simulator


def test_prometheus_reads_the_gzip_body(
    sim: Simulator, procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    exporter = start_exporter(tmp_path, config_for(sim))
    procs.append(exporter.proc)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": "whatsgate", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}
        ],
    }
    query = prometheus(procs, tmp_path, yaml.safe_dump(config))

    def scraped() -> bool:
        up = query('up{job="whatsgate"}')
        return bool(up) and up[0]["value"][1] == "1"

    wait_until(scraped, timeout=60, what="Prometheus scraping the exporter")
    time.sleep(1.5)
    unread = query('whatsgate_chat_unread_messages{chat_id="11@c.us"}')
    assert [r["value"][1] for r in unread] == ["3"]
    info = query('whatsgate_chat_info{chat_id="11@c.us"}')
    assert info[0]["metric"]["name"] == 'He said "hi" \\ back\nslash 😀 שלום'
    groups = query("whatsgate_group_participants")
    assert len(groups) == 2
    # The exporter really answered Prometheus with gzip: its target is healthy and the
    # body it serves to a gzip client is gzip.
    head = requests.get(
        f"{exporter.url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
    )
    assert head.headers["Content-Encoding"] == "gzip"
    head.close()
