"""``python -m exporter.simulator``: the simulator on its own, for trying the exporter by hand."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from .data import DEFAULT_API_KEY, DEMO_ACCOUNTS
from .server import Simulator

_EPILOG = f"""\
accounts (WhatsappID  name):
  --demo (the default):
{"".join(f"    {wid:<16} {name}{chr(10)}" for wid, name in DEMO_ACCOUNTS)}\
  benchmark data (--accounts N):
    bench-00 .. bench-NN, "Bench line 00" .. (numbered from 00)

API key: every request needs the header X-Api-Key: {DEFAULT_API_KEY} (or --api-key).
It is public and guards nothing: listen on loopback only.

Commands (POST /api/v1/...): sessions-get, get-chats, events-get, get-history.
Control (POST /_sim/..., no key): chat, status, fault, message, read, ack, disconnect,
event, options; see the module's documentation (exporter/simulator/__init__.py).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description="Serve a simulated WhatsGate API (loopback only).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    parser.add_argument("--demo", action="store_true", help="three support-line accounts (default)")
    parser.add_argument("--accounts", type=int, help="benchmark data: number of accounts")
    parser.add_argument("--chats", type=int, help="benchmark data: chats per account")
    parser.add_argument("--group-fraction", type=float, help="benchmark data: share of groups")
    parser.add_argument("--participants", type=int, help="benchmark data: members per group")
    parser.add_argument(
        "--events-per-poll", type=int, help="benchmark data: messages per account at each get-chats"
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="default: %(default)s")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--time-zone", default="UTC", help="of events' event_date (default: %(default)s)")
    parser.add_argument("--newest-first", action="store_true", help="events-get pages newest event first")
    parser.add_argument("--body-marker", default="", help="text added to every message body")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--listen must be HOST:PORT")
    bench = {
        k: v
        for k in ("accounts", "chats", "group_fraction", "participants", "events_per_poll")
        if (v := getattr(args, k)) is not None
    }
    if args.demo and bench:
        parser.error("--demo cannot be combined with benchmark options")
    options = {
        "time_zone": args.time_zone,
        "newest_first": args.newest_first,
        "body_marker": args.body_marker,
    }
    try:
        sim = (
            Simulator.generate(**bench, api_key=args.api_key, seed=args.seed or 0, **options)
            if bench
            else Simulator.demo(args.api_key, seed=args.seed, **options)
        )
    except ValueError as exc:
        parser.error(str(exc))
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
