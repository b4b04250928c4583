"""Three sharded exporters against one simulator, discovered by a real Prometheus through /sd.

Each of 30 sessions must be polled by exactly one exporter, the API must see
one get-chats per session per interval, and Prometheus (http_sd_configs on
each exporter's /sd, scraping /probe) must see each account exactly once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml
from helpers import REPO, chat_obj, free_port, prometheus, spawn, wait_ready, wait_until

from exporter.simulator import SimAccount, Simulator

KEY = "SECRET-sharding-key-0123456789"
SESSIONS = [f"7999{i:07d}" for i in range(30)]


def test_three_shards_poll_each_session_once_and_prometheus_sees_each_account_once(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    sim = Simulator(
        [SimAccount(wid, f"line {i}", chats=[chat_obj(f"{i}@c.us", i)]) for i, wid in enumerate(SESSIONS)],
        api_key=KEY,
    )
    sim.start()
    try:
        ports = []
        for index in range(3):
            config = tmp_path / f"shard{index}.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "whatsgate": {"url": sim.url, "api_key": KEY, "timeout": "2s"},
                        "discover": True,
                        "poll_interval": "2s",
                    }
                )
            )
            port = free_port()
            args = [sys.executable, "-m", "exporter", "--config.file", str(config), "--shard", f"{index}/3"]
            log = tmp_path / f"shard{index}.log"
            proc = spawn(procs, [*args, "--web.listen-address", f"127.0.0.1:{port}"], log, cwd=REPO)
            wait_ready(proc, f"http://127.0.0.1:{port}/ready", log, f"shard {index}")
            ports.append(port)

        # Every session in exactly one shard's service discovery.
        owners: dict[str, list[int]] = {}
        for index, port in enumerate(ports):
            groups = requests.get(f"http://127.0.0.1:{port}/sd", timeout=5).json()
            for group in groups:
                assert group["targets"] == [f"127.0.0.1:{port}"]
                assert group["labels"]["__metrics_path__"] == "/probe"
                owners.setdefault(group["labels"]["__param_target"], []).append(index)
        assert sorted(owners) == sorted(SESSIONS)
        assert all(len(o) == 1 for o in owners.values()), owners
        info = requests.get(f"http://127.0.0.1:{ports[1]}/metrics", timeout=5).text
        assert 'whatsgate_exporter_shard_info{index="1",total="3"} 1.0' in info

        # The API sees one get-chats per session per interval, from one exporter.
        before = {wid: sim.request_count("get-chats", wid) for wid in SESSIONS}
        time.sleep(10)
        polls = [sim.request_count("get-chats", wid) - before[wid] for wid in SESSIONS]
        assert all(4 <= n <= 6 for n in polls), polls  # 10 s at 2 s: 5, give or take one

        # A real Prometheus discovers the accounts from the three /sd endpoints.
        query = prometheus(
            procs,
            tmp_path,
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "whatsgate",
                            # The exporter's series carry their own account labels.
                            "honor_labels": True,
                            "http_sd_configs": [
                                {"url": f"http://127.0.0.1:{port}/sd", "refresh_interval": "2s"}
                                for port in ports
                            ],
                            "relabel_configs": [
                                {"source_labels": ["__param_target"], "target_label": "instance"}
                            ],
                        }
                    ],
                }
            ),
        )

        wait_until(lambda: len(query("up == 1")) == 30, timeout=40, what="30 probe targets up")
        per_account = query("count by (whatsapp_id) (whatsgate_up)")
        assert sorted(r["metric"]["whatsapp_id"] for r in per_account) == sorted(SESSIONS)
        assert {r["value"][1] for r in per_account} == {"1"}  # each account exactly once
        unread = query("whatsgate_unread_messages{chat_type='contact'}")
        assert {r["metric"]["whatsapp_id"]: float(r["value"][1]) for r in unread} == {
            wid: float(i) for i, wid in enumerate(SESSIONS)
        }
        # The exporters' own metrics stay on /metrics: none of them came through /probe.
        assert query("whatsgate_exporter_build_info") == []
    finally:
        sim.stop()
