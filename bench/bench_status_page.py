"""Cost of rendering the status page at ``/``: 10 accounts x 10,000 chats, ~30% of them waiting.

The page is rendered per request, so its cost must not grow much with the number of
chats: per account it reads the summary and the ten longest waits, and makes one pass
over the chats for those ten names. The states are built as a poll builds them
(``ChatData.build`` with the office schedule on half the accounts), with one firing
alert per waiting chat (the worst case: a ``chat_waiting`` threshold every wait breaches);
figures are medians of ``--repeat`` renders.

    python bench/bench_status_page.py [--accounts 10] [--chats 10000] [--waiting 0.3] [--repeat 21]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench the working tree

from exporter.alerting.evaluator import Alert
from exporter.config.schedules import parse_schedules
from exporter.model import Account, Chat, ChatsConfig
from exporter.page.status import status_page
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.waiting import WaitingConfig

NOW = 1_780_000_000.0
OFFICE = parse_schedules(
    {
        "office": {
            "timezone": "Europe/Moscow",
            "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        }
    }
)["office"]


def account_state(n: int, chats: int, waiting: float, rng: random.Random) -> AccountState:
    items = [
        Chat(
            id=f"7999{n:02d}{i:06d}@c.us",
            name=f"Customer <{i}> 😀",
            is_group=i % 10 == 0,
            read_only=False,
            unread=rng.randint(1, 5) if rng.random() < waiting else 0,
            last_activity=int(NOW - rng.uniform(0, 7 * 86400)),
            pinned=False,
            muted=False,
        )
        for i in range(chats)
    ]
    schedule = OFFICE if n % 2 else None
    data = ChatData.build(items, ChatsConfig(), NOW, WaitingConfig(), schedule)
    return AccountState(Account(f"W{n}", f"account-{n}")).succeeded(data, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--waiting", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    rng = random.Random(1)
    states = [account_state(n, args.chats, args.waiting, rng) for n in range(args.accounts)]
    # As a chat_waiting threshold at 0s would have it: one firing alert per waiting chat.
    alerts = [
        Alert(
            labels=tuple(
                sorted(
                    {
                        "account": state.account.name,
                        "alertname": "CustomerWaiting",
                        "chat_id": wait.chat_id,
                        "chat_type": wait.chat_type,
                        "severity": "warning",
                        "whatsapp_id": state.account.whatsapp_id,
                    }.items()
                )
            ),
            annotations=(("summary", f"Customer on {state.account.name} has waited {wait.seconds:.0f}s"),),
            value=wait.seconds,
            active_since=NOW - 60,
            fired_at=NOW - 60,
        )
        for state in states
        if state.data
        for wait in state.data.waiting
    ]
    waits = sum(len(s.data.waiting) for s in states if s.data)
    print(f"status page: {args.accounts} accounts x {args.chats} chats, {waits} waiting in all")
    for label, given in (("no alerts", []), (f"{len(alerts)} alerts firing", alerts)):
        times = []
        page = ""
        for _ in range(args.repeat):
            start = time.perf_counter()
            page = status_page(states, given, NOW + 5, "/metrics", "bench")
            times.append(time.perf_counter() - start)
        print(
            f"  {label}: median {statistics.median(times) * 1000:.1f} ms,"
            f" max {max(times) * 1000:.1f} ms per render, {len(page.encode()) / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
