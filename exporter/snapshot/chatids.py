"""Sets and maps of chat ids kept between polls: one entry per chat of every account.

An account's selected chats (the snapshot's) and counted chats (the events poll's index) are
read only by lookups, a few per message of the event log, and are rebuilt whole at every
get-chats poll. A dict or set keeps a hash table of its ids, several times the size of a tuple
of them; so these keep their ids sorted in a tuple (and a chat type as one byte each) and look
one up by bisection (bench/RESULTS.md, "Memory at 10 x 10,000").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Set

from ..model import CHAT_TYPES


def _find(ids: tuple[str, ...], key: object) -> int:
    """The index of ``key`` in the sorted ``ids``, or -1."""
    if not isinstance(key, str):
        return -1
    i = bisect_left(ids, key)
    return i if i < len(ids) and ids[i] == key else -1


class ChatIds(Set[str]):
    """A set of chat ids, read only (equal to any set of the same ids)."""

    __slots__ = ("_ids",)

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids = tuple(sorted(set(ids)))

    def __contains__(self, key: object) -> bool:
        return _find(self._ids, key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ChatIds({list(self._ids)!r})"


class ChatTypes(Mapping[str, str]):
    """Chat id -> chat type (one of model.CHAT_TYPES), read only."""

    __slots__ = ("_codes", "_ids")

    def __init__(self, types: Mapping[str, str]) -> None:
        self._ids = tuple(sorted(types))
        self._codes = bytes(map(CHAT_TYPES.index, map(types.__getitem__, self._ids)))

    def __getitem__(self, key: str) -> str:
        i = _find(self._ids, key)
        if i < 0:
            raise KeyError(key)
        return CHAT_TYPES[self._codes[i]]

    def __contains__(self, key: object) -> bool:
        return _find(self._ids, key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ChatTypes({dict(self)!r})"
