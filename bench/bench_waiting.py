"""Cost of the waiting tracker per poll, at 10,000 chats with about 30% unread, with and without a schedule.

Each poll the exporter advances an account's waits (``Waits.advance``) and then reads
them for the metrics (``Waits.waiting`` plus the per-type summaries). Polls here
alternate between two answers in which ~5% of the unread chats were read and as many
others got new messages, so every advance starts, keeps and ends waits; waits are
spread over the last 30 days, so a schedule's open time is asked for weeks back.
Figures are medians of ``--repeat`` runs (the machine is noisy); the schedule is warm
(its cached days built), as it is after the first poll.

    python bench/bench_waiting.py [--chats 10000] [--unread 0.3] [--repeat 9]
"""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from common import arguments

from exporter.config.schedules import parse_schedules
from exporter.model import Chat
from exporter.snapshot.schedule import Schedule
from exporter.snapshot.waiting import (
    DEFAULT_BUCKETS,
    WaitingConfig,
    Waits,
    longer_than_counts,
    oldest_by_type,
)

NOW = 1_780_000_000.0
OFFICE = {
    "timezone": "Europe/Moscow",
    "hours": {d: ["09:00-13:00", "14:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-05-01", "2026-05-11"],
}


def answers(chats: int, unread: float, rng: random.Random) -> tuple[list[Chat], list[Chat]]:
    """Two successive answers: in the second, 5% of the unread chats were read and others got messages."""
    base = []
    for i in range(chats):
        waiting = rng.random() < unread
        base.append(
            Chat(
                id=f"7999{i:07d}@c.us",
                name=f"Customer {i}",
                is_group=i % 10 == 0,
                read_only=False,
                unread=rng.randint(1, 5) if waiting else 0,
                last_activity=int(NOW - rng.uniform(0, 30 * 86400)),
                pinned=False,
                muted=i % 50 == 0,
            )
        )
    flipped = []
    for c in base:
        if c.unread and rng.random() < 0.05:
            c = Chat(c.id, c.name, c.is_group, c.read_only, 0, c.last_activity, c.pinned, c.muted)
        elif not c.unread and rng.random() < 0.05 * unread / (1 - unread):
            c = Chat(c.id, c.name, c.is_group, c.read_only, 1, int(NOW), c.pinned, c.muted)
        flipped.append(c)
    return base, flipped


def timed_ms(fn: Callable[[], object], repeat: int) -> str:
    """Median (and minimum, the figure least disturbed by other load) of ``repeat`` runs, in ms."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return f"{statistics.median(times):6.2f} ms (min {min(times):.2f})"


def main() -> None:
    args = arguments(__doc__, chats=10_000, unread=0.3, repeat=9).parse_args()

    rng = random.Random(12)
    first, second = answers(args.chats, args.unread, rng)
    config = WaitingConfig()
    office = parse_schedules({"office": OFFICE})["office"]
    print(f"{args.chats} chats, {sum(c.unread > 0 for c in first)} unread; medians of {args.repeat} runs")

    for label, schedule in (("24/7", None), ("office hours", office)):
        start = Waits.empty().advance(first, NOW, config, schedule)  # also warms the schedule's days
        state = {"waits": start, "flip": False}

        def advance(schedule: Schedule | None = schedule, state: dict = state) -> None:
            chats = second if state["flip"] else first
            state["flip"] = not state["flip"]
            state["waits"] = state["waits"].advance(chats, NOW + 60, config, schedule)

        def read(schedule: Schedule | None = schedule, start: Waits = start) -> None:
            current = start.waiting(NOW + 60, schedule)
            oldest_by_type(current)
            longer_than_counts(current, DEFAULT_BUCKETS)

        print(
            f"{label:>13}: advance {timed_ms(advance, args.repeat)}, "
            f"waiting()+summaries {timed_ms(read, args.repeat)} ({len(start.since)} waits)"
        )

    sinces = [c.last_activity + 0.5 for c in first]
    office.open_seconds(min(sinces), NOW)
    one_by_one = timed_ms(lambda: [office.open_seconds(s, NOW) for s in sinces], args.repeat)
    print(f"open_seconds: {len(sinces)} calls (since up to 30 days back): {one_by_one}")
    batched = timed_ms(lambda: office.open_seconds_to(sinces, NOW), args.repeat)
    print(f"open_seconds_to: the same {len(sinces)} starts in one call: {batched}")

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = Waits.empty().advance(first, NOW, config, None)
    after = tracemalloc.take_snapshot()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    tracemalloc.stop()
    print(f"memory: {size / 1e6:.2f} MB of tracker state for {len(kept.since)} open waits (chat ids shared)")


if __name__ == "__main__":
    main()
