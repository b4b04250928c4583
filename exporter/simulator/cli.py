"""``python -m exporter.simulator``: the simulator on its own, for trying the exporter by hand."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from .server import Simulator


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator", description="Serve a simulated WhatsGate API (loopback only)."
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    parser.add_argument("--demo", action="store_true", help="three support-line accounts (default)")
    parser.add_argument("--accounts", type=int, help="benchmark data: number of accounts")
    parser.add_argument("--chats", type=int, help="benchmark data: chats per account")
    parser.add_argument("--group-fraction", type=float, help="benchmark data: share of groups")
    parser.add_argument("--participants", type=int, help="benchmark data: members per group")
    parser.add_argument("--api-key", default="demo")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--listen must be HOST:PORT")
    bench = {
        k: v
        for k in ("accounts", "chats", "group_fraction", "participants")
        if (v := getattr(args, k)) is not None
    }
    if args.demo and bench:
        parser.error("--demo cannot be combined with benchmark options")
    sim = (
        Simulator.generate(**bench, api_key=args.api_key, seed=args.seed or 0)
        if bench
        else Simulator.demo(args.api_key, seed=args.seed)
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    print(sim.start(host, int(port)), flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0
