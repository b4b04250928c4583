"""Messages outside the demo's support line: a past for the chats, churn, and benchmark volume.

All of it goes through the accounts' logs (log.py), so unread counts, events and history agree.
Each function draws from the random stream it is given and from no other.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import Any

from .log import AccountLog

REPLIED_AFTER = (60, 1800)  # an answered chat: our answer this long after the customer's message
EARLIER = (3600, 2 * 86400)  # the exchange before a wait: this long before it


def prehistory(
    rng: random.Random,
    chats: list[dict[str, Any]],
    log: AccountLog,
    unanswered: Collection[str] = (),
) -> None:
    """Gives every well-formed chat a past that ends in its ``unreadCount`` and ``timestamp``.

    An unread chat: our message, then its unread messages up to ``timestamp``. A read chat:
    the customer's message, then our answer at ``timestamp``; for ids in ``unanswered``, our
    message and then the customer's at ``timestamp``, read but not answered. Read-only chats
    only receive. The messages are logged in time order, as if they had happened.
    """
    plan: list[tuple[int, int, dict[str, Any], bool, str | None]] = []
    unread: dict[str, int] = {}
    for chat in chats:
        if type(chat.get("unreadCount")) is not int or type(chat.get("timestamp")) is not int:
            continue
        if not isinstance(chat.get("id"), str):
            continue
        ts, n = chat["timestamp"], chat["unreadCount"]
        members = [p["id"] for p in chat.get("groupMetadata", {}).get("participants", []) if "id" in p]
        steps: list[tuple[int, bool]]
        if chat.get("isReadOnly"):
            steps = [(ts - 60 * i, False) for i in reversed(range(max(n, 1)))]
        elif n:
            spread = min(60, 300 // n)
            first = ts - spread * (n - 1)
            steps = [(first - rng.randint(*EARLIER), True)]
            steps += [(first + spread * i, False) for i in range(n)]
        elif chat["id"] in unanswered:
            steps = [(ts - rng.randint(*EARLIER), True), (ts, False)]
        else:
            steps = [(ts - rng.randint(*REPLIED_AFTER), False), (ts, True)]
        for t, ours in steps:
            author = rng.choice(members) if members and not ours else None
            plan.append((t, len(plan), chat, ours, author))
        unread[chat["id"]] = n
        chat["unreadCount"] = 0
    plan.sort(key=lambda step: step[:2])
    for t, _, chat, ours, author in plan:
        if ours:
            log.outgoing(chat, t)
        else:
            log.incoming(chat, t, author=author)
    for chat in chats:
        if unread.get(str(chat.get("id")), 1) == 0:
            log.read(chat)


def churn(rng: random.Random, chats: list[dict[str, Any]], now: float, log: AccountLog) -> None:
    """Live-looking traffic for ``dynamic`` simulators outside the demo; reads grow with backlog."""
    chats = [c for c in chats if type(c.get("unreadCount")) is int and isinstance(c.get("id"), str)]
    if not chats:
        return
    busy = rng.sample(chats, k=min(len(chats), rng.randint(1, 3)))
    for chat in busy:
        for _ in range(rng.randint(1, 3)):
            log.incoming(chat, now)
    unread = [c for c in chats if c["unreadCount"] and all(c is not b for b in busy)]
    if unread and rng.random() < 0.35:
        log.read(rng.choice(unread))


def volume(
    rng: random.Random, chats: list[dict[str, Any]], log: AccountLog, count: int, since: float, now: float
) -> None:
    """``count`` messages spread over (since, now], to random chats, six in ten incoming."""
    chats = [c for c in chats if type(c.get("unreadCount")) is int and isinstance(c.get("id"), str)]
    if not chats or count <= 0:
        return
    span = max(0.0, now - since)
    for i, chat in enumerate(rng.choices(chats, k=count), 1):
        if rng.random() < 0.6:
            log.incoming(chat, since + span * i / count)
        else:
            log.outgoing(chat, since + span * i / count)
