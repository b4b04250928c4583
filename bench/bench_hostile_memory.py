"""Peak RSS of the client against hostile get-chats answers within max_response_size (issue 21, 1).

A local HTTP server (a thread of this process) answers every ``get-chats`` with one of the
hostile answers below; a fresh child interpreter builds a :class:`WhatsGateClient` with the
default ``max_response_size`` (64 MiB), polls, and prints how the poll ended and its peak
RSS (VmHWM) before and after. The parent's own memory is not measured.

- ``empty``: ``{"result":"OK","data":[{},{},...]}`` filling max_response_size;
- ``participants``: one valid group whose participant list is ``{}`` objects up to the size;
- ``minimal``: as many minimal valid chats as fit, all unread;
- ``worst``: the most JSON items the item count lets through, each as costly as found
  (distinct keys with distinct values), beside a bad chat: json.loads decodes them all;
- ``concurrent``: ``--accounts`` polls at once (threads sharing one client, as the
  scheduler's workers do), each answered with a valid answer padded with whitespace to the
  size; the server sends the first half of every answer, waits until all are in flight,
  then the rest.

    python bench/bench_hostile_memory.py [--case all|empty|participants|minimal|worst|concurrent]
                                         [--size-mib 64] [--accounts 8]

Another tree's client (a previous commit's ``exporter``): ``BENCH_REPO=/path/to/tree``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(os.environ.get("BENCH_REPO", Path(__file__).resolve().parent.parent))

_CHAT = (
    '{"id":"%d@c.us","name":"","isGroup":false,"isReadOnly":false,'
    '"unreadCount":1,"timestamp":1,"pinned":false,"isMuted":false}'
)


def body_for(case: str, size: int) -> bytes:
    head, tail = b'{"result":"OK","data":[', b"]}"
    room = size - len(head) - len(tail)
    if case == "empty":
        n = (room + 1) // 3
        return head + b",".join([b"{}"] * n) + tail
    if case == "participants":
        group = (
            b'{"id":"1@g.us","name":"g","isGroup":true,"isReadOnly":false,"unreadCount":0,'
            b'"timestamp":1,"pinned":false,"isMuted":false,"groupMetadata":{"size":0,"participants":['
        )
        n = (room - len(group) - 3 + 1) // 3
        return head + group + b",".join([b"{}"] * n) + b"]}}" + tail
    if case == "minimal":
        chats, used, i = [], 0, 0
        while True:
            chat = (_CHAT % (10**11 + i)).encode()
            if used + len(chat) + 1 > room:
                break
            chats.append(chat)
            used += len(chat) + 1
            i += 1
        return head + b",".join(chats) + tail
    if case == "worst":
        # As many items as the item count lets through, each as costly to decode as found:
        # distinct unknown keys with distinct two-character values, beside one bad chat that
        # sends the answer to json.loads.
        cap = size // 128 - 16  # budget.MAX_BYTES_PER_ITEM_CAP
        members = b",".join(b'"k%07d":"%02x"' % (i, i % 256) for i in range(cap))
        return b'{"result":"OK","data":[{}],' + members + b"}"
    if case == "concurrent":
        small = head + (_CHAT % 79990000000).encode() + tail
        return small[:-1] + b" " * (size - len(small)) + small[-1:]
    raise ValueError(case)


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    split = False
    barrier: threading.Barrier | None = None
    barrier_wait = 5.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        half = len(self.body) // 2 if self.split else len(self.body)
        self.wfile.write(self.body[:half])
        if self.barrier is not None:
            # Every answer half-sent: all are in flight. A poll that waits for a budget before
            # reading on breaks the barrier: then send on anyway.
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=self.barrier_wait)
        self.wfile.write(self.body[half:])

    def log_message(self, *args: object) -> None:
        pass


_CHILD = r"""
import re, sys, threading, time, json
from pathlib import Path
from exporter import memory
from exporter.whatsgate.client import WhatsGateClient, PollError

memory.limit_arenas()  # as the exporter does before its workers start
if hasattr(memory, "fix_mmap_threshold"):  # a tree from before it (BENCH_REPO) has none
    memory.fix_mmap_threshold()

def hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

url, accounts, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = WhatsGateClient(url, "bench-key", timeout=120, max_response_size=size, pool_size=accounts)
start = hwm()
outcomes = []
def poll(i):
    try:
        chats = client.get_chats(f"acc-{i}")
        outcomes.append(f"ok: {len(chats)} chats")
    except PollError as exc:
        outcomes.append(f"PollError {exc}")
threads = [threading.Thread(target=poll, args=(i,)) for i in range(accounts)]
t0 = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"start_mb": start, "peak_mb": hwm(), "seconds": time.monotonic() - t0,
                  "outcomes": sorted(set(outcomes))}))
"""


def run(case: str, size: int, accounts: int, barrier_wait: float = 5.0) -> dict[str, object]:
    """Serve ``case`` answers of ``size`` bytes to ``accounts`` polls at once in a child; its figures."""
    _Handler.body = body_for(case, size)
    _Handler.split = case == "concurrent"
    _Handler.barrier_wait = barrier_wait
    _Handler.barrier = threading.Barrier(accounts) if case == "concurrent" else None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        polls = accounts if case == "concurrent" else 1
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, url, str(polls), str(size)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,  # python -c puts the working directory first on sys.path
            timeout=600,
            check=False,
        )
        if out.returncode != 0:
            return {"error": out.stderr[-2000:]}
        result: dict[str, object] = json.loads(out.stdout)
        result["body_mb"] = len(_Handler.body) / 2**20
        return result
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", default="all")
    parser.add_argument("--size-mib", type=float, default=64)
    parser.add_argument("--accounts", type=int, default=8)
    args = parser.parse_args()
    size = int(args.size_mib * 2**20)
    cases = ["empty", "participants", "minimal", "worst", "concurrent"] if args.case == "all" else [args.case]
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    print(f"commit {head.stdout.strip()}, {time.strftime('%Y-%m-%d')}")
    for case in cases:
        r = run(case, size, args.accounts)
        if "error" in r:
            print(f"{case:13} child failed: {r['error']}")
            continue
        print(
            f"{case:13} body {r['body_mb']:.0f} MB  peak RSS {r['peak_mb']:.0f} MB "
            f"(start {r['start_mb']:.0f} MB)  {r['seconds']:.1f}s  {'; '.join(r['outcomes'])}"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
