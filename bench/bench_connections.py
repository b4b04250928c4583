"""Connection floods against the exporter's HTTP server (loopback only; every loop is bounded).

Starts ``python -m exporter --demo`` as a subprocess from the source tree given
by ``--source`` (e.g. an older checkout, for "before" figures), optionally with
a file-descriptor limit on the SERVER process, and measures:

(a) /metrics latency for a fresh client while N idle connections are held open,
    and the server's CPU use meanwhile (a server spinning on accept() shows here);
(b) bursts of 20 concurrent connects + GET /healthz: the share waiting over 1 s;
(c) the server process's threads: at rest, under the idle flood, after it.

    python bench/bench_connections.py                       # this tree
    python bench/bench_connections.py --server-nofile 1024  # server limited to 1,024 descriptors
    python bench/bench_connections.py --source /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int, field: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return line.split()[1]
    return "?"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_latency(url: str, n: int = 5) -> list[str]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        try:
            ok = requests.get(url, timeout=10).status_code == 200
            out.append(f"{(time.perf_counter() - start) * 1000:.0f}ms" if ok else "error")
        except requests.RequestException as exc:
            out.append(f"failed after {time.perf_counter() - start:.1f}s ({type(exc).__name__})")
    return out


def bursts(url: str, rounds: int, size: int = 20) -> tuple[float, float]:
    times: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        start = time.perf_counter()
        try:
            requests.get(url, timeout=10, headers={"Connection": "close"})
            elapsed = time.perf_counter() - start
        except requests.RequestException:
            elapsed = 10.0
        with lock:
            times.append(elapsed)

    for _ in range(rounds):
        threads = [threading.Thread(target=one) for _ in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.2)
    return sum(t > 1.0 for t in times) / len(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=str(REPO), help="source tree whose exporter to run")
    parser.add_argument("--idle", type=int, default=3000, help="idle connections to open")
    parser.add_argument("--server-nofile", type=int, default=0, help="RLIMIT_NOFILE of the server process")
    parser.add_argument("--bursts", type=int, default=25, help="rounds of 20 concurrent connects")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + 500)), hard))
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def limit() -> None:
        if args.server_nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (args.server_nofile, args.server_nofile))

    env = {**os.environ, "PYTHONPATH": args.source}
    log = open(os.devnull, "w")  # noqa: SIM115 - closed with the process below
    server = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        cwd=args.source,
        env=env,
        preexec_fn=limit,
        stdout=log,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    threading.Thread(target=lambda: stderr_lines.extend(server.stderr or []), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        print(f"source={args.source} server_nofile={args.server_nofile or soft} idle={args.idle}")
        print(f"(c) threads at rest: {proc_status(server.pid, 'Threads')}")
        share, median = bursts(f"{base}/healthz", args.bursts)
        print(
            f"(b) bursts of 20 connects x {args.bursts}: {share:.1%} over 1 s, median {median * 1000:.0f} ms"
        )

        idle: list[socket.socket] = []
        refused = 0
        start = time.monotonic()

        def connect(_: int) -> socket.socket | None:
            if time.monotonic() - start > 90:  # bounded, whatever the server does
                return None
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=3)
            except OSError:
                return None

        # 64 connects at a time: an old server's short backlog must not make the flood take hours.
        with ThreadPoolExecutor(64) as pool:
            for sock in pool.map(connect, range(args.idle)):
                if sock is None:
                    refused += 1
                else:
                    idle.append(sock)
        time.sleep(1)
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        print(
            f"(a) opened {len(idle)} idle connections ({refused} failed) in {time.monotonic() - start:.1f}s"
        )
        print(
            f"(a) /metrics for a fresh client under the flood: {', '.join(fresh_latency(f'{base}/metrics'))}"
        )
        time.sleep(2)
        busy = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)
        print(f"(a) server CPU while flooded: {busy:.0%} of a core (over the latency probes + 2 s)")
        print(f"(c) threads under the flood: {proc_status(server.pid, 'Threads')}")
        for sock in idle:
            sock.close()
        time.sleep(2)
        print(f"(a) /metrics after the flood: {', '.join(fresh_latency(f'{base}/metrics', 3))}")
        print(f"(c) threads after the flood: {proc_status(server.pid, 'Threads')}")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    tracebacks = sum("Traceback" in line for line in stderr_lines)
    print(f"server stderr: {len(stderr_lines)} lines, {tracebacks} tracebacks")


if __name__ == "__main__":
    main()
