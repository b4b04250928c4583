"""What waiting time costs the exporter at 10 accounts x 10,000 chats: memory and poll time.

Each account's poll ends in ``ChatData.build`` (summaries, per-chat selection, and the
waiting tracker: advance the open waits, compute every current wait, observe reads). This
compares it with the default ``waiting:`` config against one whose ``include`` matches no
chat, so that the tracker runs but holds and computes nothing: the difference is what
waiting time costs. The chats are the simulator's benchmark data (about 30% unread, last
activity spread over 30 days, a few muted and read-only); polls alternate between two
answers in which 5% of the unread chats were read and as many others got new messages, so
every poll starts, keeps and ends waits. ``--schedule`` counts waits in office hours.

Memory is what the 10 accounts' snapshots hold beyond their chats (tracemalloc, after the
chats are parsed); time is per poll of one account, median of ``--repeat`` runs of
``--polls`` polls each (the machine is noisy).

    python bench/bench_waiting_cost.py [--accounts 10] [--chats 10000] [--repeat 5] [--schedule]
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import time
import tracemalloc
from dataclasses import replace

from common import arguments

from exporter.config.schedules import parse_schedules
from exporter.config.waiting import parse_waiting
from exporter.model import ChatsConfig
from exporter.simulator.data import BENCH_NOW, make_chats
from exporter.snapshot.schedule import Schedule
from exporter.snapshot.state import ChatData
from exporter.snapshot.waiting import WaitingConfig
from exporter.whatsgate.parse import parse_chats

Answers = tuple[list, list]
OFFICE = {
    "office": {
        "timezone": "Europe/Moscow",
        "hours": {d: ["09:00-13:00", "14:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2024-12-31"],
    }
}


def answers(rng: random.Random, chats: int) -> Answers:
    """Two successive get-chats answers of one account (parsed), as the poller has them."""
    first = make_chats(rng, chats, 0.2, (5, 5), BENCH_NOW)
    second = [dict(c) for c in first]
    unread = [c for c in second if c["unreadCount"] > 0]
    idle = [c for c in second if c["unreadCount"] == 0]
    for c in rng.sample(unread, len(unread) // 20):
        c["unreadCount"] = 0
    for c in rng.sample(idle, len(unread) // 20):
        c["unreadCount"], c["timestamp"] = 1, BENCH_NOW + 30
    first_answer, second_answer = ({"result": "OK", "data": data} for data in (first, second))
    return parse_chats(json.dumps(first_answer).encode()), parse_chats(json.dumps(second_answer).encode())


def poll_times(data: list[Answers], waiting: WaitingConfig, schedule: Schedule | None, polls: int) -> float:
    """Seconds per poll of one account, the steady state (waits already open)."""
    rules = ChatsConfig()
    previous = [ChatData.build(a, rules, BENCH_NOW, waiting, schedule).waits for a, _ in data]
    started = time.perf_counter()
    for n in range(polls):
        for i, pair in enumerate(data):
            built = ChatData.build(
                pair[(n + 1) % 2], rules, BENCH_NOW + 60 * (n + 1), waiting, schedule, previous[i]
            )
            previous[i] = built.waits
    return (time.perf_counter() - started) / (polls * len(data))


def held_bytes(data: list[Answers], waiting: WaitingConfig, schedule: Schedule | None) -> tuple[int, int]:
    """(bytes the accounts' snapshots hold beyond their chats, open waits), after two polls each."""
    rules = ChatsConfig()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = []
    for first, second in data:
        built = ChatData.build(first, rules, BENCH_NOW, waiting, schedule)
        held.append(ChatData.build(second, rules, BENCH_NOW + 60, waiting, schedule, built.waits))
        del built
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, sum(len(d.waits.since) for d in held)


def main() -> None:
    parser = arguments(__doc__, accounts=10, chats=10_000, repeat=5, polls=3)
    parser.add_argument("--schedule", action="store_true", help="count waits in office hours (Europe/Moscow)")
    args = parser.parse_args()
    rng = random.Random(0)
    data = [answers(rng, args.chats) for _ in range(args.accounts)]
    schedule = parse_schedules(OFFICE)["office"] if args.schedule else None
    waiting = replace(parse_waiting(None, {}), schedule="office" if schedule else None)
    nothing = replace(waiting, include=parse_waiting({"include": ["^$nothing"]}, {}).include)

    mem_on, waits = held_bytes(data, waiting, schedule)
    mem_off, none = held_bytes(data, nothing, schedule)
    assert none == 0 and waits > 0
    on = statistics.median(poll_times(data, waiting, schedule, args.polls) for _ in range(args.repeat))
    off = statistics.median(poll_times(data, nothing, schedule, args.polls) for _ in range(args.repeat))
    where = "office hours" if schedule else "24/7"
    print(f"{args.accounts} accounts x {args.chats:,} chats, {waits:,} open waits, {where}")
    print(f"  memory held by the snapshots: {mem_on / 2**20:.1f} MiB with waiting, {mem_off / 2**20:.1f} MiB")
    extra = mem_on - mem_off
    print(f"    without: waiting costs {extra / 2**20:.1f} MiB ({extra / waits:.0f} B per open wait)")
    print(f"  ChatData.build per account poll (median of {args.repeat}):")
    print(f"    {on * 1e3:.1f} ms with waiting, {off * 1e3:.1f} ms without: +{(on - off) * 1e3:.1f} ms")
    print(f"    per poll cycle of all {args.accounts} accounts: +{(on - off) * args.accounts * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
