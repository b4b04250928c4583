"""Memory, CPU and scrape latency while every account re-polls back to back; gzip scrape cost.

Starts the simulator and the exporter as processes (max_per_account: 0, so every
chat has its series; poll_interval 1s, so the accounts re-poll back to back), then:
1. counts full poll cycles (every account polled once more) from the exporter's
   debug log, with 5 concurrent scrapers sending ``Accept-Encoding: gzip`` as
   Prometheus does: /metrics latency p50/p99, CPU seconds and wall time per cycle
   (``--slow 2``: every get-chats answered after 2 s, as a far gateway would);
2. after ``--cycles`` cycles freezes the polls (the simulator delays every answer)
   and reads the peak RSS (VmHWM, reset after the first poll of every account, so
   it is the steady state's peak; the start-up peak is printed too);
3. times quiet gzip scrapes against a static server sending the same compressed
   bytes, alternating, and the exporter's CPU per gzip scrape: on a new connection
   each, on one kept-alive connection back to back, and on one kept-alive
   connection 1.1 s apart (as Prometheus scrapes: each renders its process metrics
   and finds cold cores; every scrape, the static server's too, comes 1.1 s after
   the one before it).

    python bench/bench_cycles.py [--accounts 10] [--chats 10000] [--cycles 5]
                                 [--scrapes 200] [--sparse-scrapes 30] [--unread 0.7]
                                 [--concurrency 8] [--slow 0]

One million chats (the 300 MB / 10 s target), CPU of the polls alone:

    python bench/bench_cycles.py --accounts 100 --cycles 5 --scrapers 0 --scrapes 20
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

REPO = Path(os.environ.get("BENCH_REPO", common.REPO))
TICK = os.sysconf("SC_CLK_TCK")


def get(port: int, path: str = "/metrics", gzip: bool = True) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"} if gzip else {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body, time.perf_counter() - started


def get_on(conn: http.client.HTTPConnection) -> float:
    """A gzip /metrics on an open connection (kept alive, as Prometheus does); its duration."""
    started = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    return time.perf_counter() - started


def post(port: int, path: str, payload: dict[str, object]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
    conn.getresponse().read()
    conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> float:
    """CPU seconds of a process's live threads, to the nanosecond (schedstat), where /proc/PID/stat
    counts in clock ticks of 10 ms: too coarse for a few dozen scrapes of a millisecond."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def reset_hwm(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux: ``5`` to clear_refs), so the peak read
    later is that of the re-poll cycles, not of start-up, when every account is polled at once."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def static_server(body: bytes, port: int) -> None:
    """Serve ``body`` as a gzip /metrics: the floor a cached exporter could reach."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = common.arguments(__doc__, accounts=10, chats=10_000, cycles=5)
    parser.add_argument("--scrapers", type=int, default=5, help="0: CPU per cycle of the polls alone")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--sparse-scrapes", type=int, default=30, help="scrapes 1.1 s apart (0: none)")
    parser.add_argument("--concurrency", type=int, help="poll_concurrency (default: the exporter's)")
    parser.add_argument("--unread", type=float, help="share of chats unread (default: the simulator's)")
    parser.add_argument(
        "--slow", type=float, default=0.0, help="seconds each get-chats answer takes (a far gateway)"
    )
    parser.add_argument("--static-body", help=argparse.SUPPRESS)
    parser.add_argument("--static-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.static_body:
        static_server(Path(args.static_body).read_bytes(), args.static_port)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-cycles-"))
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        sim_port, exp_port, static_port = common.free_port(), common.free_port(), common.free_port()
        sim_cmd = common.simulator_command(sim_port, args.accounts, args.chats)
        if args.unread is not None:
            # The simulator has no option for it: its unread counts are drawn by one function.
            patch = (
                "import exporter.simulator.data as d; "
                f"d._unread = lambda rng: rng.randint(1, 5) if rng.random() < {args.unread} else 0; "
                "from exporter.simulator.cli import main; import sys; sys.exit(main())"
            )
            sim_cmd[1:3] = ["-c", patch]
        procs.append(subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, cwd=REPO, env=env))
        ids = [f"bench-{i:02d}" for i in range(args.accounts)]
        (tmp / "config.yaml").write_text(
            common.exporter_config(sim_port, args.accounts, "600s")
            + "poll_interval: 1s\nstale_after: 1h\nchats:\n  max_per_account: 0\n"
            + (f"poll_concurrency: {args.concurrency}\n" if args.concurrency else "")
        )
        time.sleep(1.0)
        log = (tmp / "exporter.log").open("w")
        exp_cmd = common.exporter_command(tmp / "config.yaml", exp_port, "debug")
        exporter = subprocess.Popen(exp_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        procs.append(exporter)

        def polls() -> int:
            return (tmp / "exporter.log").read_text(errors="replace").count("poll ok")

        while True:
            try:
                if get(exp_port, "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        print(f"{args.accounts} x {args.chats} chats, all polled once")

        stop = threading.Event()
        latencies: list[float] = []

        def scraper() -> None:
            while not stop.is_set():
                latencies.append(get(exp_port)[2])

        for wid in ids if args.slow else ():
            post(sim_port, "/_sim/fault", {"whatsapp_id": wid, "fault": "slow", "delay": args.slow})
        first_hwm = common.vm_hwm_mb(exporter.pid)
        reset_hwm(exporter.pid)
        wall0, cpu0, polls0 = time.monotonic(), cpu_seconds(exporter.pid), polls()
        target = polls0 + args.cycles * args.accounts
        threads = [threading.Thread(target=scraper, daemon=True) for _ in range(args.scrapers)]
        for t in threads:
            t.start()
        while polls() < target:
            time.sleep(0.2)
        cycles = (polls() - polls0) / args.accounts
        cpu_per_cycle = (cpu_seconds(exporter.pid) - cpu0) / cycles
        wall_per_cycle = (time.monotonic() - wall0) / cycles
        stop.set()
        for t in threads:
            t.join()
        for wid in ids:  # freeze: every next poll waits in the simulator
            post(sim_port, "/_sim/fault", {"whatsapp_id": wid, "fault": "down", "delay": 3600})
        frozen = polls()
        time.sleep(5)
        while polls() != frozen:  # polls already answered are still being processed
            frozen = polls()
            time.sleep(5)
        print(f"{cycles:.1f} re-poll cycles with {args.scrapers} gzip scrapers: {len(latencies)} scrapes,")
        if latencies:
            p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
            print(f"  /metrics p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms")
        scrapes = "incl. the scrapes" if args.scrapers else "polls only"
        print(f"  CPU per full poll cycle ({scrapes}): {cpu_per_cycle:.2f} s")
        slow = f", each get-chats answered after {args.slow:g} s" if args.slow else ""
        print(f"  wall time per full poll cycle (poll_interval 1 s{slow}): {wall_per_cycle:.2f} s")
        peak = common.vm_hwm_mb(exporter.pid)
        print(f"peak RSS (VmHWM) during the {cycles:.0f} re-poll cycles: {peak:.0f} MB")
        print(f"  (during start-up and the first poll of every account: {first_hwm:.0f} MB)")
        waiting = get(exp_port, gzip=False)[1].count(b"\nwhatsgate_chat_waiting_seconds{")
        print(f"  open waits (whatsgate_chat_waiting_seconds series): {waiting}")

        _, body, _ = get(exp_port)
        (tmp / "body.gz").write_bytes(body)
        static = [
            sys.executable,
            __file__,
            "--static-body",
            str(tmp / "body.gz"),
            "--static-port",
            str(static_port),
        ]
        static_proc = subprocess.Popen(static, cwd=REPO)
        procs.append(static_proc)
        time.sleep(1.0)
        # What the exporter spends with no scrape at all (pollers parked in the simulator's
        # delay, timers), so the CPU per scrape below is the scrapes' own.
        idle0, t0 = cpu_seconds(exporter.pid), time.monotonic()
        time.sleep(5)
        idle_rate = (cpu_seconds(exporter.pid) - idle0) / (time.monotonic() - t0)
        print(f"gzip scrape: {len(body) / 1e6:.2f} MB on the wire")
        # Prometheus keeps its connection to a target open and scrapes every 15-60 s. Back to
        # back, scrapes share what the exporter renders at most once a second (its process
        # metrics) and the last body; 1.1 s apart, each pays for them, as Prometheus's do. A new
        # connection per scrape adds the server's accept and close.
        modes = (
            ("a new connection per scrape, back to back", False, 0.0, args.scrapes),
            ("one kept-alive connection, back to back", True, 0.0, args.scrapes),
            ("one kept-alive connection, 1.1 s apart (as Prometheus)", True, 1.1, args.sparse_scrapes),
        )
        for label, keep_alive, gap, count in modes:
            if count <= 0:
                continue
            ours_conn = http.client.HTTPConnection("127.0.0.1", exp_port, timeout=300)
            theirs_conn = http.client.HTTPConnection("127.0.0.1", static_port, timeout=300)
            ours, theirs = [], []
            pair = [
                (ours_conn, exp_port, ours, exporter.pid),
                (theirs_conn, static_port, theirs, static_proc.pid),
            ]
            cpus: dict[int, list[float]] = {exporter.pid: [], static_proc.pid: []}
            cpu0, t0 = cpu_seconds(exporter.pid), time.monotonic()
            static0 = cpu_seconds(static_proc.pid)
            for n in range(count):
                # Alternating which server goes first; spaced, each scrape comes ``gap`` after the
                # last one of either server, so neither finds the cores and caches the other warmed.
                for conn, port, into, pid in pair if n % 2 == 0 else pair[::-1]:
                    time.sleep(gap)
                    before = thread_cpu(pid) if gap else 0.0
                    into.append(get_on(conn) if keep_alive else get(port)[2])
                    if gap:  # this scrape's own CPU, to the nanosecond, and nothing of the idle gap
                        time.sleep(0.02)  # what the server does after the last byte (re-arming)
                        cpus[pid].append(thread_cpu(pid) - before)
            if gap:
                cpu, static_cpu = (
                    statistics.median(cpus[exporter.pid]),
                    statistics.median(cpus[static_proc.pid]),
                )
                how = f"median of {count} scrapes, read from the threads' schedstat around each"
            else:
                # Clock ticks (10 ms, but every thread that ever ran, as the static server's threads
                # of a new connection each are gone by the end), less what the idle exporter spends.
                elapsed = time.monotonic() - t0
                total = (cpu_seconds(exporter.pid) - cpu0) / count
                static_cpu = (cpu_seconds(static_proc.pid) - static0) / count
                cpu = max(0.0, total - idle_rate * elapsed / count)
                how = f"{total * 1e3:.2f} ms with the idle exporter's {idle_rate * 1e3:.2f} ms/s"
            ours_conn.close()
            theirs_conn.close()
            m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
            print(
                f"  {label}: exporter CPU {cpu * 1e3:.2f} ms per scrape ({how});"
                f" the static server's CPU for the same bytes {static_cpu * 1e3:.2f} ms"
            )
            ratio = m_ours / m_theirs
            # Each round's own ratio too: the machine's speed drifts within a run, and a round's
            # two scrapes, seconds apart at most, see the same speed.
            paired = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
            print(
                f"    median {m_ours * 1e3:.2f} ms vs static server {m_theirs * 1e3:.2f} ms:"
                f" ratio {ratio:.2f} (median of the rounds' own ratios {paired:.2f})"
            )
    finally:
        common.stop_all(procs)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
