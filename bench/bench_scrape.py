"""Scrape cost and memory at scale: 10 accounts x 10,000 chats (10 % groups of 20 participants).

Starts the simulator and the exporter as separate processes (max_per_account: 0,
so every chat has its series), waits until every account is polled, then times
/metrics against `python -m http.server` serving the very same bytes from a
file. Requests alternate between the two servers so the machine's noise hits
both alike; the figure that matters is the ratio of medians. Also reports the
exporter's peak RSS (VmHWM).

    python bench/bench_scrape.py [--accounts 10] [--chats 10000] [--rounds 15]
"""

from __future__ import annotations

import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common


def get(port: int, path: str) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body, time.perf_counter() - started


def wait_for(port: int, path: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"port {port}{path} not ready within {timeout}s")


def main() -> None:
    args = common.arguments(__doc__, accounts=10, chats=10_000, rounds=15).parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_port, exp_port, plain_port = common.free_port(), common.free_port(), common.free_port()
        sim_cmd = common.simulator_command(sim_port, args.accounts, args.chats)
        procs.append(subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, cwd=common.REPO))
        (tmp / "config.yaml").write_text(
            common.exporter_config(sim_port, args.accounts, "60s")
            + "poll_interval: 10m\nchats:\n  max_per_account: 0\n"
        )
        time.sleep(0.5)
        started = time.perf_counter()
        exp_cmd = common.exporter_command(tmp / "config.yaml", exp_port, "warn")
        exporter = subprocess.Popen(exp_cmd, stdout=subprocess.DEVNULL, cwd=common.REPO)
        procs.append(exporter)
        wait_for(exp_port, "/ready", timeout=600)
        print(f"all {args.accounts} accounts polled {time.perf_counter() - started:.1f}s after start")

        # Each account's events poll publishes its reply families on its own: wait for them all.
        body = b""
        while body.count(b"\nwhatsgate_events_up{") < args.accounts:
            time.sleep(0.2)
            _, body, _ = get(exp_port, "/metrics")
        (tmp / "metrics").write_bytes(body)
        series = body.count(b"\n") - body.count(b"\n#")
        print(f"/metrics body: {len(body) / 1e6:.1f} MB, {series} series")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(plain_port),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_for(plain_port, "/metrics", timeout=30)

        ours, plain = [], []
        for _ in range(args.rounds):
            status, got, seconds = get(exp_port, "/metrics")
            # Only the process_* metrics at the end change between scrapes.
            assert status == 200 and abs(len(got) - len(body)) < 1000, (
                f"exporter body changed: {status} {len(got)} vs {len(body)}"
            )
            ours.append(seconds)
            status, got, seconds = get(plain_port, "/metrics")
            assert status == 200 and got == body
            plain.append(seconds)
        m_ours, m_plain = statistics.median(ours), statistics.median(plain)
        print(f"exporter /metrics: median {m_ours * 1000:.1f} ms (min {min(ours) * 1000:.1f})")
        print(f"plain http.server: median {m_plain * 1000:.1f} ms (min {min(plain) * 1000:.1f})")
        print(f"ratio exporter/plain (medians): {m_ours / m_plain:.2f}  [target <= 1.5]")
        print(f"exporter peak RSS (VmHWM): {common.vm_hwm_mb(exporter.pid):.0f} MB  [target < 150]")
    finally:
        common.stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
