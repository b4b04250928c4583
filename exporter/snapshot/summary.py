"""Turning one poll's chats into per-account numbers, and choosing which chats get series."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from ..model import CHAT_TYPES, Chat


@dataclass(frozen=True, slots=True)
class TypeSummary:
    """Per-account aggregates for one chat type. They always count every chat."""

    chats: int = 0
    chats_unread: int = 0
    unread_messages: int = 0
    read_only: int = 0
    muted: int = 0
    pinned: int = 0


def summarize(chats: Iterable[Chat]) -> dict[str, TypeSummary]:
    counts = {t: [0, 0, 0, 0, 0, 0] for t in CHAT_TYPES}
    for chat in chats:
        c = counts[chat.chat_type]
        c[0] += 1
        c[1] += chat.unread > 0
        c[2] += chat.unread
        c[3] += chat.read_only
        c[4] += chat.muted
        c[5] += chat.pinned
    return {t: TypeSummary(*c) for t, c in counts.items()}


def priority(chat: Chat) -> tuple[int, int]:
    """The order in which chats keep their per-chat series: most unread, then most recent."""
    return (-chat.unread, -chat.last_activity)


@dataclass(frozen=True, slots=True)
class Selection:
    chats: tuple[Chat, ...]
    filtered: int
    over_limit: int


def select_chats(
    chats: Sequence[Chat],
    selects: Callable[[str, str], bool],
    max_per_account: int,
    waiting: Collection[str] = (),
) -> Selection:
    """Pick the chats that get per-chat series: filter by the include/exclude rules, then cap.

    ``selects(chat_id, name)`` says whether a chat passes the filters; ``max_per_account`` 0 means no cap.
    Over the cap, chats whose id is in ``waiting`` (customers waiting for an answer) are kept first.
    """
    kept = [c for c in chats if selects(c.id, c.name)]
    filtered = len(chats) - len(kept)
    over = 0
    if max_per_account and len(kept) > max_per_account:
        if waiting:
            kept.sort(key=lambda chat: (chat.id not in waiting, *priority(chat)))
        else:
            kept.sort(key=priority)
        over = len(kept) - max_per_account
        del kept[max_per_account:]
    return Selection(chats=tuple(kept), filtered=filtered, over_limit=over)
