"""Many accounts: 10,000 discovered sessions x 20 chats against one exporter (issue 8's target).

Runs the simulator in this process and the exporter as a subprocess (discover: true),
waits until every session has been polled once, then for --duration seconds scrapes
/metrics (gzip, as Prometheus does) every 2 s and samples the exporter's threads and
RSS. Prints: time to ready, threads, peak RSS (also before the one plain scrape at the end),
/metrics p50/p90 (gzip and plain), and the poll lag (whatsgate_poll_delay_seconds) median
and max across accounts.

    python bench/bench_many_accounts.py [--accounts 10000] [--chats 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from exporter.simulator import Simulator  # noqa: E402


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--interval", default="60s")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--port", type=int, default=19879)
    args = parser.parse_args()

    # Not "bench": the sessions are bench-0000.., and an id holding the API key is never polled.
    key = "many-accounts-key"
    sim = Simulator.generate(accounts=args.accounts, chats=args.chats, participants=5, api_key=key)
    url = sim.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    setup_cpu = usage.ru_utime + usage.ru_stime  # generating the accounts, before the exporter starts
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"whatsgate: {{url: {url}, api_key: {key}, timeout: 30s}}\ndiscover: true\n"
            f"poll_interval: {args.interval}\npoll_concurrency: {args.concurrency}\n"
        )
        base = f"http://127.0.0.1:{args.port}"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config),
             "--web.listen-address", f"127.0.0.1:{args.port}", "--log.level", "warn"],
            cwd=REPO,
        )  # fmt: skip
        try:
            while True:
                try:
                    if requests.get(f"{base}/ready", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() - started > 900:
                    raise SystemExit("not ready within 15 minutes")
                time.sleep(1)
            ready_after = time.monotonic() - started
            exporter_cpu = cpu_seconds(proc.pid)
            # This process is the simulator (its server threads) and the /ready probe.
            usage = resource.getrusage(resource.RUSAGE_SELF)
            simulator_cpu = usage.ru_utime + usage.ru_stime - setup_cpu
            commands = ("sessions-get", "get-chats", "events-get", "get-history")
            calls = {command: sim.request_count(command) for command in commands}
            gz, plain, threads = [], [], []
            end = time.monotonic() + args.duration
            raw = b""
            while time.monotonic() < end:
                t = time.perf_counter()
                answer = requests.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=60)
                raw = answer.content  # requests inflates it: the time includes that, on this side
                assert answer.status_code == 200, (answer.status_code, raw[:200])
                gz.append(time.perf_counter() - t)
                threads.append(proc_status(proc.pid)["Threads"])
                time.sleep(1)
            before_plain = proc_status(proc.pid)  # the plain scrape below holds the whole text
            t = time.perf_counter()
            identity = {"Accept-Encoding": "identity"}
            answer = requests.get(f"{base}/metrics", headers=identity, timeout=120)
            plain.append(time.perf_counter() - t)
            body = answer.content
            # Not compared with the gzip body byte for byte: accounts re-poll in between.
            assert answer.status_code == 200 and body.startswith(b"# HELP") and raw, body[:200]
            status = proc_status(proc.pid)
            lags = [
                float(v) for v in re.findall(rb"^whatsgate_poll_delay_seconds\{[^}]*\} (\S+)$", body, re.M)
            ]
            up = len(re.findall(rb"^whatsgate_up\{[^}]*\} 1\.0$", body, re.M))
        finally:
            proc.terminate()
            proc.wait(30)
            sim.stop()
    print(
        f"accounts={args.accounts} chats={args.chats} interval={args.interval} concurrency={args.concurrency}"
    )
    print(f"ready after {ready_after:.1f} s; accounts up: {up}; body {len(body) / 1e6:.1f} MB plain")
    print(f"CPU until ready: exporter {exporter_cpu:.1f} s, simulator {simulator_cpu:.1f} s")
    print("requests until ready: " + ", ".join(f"{c} {n}" for c, n in calls.items()))
    print(f"threads: max {max(threads)}, last {threads[-1]}")
    print(
        f"RSS {status['VmRSS'] / 1024:.0f} MB, peak {status['VmHWM'] / 1024:.0f} MB;"
        f" before the plain scrape: RSS {before_plain['VmRSS'] / 1024:.0f} MB,"
        f" peak {before_plain['VmHWM'] / 1024:.0f} MB"
    )
    print(
        f"/metrics gzip: p50 {statistics.median(gz) * 1000:.0f} ms,"
        # quantiles needs two scrapes: a short --duration may fit one.
        f" p90 {(statistics.quantiles(gz, n=10)[-1] if len(gz) > 1 else gz[0]) * 1000:.0f} ms"
        f" over {len(gz)} scrapes;"
        f" plain: p50 {statistics.median(plain) * 1000:.0f} ms"
    )
    if lags:
        print(f"poll lag: median {statistics.median(lags):.2f} s, max {max(lags):.2f} s")


if __name__ == "__main__":
    main()
