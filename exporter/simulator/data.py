"""The simulator's data: accounts, chats, groups and names, generated from a seed.

``bench_accounts`` must keep giving byte-identical chats for a seed (benchmarks and golden
tests compare them), so the order of random draws here is frozen: add new draws only in new
functions, never between existing ones.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

STATUS_NAMES = {"READY": "Ready", "AUTH": "Waiting for authorization"}
# The simulator's API key (X-Api-Key), public: it guards nothing. It must not occur in any
# account id or name, or redacting it from logs would mangle them ("<secret>-sales").
DEFAULT_API_KEY = "sim-key-7c41e09b"
DEMO_ACCOUNTS = (
    ("demo-support", "Support line"),
    ("demo-sales", "Sales line"),
    ("demo-community", "Community"),
)
BENCH_NOW = 1_735_689_600  # benchmark timestamps are fixed so one seed always gives the same bytes

# fmt: off
_FIRST = ("Anna", "Boris", "Chen", "Dmitry", "Elena", "Fatima", "Giorgi", "Hana", "Ivan", "José",
          "Kemal", "Lena", "Maria", "Nikolai", "Olga", "Pavel", "Rustam", "Sofia", "Timur", "Yulia")
_LAST = ("Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Novak", "García", "Öztürk", "Kim", "Sato",
         "Müller", "Okafor", "Nguyen")
_GROUP = (("Sales", "Support", "Family", "Parents", "Football", "Book", "Night shift", "Logistics",
           "Marketing", "Neighbours", "Alumni"), ("team", "chat", "club", "news", "ops"))
# fmt: on
# (name, is group, forced fields): label escaping, bidi text, and each flag at least once.
SPECIALS: list[tuple[str, bool, dict[str, Any]]] = [
    ("Мама 👩‍👧 ❤️", False, {"pinned": True, "unreadCount": 2}),
    ("مجموعة العائلة", True, {"isMuted": True, "muteExpiration": 28800}),
    ("שלום עולם", False, {"isReadOnly": True}),
    ('The "Quoted" Club', True, {"pinned": True, "unreadCount": 12}),
    ("C:\\Users\\backslash", False, {"isMuted": True, "muteExpiration": 0}),
    ("Line one\nLine two 🚀", True, {"isReadOnly": True, "unreadCount": 4}),
]


@dataclass
class SimAccount:
    """One WhatsGate session; ``chats`` are raw API objects, served exactly as stored."""

    whatsapp_id: str
    name: str
    status: str = "READY"
    chats: list[dict[str, Any]] = field(default_factory=list)


def session(index: int, account: SimAccount) -> dict[str, Any]:
    """One ``sessions-get`` record, shaped like the documented example."""
    ready = account.status == "READY"
    return {
        "id": index,
        "name": account.name,
        "unique_id": account.whatsapp_id,
        "status": account.status,
        "status_name": STATUS_NAMES.get(account.status, str(account.status).title()),
        "callback": "",
        "date_add": "2024-01-01 10:00:00",
        "pushname": account.name if ready else "",
        "wid": own_number(index) if ready else "",
        "qr_link": "",
    }


def own_number(index: int) -> str:
    """The WhatsApp id of the ``index``-th session (from 1): the sender of its messages."""
    return f"7999{index:07d}@c.us"


def new_chat(chat_id: str, name: str | None, now: int, members: list[str]) -> dict[str, Any]:
    """A chat that appears when a message arrives in it; a group (``@g.us``) has ``members``."""
    chat: dict[str, Any] = {
        "id": chat_id,
        "name": name if name is not None else chat_id.partition("@")[0],
        "isGroup": chat_id.endswith("@g.us"),
        "isReadOnly": False,
        "unreadCount": 0,
        "timestamp": now,
        "pinned": False,
        "isMuted": False,
        "muteExpiration": 0,
    }
    if chat["isGroup"]:
        people = [{"id": m, "isAdmin": i == 0, "isSuperAdmin": i == 0} for i, m in enumerate(members)]
        chat["groupMetadata"] = {
            "id": chat_id,
            "creation": now,
            "owner": members[0] if members else "",
            "size": len(members),
            "participants": people,
        }
    return chat


def _unread(rng: random.Random) -> int:
    r = rng.random()
    return 0 if r < 0.7 else rng.randint(1, 5) if r < 0.93 else rng.randint(6, 300)


def participants(rng: random.Random, count: int) -> list[dict[str, Any]]:
    ids = [f"79{rng.randrange(10**9):09d}@c.us" for _ in range(count)]
    return [
        {"id": pid, "isAdmin": i == 0 or rng.random() < 0.15, "isSuperAdmin": i == 0}
        for i, pid in enumerate(ids)
    ]


def chat(
    rng: random.Random,
    chat_id: str,
    name: str,
    now: int,
    members: list[dict[str, Any]] | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """A chat as ``get-chats`` returns it; a group when ``members`` is given."""
    muted = rng.random() < 0.15
    chat = {
        "id": chat_id,
        "name": name,
        "isGroup": members is not None,
        "isReadOnly": rng.random() < 0.05,
        "unreadCount": _unread(rng),
        "timestamp": now - rng.randrange(30 * 86400),
        "pinned": rng.random() < 0.05,
        "isMuted": muted,
        "muteExpiration": rng.choice((0, 3600, 28800)) if muted else 0,
    }
    if members is not None:
        chat["groupMetadata"] = {
            "id": chat_id,
            "creation": now - rng.randrange(86400, 3 * 365 * 86400),
            "owner": members[0]["id"] if members else "",
            "size": len(members) if size is None else size,
            "participants": members,
        }
    return chat


def make_chats(
    rng: random.Random, count: int, group_fraction: float, sizes: tuple[int, int], now: int
) -> list[dict[str, Any]]:
    base = rng.randrange(10**8)
    groups = set(rng.sample(range(count), round(count * group_fraction)))
    chats = []
    for i in range(count):
        if i in groups:
            name = f"{rng.choice(_GROUP[0])} {rng.choice(_GROUP[1])}"
            chats.append(
                chat(rng, f"1203630{base + i:011d}@g.us", name, now, participants(rng, rng.randint(*sizes)))
            )
        else:
            digits = f"{rng.randrange(10**7):07d}"
            name = (
                f"+7 999 {digits[:3]}-{digits[3:5]}-{digits[5:]}"
                if rng.random() < 0.15
                else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            )
            chats.append(chat(rng, f"79{base + i:09d}@c.us", name, now))
    return chats


def demo_accounts(rng: random.Random, now: int) -> list[SimAccount]:
    """Three accounts of 10-40 chats whose names stress label escaping and bidi text."""
    accounts = []
    for n, (wid, name) in enumerate(DEMO_ACCOUNTS):
        specials = []
        for i, (title, group, forced) in enumerate(SPECIALS[2 * n : 2 * n + 2]):
            members = participants(rng, rng.randint(3, 9)) if group else None
            chat_id = f"1203630{n}000000000{i}@g.us" if group else f"7999{n}00000{i}@c.us"
            specials.append(chat(rng, chat_id, title, now, members) | forced)
        if n == 2:  # like the documented example, size disagrees with the participant list
            specials.append(
                chat(rng, "120363099999999999@g.us", "Announcements", now, participants(rng, 6), size=0)
            )
        chats = make_chats(rng, rng.randint(10, 40) - len(specials), 0.25, (3, 12), now)
        for special in specials:
            chats.insert(rng.randint(0, len(chats)), special)
        accounts.append(SimAccount(wid, name, chats=chats))
    return accounts


def bench_accounts(
    count: int, chats: int, group_fraction: float, members: int, seed: int
) -> tuple[list[SimAccount], Iterator[None]]:
    """Accounts with empty chats, and a generator that fills them in order, one per step.

    Filling is deferred so that 10,000 accounts start at once (``sessions-get`` needs no chats),
    while one seed still gives the same chats: one random stream is consumed account by account.
    """
    rng = random.Random(seed)
    built = [SimAccount(f"bench-{i:02d}", f"Bench line {i:02d}") for i in range(count)]

    def fill() -> Iterator[None]:
        for account in built:
            account.chats = make_chats(rng, chats, group_fraction, (members, members), BENCH_NOW)
            yield

    return built, fill()
