"""The small figures behind design choices that comments used to state (issue 18, item 8).

In one process, no exporter started: the sizes of one 10,000-chat account's get-chats answer,
records and per-chat text; deflating that text with ISA-L and with zlib, and its CRC-32; the
direct renderer's number formatting against prometheus-client's; building a schedule's days back
to 1970; hmac.digest against hmac.new. Timings are the best of
``--repeat`` runs. bench/RESULTS.md records what it printed, with the date.

    python bench/bench_figures.py [--chats 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import json
import random
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the reference ChatCollector

from chat_collector import ChatCollector
from prometheus_client.utils import floatToGoString

from exporter.metrics import fastrender
from exporter.metrics.render import DEFLATE, render_plain
from exporter.model import Account, ChatsConfig
from exporter.simulator.data import BENCH_NOW, make_chats
from exporter.snapshot.schedule import Schedule
from exporter.snapshot.state import ChatData
from exporter.whatsgate.parse import parse_chats


def best(fn: Callable[[], object], repeat: int, number: int = 1) -> float:
    """Seconds per call, best of ``repeat`` runs of ``number`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - started) / number)
    return min(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def mb(size: float) -> str:
    return f"{size / 1e6:.3g} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chats", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    n, repeat = args.chats, args.repeat

    # The simulator's chats, as bench_cycles.py polls them (10 % groups of 20 participants).
    wire = make_chats(random.Random(1), n, 0.1, (20, 20), BENCH_NOW)
    answer = json.dumps({"result": "OK", "data": wire}, separators=(",", ":")).encode()
    print(f"get-chats answer of {n} chats: {mb(len(answer))} ({len(answer) / n:.0f} bytes a chat)")

    # What the parsed chats hold once the answer is gone: records and their strings.
    gc.collect()
    tracemalloc.start()
    chats = parse_chats(answer)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"records of {n} parsed chats: {mb(held)} ({held / n:.0f} bytes a chat)")

    account = Account("79990000001", "Support")
    families = [(name, b"".join(pieces)) for name, _, pieces in fastrender.render_chats(account, chats)]
    sizes = [len(text) for _, text in families]
    plain = b"".join(text for _, text in families)
    print(f"per-chat text: {mb(len(plain))} in {len(families)} families, the largest {mb(max(sizes))}")

    decode = best(lambda: parse_chats(answer), repeat)
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), BENCH_NOW)
    direct = best(
        lambda: [
            b"".join(p)
            for _, _, p in fastrender.render_chats(account, data.selection.chats, data.wait_by_chat)
        ],
        repeat,
    )
    reference = best(lambda: list(render_plain(ChatCollector(account, data))), repeat)
    print(
        f"per-chat families: fastrender {ms(direct)}, ChatCollector + generate_latest {ms(reference)};"
        f" decoding the answer (parse_chats) {ms(decode)}"
    )

    isal = DEFLATE
    for name, module in (("isal", isal), ("zlib", zlib)):
        if name == "isal" and module is zlib:
            print("isal: not installed")
            continue

        def deflate(module=module) -> bytes:  # type: ignore[no-untyped-def]
            c = module.compressobj(1, module.DEFLATED, -15)
            return c.compress(plain) + c.flush(module.Z_SYNC_FLUSH)

        packed = deflate()
        crc = best(lambda module=module: module.crc32(plain), repeat)  # type: ignore[misc]
        print(
            f"{name} deflate level 1 of the per-chat text: {ms(best(deflate, repeat))}, {mb(len(packed))}"
            f" ({len(plain) / len(packed):.1f}x smaller); CRC-32 of it: {ms(crc)}"
        )

    stamps = [float(BENCH_NOW - i * 37) for i in range(n)]
    direct = best(lambda: fastrender.numbers(stamps), repeat)
    each = best(lambda: [floatToGoString(v) for v in stamps], repeat)
    print(f"{n} Unix times as text: fastrender.numbers {ms(direct)}, floatToGoString each {ms(each)}", end="")
    print(f" ({each / direct:.1f}x)")
    one = best(lambda: fastrender.number(1_734_642_665), repeat, 20_000)
    ref = best(lambda: floatToGoString(float(1_734_642_665)), repeat, 20_000)
    print(
        f"one number: fastrender.number {one * 1e6:.3g} µs,"
        f" floatToGoString {ref * 1e6:.3g} µs ({ref / one:.1f}x)"
    )

    def far_past() -> None:
        weekdays = MappingProxyType({d: ((540, 1080),) for d in range(5)})
        Schedule("office", "Europe/Moscow", weekdays, frozenset()).open_seconds(0.0, float(BENCH_NOW))

    print(f"a schedule asked about a wait since 1970: {ms(best(far_past, repeat))}")
    office = Schedule(
        "office", "Europe/Moscow", MappingProxyType({d: ((540, 1080),) for d in range(5)}), frozenset()
    )
    starts = [float(BENCH_NOW - i * 97) for i in range(n)]  # waits of up to ~11 days
    office.open_seconds_to(starts, float(BENCH_NOW))  # the days built once, as after the first poll
    batched = best(lambda: office.open_seconds_to(starts, float(BENCH_NOW)), repeat)
    single = best(lambda: [office.open_seconds(s, float(BENCH_NOW)) for s in starts], repeat)
    print(f"{n} waits' open seconds: open_seconds_to {ms(batched)}, open_seconds each {ms(single)}")

    key, value = b"k" * 32, b"79991234567@c.us"
    one_shot = best(lambda: hmac.digest(key, value, "sha256"), repeat, 20_000)
    obj = best(lambda: hmac.new(key, value, hashlib.sha256).digest(), repeat, 20_000)
    print(
        f"hmac of a chat id: hmac.digest {one_shot * 1e6:.3g} µs,"
        f" hmac.new {obj * 1e6:.3g} µs ({obj / one_shot:.1f}x)"
    )


if __name__ == "__main__":
    main()
