"""A real Prometheus scrapes the exporter's multi-member gzip body (it sends Accept-Encoding: gzip)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests
import yaml
from helpers import KEY, accounts, config_for, free_port, start_exporter, stop, tool, wait_until

from exporter.simulator import Simulator


def query(url: str, promql: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_reads_the_gzip_body(tmp_path: Path) -> None:
    sim = Simulator(accounts(), api_key=KEY, dynamic=False)
    sim.start()
    exporter = start_exporter(tmp_path, config_for(sim))
    prom: subprocess.Popen[bytes] | None = None
    try:
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "whatsgate", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        prom = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("w"),
        )
        url = f"http://127.0.0.1:{port}"

        def scraped() -> bool:
            try:
                up = query(url, 'up{job="whatsgate"}')
            except requests.ConnectionError:
                return False
            return bool(up) and up[0]["value"][1] == "1"

        wait_until(scraped, timeout=60, what="Prometheus scraping the exporter")
        time.sleep(1.5)
        unread = query(url, 'whatsgate_chat_unread_messages{chat_id="11@c.us"}')
        assert [r["value"][1] for r in unread] == ["3"]
        info = query(url, 'whatsgate_chat_info{chat_id="11@c.us"}')
        assert info[0]["metric"]["name"] == 'He said "hi" \\ back\nslash 😀 שלום'
        groups = query(url, "whatsgate_group_participants")
        assert len(groups) == 2
        # The exporter really answered Prometheus with gzip: its target is healthy and the
        # body it serves to a gzip client is gzip.
        head = requests.get(
            f"{exporter.url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True
        )
        assert head.headers["Content-Encoding"] == "gzip"
        head.close()
    finally:
        if prom is not None:
            stop(prom)  # type: ignore[arg-type]
        stop(exporter.proc)
        sim.stop()
