"""Sets and maps of chat ids kept between polls: one entry per chat of every account.

An account's selected chats (the snapshot's) and counted chats (the events poll's index) are
read only by lookups, a few per message of the event log, and are rebuilt whole at every
get-chats poll. A dict or set of ids keeps a hash table and a string object per id (and the
interpreter's table of interned strings an entry more); so these keep their ids joined in one
string, with where each ends and the low 32 bits of its hash (and a chat type as one byte each),
and look one up by bisecting those (bench/RESULTS.md, "Memory at 10 x 10,000"). The open waits are
kept the same way, each wait's chat type and start beside its id (:class:`WaitStarts`): an
account with 70 % of its chats unread keeps thousands of them between polls. While replies are
read, the selected and the counted chats, and the open waits, are views of one table
(:class:`ChatTable`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, Set
from itertools import accumulate, repeat
from operator import sub
from typing import TypeVar

from ..model import CHAT_TYPES

_S = TypeVar("_S")


def indices(values: Iterable[int], size: int) -> Sequence[int]:
    """``values`` (each below ``size``: positions in a table, or where strings end in one) kept
    for as long as a snapshot: a byte each when they fit one, in one block (a bytes object), not
    an array's two (its header and its data), which for a 20-chat account cost as much again."""
    values = list(values)  # bytes() would copy an array's buffer, not its values
    return bytes(values) if size <= 256 else array("I", values)


def _hash(chat_id: str) -> int:
    """The low 32 bits of Python's hash (never saved), half the room of the whole: ids that share
    them are told apart by their text, and among an account's 10,000 ids two share them about
    once in a hundred accounts."""
    return hash(chat_id) & 0xFFFFFFFF


def _by_hash(ids: Iterable[str]) -> tuple[list[int], list[str]]:
    """Those hashes, and distinct ``ids`` sorted by them (:func:`_hash`), ids sharing one by their
    text: so any table's ids are in the order of every table listing them (:meth:`WaitStarts.within`)."""
    ids = list(ids)
    pairs = sorted(zip([h & 0xFFFFFFFF for h in map(hash, ids)], ids, strict=True))
    return [h for h, _ in pairs], [i for _, i in pairs]


class _Joined:
    """Distinct ids in one string, in the order of their hashes (``_hashes``: :func:`_hash`);
    ``_ends[i]`` is where the i-th ends in it. A lookup bisects the hashes, then compares the
    text of each id with the same hash. Both columns are kept in one array (``_cols``, the
    hashes then the ends): every account keeps a table between polls, and for its 20 ids an
    array's header costs as much as their data."""

    __slots__ = ("_cols", "_text")

    def __init__(self, ids: Iterable[str]) -> None:
        """``ids``: distinct."""
        self._join(*_by_hash(ids))

    def _join(self, hashes: list[int], ordered: list[str]) -> None:
        """``ordered`` and ``hashes`` as :func:`_by_hash` gives them."""
        self._text = "".join(ordered)
        # Unsigned 32-bit offsets: the ids come from one answer, which max_response_size keeps
        # far below their range (an answer beyond would fail its poll with OverflowError here).
        self._cols = array("I", [*hashes, *accumulate(map(len, ordered))])

    @property
    def _hashes(self) -> array[int]:
        return self._cols[: len(self)]

    @property
    def _ends(self) -> array[int]:
        return self._cols[len(self) :]

    def _id(self, i: int) -> str:
        cols = self._cols
        n = len(cols) >> 1
        return self._text[cols[n + i - 1] if i else 0 : cols[n + i]]

    def _find(self, key: object) -> int:
        """The index of ``key``, or -1."""
        if type(key) is not str:  # a subclass may hash otherwise
            return -1
        cols, h = self._cols, _hash(key)
        n = len(cols) >> 1
        i = bisect_left(cols, h, 0, n)
        while i < n and cols[i] == h:
            if self._id(i) == key:
                return i
            i += 1
        return -1

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def _at(self, table: _Joined, where: array[int]) -> bool:
        """Whether ``table``'s ids at ``where`` are these: the same text, cut at the same lengths."""
        if where and where[-1] >= len(table):
            return False
        begins = list(map(table._begins().__getitem__, where))
        ends = list(map(table._ends.__getitem__, where))
        if list(map(sub, ends, begins)) != list(map(sub, self._ends, self._begins())):
            return False
        return self._text == "".join(map(table._text.__getitem__, map(slice, begins, ends)))

    def __iter__(self) -> Iterator[str]:
        return map(self._text.__getitem__, map(slice, self._begins(), self._ends))

    def _begins(self) -> array[int]:
        """Where each id starts in the joined text (each ends where the next begins)."""
        ends = self._ends
        return array("I", [0]) + ends[:-1] if ends else ends

    def __len__(self) -> int:
        return len(self._cols) >> 1


class ChatIds(_Joined, Set[str]):
    """A set of chat ids, read only (equal to any set of the same ids)."""

    __slots__ = ()

    def __init__(self, ids: Iterable[str] = ()) -> None:
        super().__init__(set(ids))

    def __repr__(self) -> str:
        return f"ChatIds({list(self)!r})"


# A code of a ChatTable's: the chat is listed but not counted (ChatTable.counted).
_NOT_COUNTED = 255


class ChatTable(_Joined, Set[str]):
    """Every chat id of an answer, each with its chat type if it counts: the events poll's chat
    index (which chats count, which do not) and the snapshot's selected chats as views of one
    table, not a table each (bench/RESULTS.md, "Memory at 10 x 10,000, sixth session"). As a
    set, the chats it lists: the selected chats when every chat is (:meth:`subset`)."""

    __slots__ = ("_codes",)

    @classmethod
    def _from_iterable(cls, ids: Iterable[_S]) -> frozenset[_S]:
        """What the set operators (``a - b``, ``a & b``) make: a plain set."""
        return frozenset(ids)

    def __init__(self, listed: Mapping[str, str | None]) -> None:
        """``listed``: chat id -> its chat type if it counts, else None."""
        hashes, ordered = _by_hash(listed)
        self._join(hashes, ordered)
        kinds = map(listed.__getitem__, ordered)
        self._codes = bytes([_NOT_COUNTED if kind is None else CHAT_TYPES.index(kind) for kind in kinds])

    def positions(self, ids: Iterable[str]) -> Sequence[int]:
        """Where each of ``ids`` (listed chats) is in this table."""
        return indices(map(self._find, ids), len(self))

    def ids(self, positions: Iterable[int]) -> list[str]:
        """The ids at ``positions`` (:meth:`positions`), in that order."""
        return list(map(self._id, positions))

    def counted(self) -> Mapping[str, str]:
        """Chat id -> chat type of the chats that count."""
        return _Counted(self)

    def subset(self, ids: Set[str]) -> Set[str] | None:
        """``ids`` as a view of this table (the table itself when they are all its chats, as a
        small account's selected chats are: no byte an id); None if one of them is not in it."""
        flags = bytes(map(ids.__contains__, self))
        if flags.count(1) != len(ids):
            return None
        return self if len(ids) == len(self) else _Subset(self, flags)

    def excluded(self) -> Set[str]:
        """The chats that do not count: their codes read in place, not copied as flags."""
        return _Excluded(self, self._codes)


class _Counted(Mapping[str, str]):
    __slots__ = ("_len", "_table")

    def __init__(self, table: ChatTable) -> None:
        self._table = table
        self._len = len(table) - table._codes.count(_NOT_COUNTED)

    def __getitem__(self, key: str) -> str:
        table = self._table
        i = table._find(key)
        if i < 0 or table._codes[i] == _NOT_COUNTED:
            raise KeyError(key)
        return CHAT_TYPES[table._codes[i]]

    def __iter__(self) -> Iterator[str]:
        table = self._table
        return (table._id(i) for i, code in enumerate(table._codes) if code != _NOT_COUNTED)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"counted({dict(self)!r})"


class _Subset(Set[str]):
    """The ids of a table whose flag is ``_MARK``: a byte each, beside a table kept anyway."""

    __slots__ = ("_flags", "_len", "_table")
    _MARK = 1

    def __init__(self, table: _Joined, flags: bytes) -> None:
        self._table, self._flags, self._len = table, flags, flags.count(self._MARK)

    @classmethod
    def _from_iterable(cls, ids: Iterable[_S]) -> frozenset[_S]:
        """What the set operators (``a - b``, ``a & b``) make: a plain set."""
        return frozenset(ids)

    def __contains__(self, key: object) -> bool:
        i = self._table._find(key)
        return i >= 0 and self._flags[i] == self._MARK

    def __iter__(self) -> Iterator[str]:
        table, mark = self._table, self._MARK
        return (table._id(i) for i, flag in enumerate(self._flags) if flag == mark)

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"subset({set(self)!r})"


class _Excluded(_Subset):
    """A chat table's chats that do not count, read from its codes (ChatTable.excluded)."""

    __slots__ = ()
    _MARK = _NOT_COUNTED


class WaitStarts(Mapping[str, tuple[str, float]]):
    """Chat id -> (chat type, start) of each open wait (waiting.Waits.since), read only: a wait
    costs its id's text, a hash, an end, a start and a byte, not a string, a tuple, a float and
    a hash table's entry. As a view of a table listing every one of its ids (:meth:`within`), a
    position there instead of the id's text, hash and end, and of its byte when the table's chat
    types are the waits' (a chat table of the same poll's)."""

    __slots__ = ("_codes", "_ids", "_starts", "_where")

    def __init__(self, since: Mapping[str, tuple[str, float]]) -> None:
        hashes, ordered = _by_hash(since)
        self._ids = _Joined.__new__(_Joined)
        self._ids._join(hashes, ordered)
        self._where: Sequence[int] | None = None  # each wait's position in _ids; None: its own
        entries = list(map(since.__getitem__, ordered))
        self._codes: bytes | None = bytes([CHAT_TYPES.index(kind) for kind, _ in entries])
        self._starts = array("d", [start for _, start in entries])

    def within(self, table: _Joined) -> WaitStarts | None:
        """These waits as a view of ``table``; None if it does not list each of their ids. Both are
        in the same order (:func:`_by_hash`), so each id's position is found by its hash, and all
        checked at once by their text."""
        own = self._ids
        if self._where is not None:  # a view already
            return None
        # A list's items are read faster than an array's (no int made per comparison).
        where = array("I", map(bisect_left, repeat(table._hashes.tolist()), own._hashes))
        if not own._at(table, where):
            # Missing, or an id shares its hash with another of the table's (see _hash), where
            # bisecting found the first: each looked up in turn, in the table's order still.
            found = list(map(table._find, own))
            if -1 in found:
                return None
            where = array("I", found)
        view = WaitStarts.__new__(WaitStarts)
        view._ids, view._where = table, indices(where, len(table))
        view._codes, view._starts = self._codes, self._starts
        if isinstance(table, ChatTable) and bytes(map(table._codes.__getitem__, where)) == self._codes:
            view._codes = None  # read in the table
        return view

    def _find(self, key: object) -> int:
        i, where = self._ids._find(key), self._where
        if where is None or i < 0:
            return i
        j = bisect_left(where, i)
        return j if j < len(where) and where[j] == i else -1

    def __getitem__(self, key: str) -> tuple[str, float]:
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        return CHAT_TYPES[self._code(i)], self._starts[i]

    def _code(self, i: int) -> int:
        """The ``i``-th wait's chat type as its index in CHAT_TYPES."""
        codes, table, where = self._codes, self._ids, self._where
        if codes is not None:
            return codes[i]
        assert isinstance(table, ChatTable) and where is not None  # only a view reads the table's
        return table._codes[where[i]]

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids) if self._where is None else map(self._ids._id, self._where)

    def __len__(self) -> int:
        return len(self._starts)

    def items(self) -> ItemsView[str, tuple[str, float]]:
        return _WaitItems(self)

    def at(self, i: int) -> tuple[str, str, float]:
        """The ``i``-th wait in this table's order (that of ``iter``): chat id, chat type, start."""
        where = self._where
        return self._ids._id(i if where is None else where[i]), CHAT_TYPES[self._code(i)], self._starts[i]

    def columns(self, order: Iterable[int]) -> tuple[Iterator[str], Iterator[str], Iterator[float]]:
        """The chat ids, chat types and starts of the waits at ``order``'s indices, in that order:
        one pass of built-in maps, with no call of this module's per wait."""
        order = list(order)
        ids = self._ids
        text, ends, begins = ids._text, ids._ends, ids._begins()
        at = order if self._where is None else list(map(self._where.__getitem__, order))
        chat_ids = map(text.__getitem__, map(slice, map(begins.__getitem__, at), map(ends.__getitem__, at)))
        kinds = map(CHAT_TYPES.__getitem__, map(self.codes.__getitem__, order))
        return chat_ids, kinds, map(self._starts.__getitem__, order)

    @property
    def starts(self) -> array[float]:
        """Every wait's start, in this table's order."""
        return self._starts

    @property
    def codes(self) -> bytes:
        """Every wait's chat type as its index in CHAT_TYPES, in this table's order."""
        if self._codes is not None:
            return self._codes
        table, where = self._ids, self._where
        assert isinstance(table, ChatTable) and where is not None  # only a view reads the table's
        return bytes(map(table._codes.__getitem__, where))

    def __repr__(self) -> str:
        return f"WaitStarts({dict(self)!r})"


class _WaitItems(ItemsView[str, tuple[str, float]]):
    """A table's items in one pass (the statefile writes them all), not a lookup per id."""

    _mapping: WaitStarts

    def __iter__(self) -> Iterator[tuple[str, tuple[str, float]]]:
        table = self._mapping
        kinds = map(CHAT_TYPES.__getitem__, table.codes)
        return zip(table, zip(kinds, table._starts, strict=True), strict=True)
