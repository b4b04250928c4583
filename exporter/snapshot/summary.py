"""Turning one poll's chats into per-account numbers, and choosing which chats get series."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import astuple, dataclass, fields, replace
from itertools import compress
from operator import attrgetter

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


_FIELDS = tuple(f.name for f in fields(TypeSummary))


class Summary(Mapping[str, TypeSummary]):
    """Each chat type's aggregates, read only: every account keeps one between polls, as one
    record of both types' counts (a slot each), each type's :class:`TypeSummary` made when read,
    rather than a record a type beside it."""

    __slots__ = tuple(f"_{kind}_{name}" for kind in CHAT_TYPES for name in _FIELDS)

    def __init__(self, contacts: TypeSummary, groups: TypeSummary) -> None:
        for slot, count in zip(self.__slots__, (*astuple(contacts), *astuple(groups)), strict=True):
            object.__setattr__(self, slot, count)

    def __getitem__(self, chat_type: str) -> TypeSummary:
        if chat_type not in CHAT_TYPES:
            raise KeyError(chat_type)
        return TypeSummary(*(getattr(self, f"_{chat_type}_{name}") for name in _FIELDS))

    def __iter__(self) -> Iterator[str]:
        return iter(CHAT_TYPES)

    def __len__(self) -> int:
        return len(CHAT_TYPES)


def summarize(chats: Iterable[Chat]) -> Summary:
    """The aggregates of each chat type.

    Summed over all chats and over the groups alone (a tenth of them, typically); the
    contacts are the difference. Each sum is one C-level pass over a column: a Python
    loop per chat was most of a snapshot's cost at 10,000 chats, and splitting every
    column by type cost twice this.
    """
    chats = chats if isinstance(chats, Sequence) else list(chats)
    every = _sums(chats)
    groups = _sums(list(compress(chats, map(attrgetter("is_group"), chats))))
    contacts = TypeSummary(*(total - group for total, group in zip(every, groups, strict=True)))
    return Summary(contacts, TypeSummary(*groups))


def _sums(chats: Sequence[Chat]) -> tuple[int, ...]:
    """The fields of a TypeSummary, in its order, for these chats."""
    unread = list(map(attrgetter("unread"), chats))
    return (
        len(chats),
        len(unread) - unread.count(0),  # counts are never negative: the decoders reject those
        sum(unread),
        sum(map(attrgetter("read_only"), chats)),
        sum(map(attrgetter("muted"), chats)),
        sum(map(attrgetter("pinned"), chats)),
    )


def priority(chat: Chat) -> tuple[int, int]:
    """The order in which chats keep their per-chat series: most unread, then most recent."""
    return (-chat.unread, -chat.last_activity)


@dataclass(frozen=True, slots=True)
class Selection:
    chats: tuple[Chat, ...]
    filtered: int
    over_limit: int

    def released(self) -> Selection:
        """Its counts without its chats (ChatData.released): one record shared by every account
        none of whose chats was filtered or over the limit (most accounts, between polls)."""
        return _ALL_SELECTED if self.filtered == self.over_limit == 0 else replace(self, chats=())


_ALL_SELECTED = Selection((), 0, 0)


def select_chats(
    chats: Sequence[Chat],
    selects: Callable[[str, str], bool] | None,
    max_per_account: int,
    waiting: Collection[str] = (),
) -> Selection:
    """Pick the chats that get per-chat series: filter by the include/exclude rules, then cap.

    ``selects(chat_id, name)`` says whether a chat passes the filters (None: every chat does,
    with no call per chat); ``max_per_account`` 0 means no cap.
    Over the cap, chats whose id is in ``waiting`` (customers waiting for an answer) are kept first.
    """
    kept = list(chats) if selects is None else [c for c in chats if selects(c.id, c.name)]
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


def needed(chats: Sequence[Chat], selection: Selection, waiting: Collection[str]) -> tuple[Chat, ...]:
    """The chats worth keeping after a poll: those selected, and those waiting (in answer order).

    With a cap (``max_per_account``, 1000 by default) most of a large account's chats are
    neither, and keeping them would cost a record each until the next poll.
    """
    if len(selection.chats) == len(chats):
        return tuple(chats)
    keep = {chat.id for chat in selection.chats}
    return tuple(chat for chat in chats if chat.id in keep or chat.id in waiting)
