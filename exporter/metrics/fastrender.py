"""The per-chat families written straight to exposition text (format 0.0.4).

At 10,000 chats an account has ~33,000 per-chat samples, and building them as prometheus-client families
and rendering those with ``generate_latest`` costs far more than decoding the answer (bench/RESULTS.md):
each sample is a namedtuple with a label dict that is sorted, re-escaped and formatted one by one. Here
each family is one line template (label names in ``generate_latest``'s sorted order, the account's labels
escaped once), and the chats are columns (ids, types, names, values: each extracted, escaped and formatted
once, in C-level passes where possible); SLICE lines of a family are one ``str.join`` of their columns
interleaved with the constant pieces between them: no string per sample line is ever built.

tests/unit/test_fastrender.py holds this module's output byte-identical to ``generate_latest`` of the
reference collector (``ChatCollector`` in tests/chat_collector.py) for generated and fuzzed snapshots. A
new per-chat family is one more :class:`ChatFamily` row in :data:`CHAT_FAMILIES` (in the collector's
order); until it exists, the differential test fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import attrgetter
from typing import cast

from prometheus_client import utils

from ..model import CONTACT, GROUP, Account, Chat
from ..snapshot.waiting import Wait, by_chat
from . import definitions as d

Family = tuple[str, bytes, Iterator[bytes]]  # name, "# HELP/# TYPE" header, samples in slices


def escape(value: str) -> str:
    """Label-value escaping of the text format (what prometheus-client does for 0.0.4)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def header(definition: d.MetricDef) -> bytes:
    """The ``# HELP`` and ``# TYPE`` lines of a family, as generate_latest writes them."""
    name = definition.sample_name
    text = definition.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {definition.type}\n".encode()


# prometheus-client's own number formatting (untyped there; it returns str).
floatToGoString: Callable[[float], str] = utils.floatToGoString

# Small whole numbers (unread counts, participants) recur; their text is cached.
_SMALL = [floatToGoString(i) for i in range(4096)]


def number(value: float) -> str:
    """A sample value exactly as generate_latest formats it (``floatToGoString(float(value))``).

    The records hold whole numbers up to 2**53 (the parser's limit), whose float repr is
    always ``<digits>.0``; floatToGoString writes those of more than six digits the way Go
    does, ``1.734642665e+09``. Doing that on the digits directly is faster (bench/RESULTS.md);
    anything else takes floatToGoString itself.
    """
    if type(value) is float and 0 < value <= 2**53 and value.is_integer():
        value = int(value)  # the same text; not 0.0, which might be -0.0
    if type(value) is int and 0 <= value <= 2**53:
        if value < 4096:
            return _SMALL[value]
        digits = str(value)
        if len(digits) <= 6:
            return f"{digits}.0"
        mantissa = f"{digits[0]}.{digits[1:]}0".rstrip("0.")
        return f"{mantissa}e+{len(digits) - 1:02d}"
    return floatToGoString(value)


def numbers(values: Sequence[float]) -> list[str]:
    """:func:`number` of each value; the usual columns (small counts, Unix times, durations)
    in C-level passes, since a Python call per value would be most of a render.

    The shortcuts rest on what ``floatToGoString`` does: a finite float below 1e6 is
    its ``repr``; a number of 1e6 and more (below 1e16, so ``repr`` has no exponent)
    is its ``repr`` written in exponent form (:func:`_exponent_form`).
    """
    if not values:
        return []
    kinds = set(map(type, values))
    if kinds == {float} and all(map(math.isfinite, values)):
        low, high = min(values), max(values)
        if high < 1e6:
            return list(map(float.__repr__, values))
        if low >= 1e6 and high < 1e16:  # repr: digits, point, digits; no exponent
            if high <= 2**53 and all(map(float.is_integer, values)):
                found = _whole(values, low, high)  # Unix times as floats: no repr needed
                if found is not None:
                    return found
            texts = list(map(float.__repr__, values))
            points = set(map(str.find, texts, repeat(".")))
            if len(points) == 1:  # e.g. durations of 1e7 to 1e8 s, all with eight digits
                point = points.pop()
                width = max(map(len, texts))
                # Shorter texts padded with "?", which _exponent_form drops; then the points go.
                padded = "".join(map(str.ljust, texts, repeat(width), repeat("?")))
                return _exponent_form(padded.replace(".", "").encode(), len(texts), point - 1)
    if kinds == {int}:
        ints = cast("Sequence[int]", values)
        low, high = min(ints), max(ints)
        if low >= 0 and high < len(_SMALL):
            return list(map(_SMALL.__getitem__, ints))
        if low >= 10**6 and high <= 2**53:
            found = _whole(ints, low, high)
            if found is not None:
                return found
    return list(map(number, values))


def _whole(values: Sequence[float], low: float, high: float) -> list[str] | None:
    """Whole numbers from 1e6 to 2**53 (ints, or floats that hold them exactly), when all
    have the same number of digits (Unix times: ten), as one ``%d`` formatting call and
    :func:`_exponent_form`; None when their lengths differ."""
    digits = len(str(int(low)))
    if digits != len(str(int(high))):
        return None
    return _exponent_form((("%d" * len(values)) % tuple(values)).encode(), len(values), digits - 1)


# Byte 1 for "0" and "?" (a trailing zero, or padding), 0 for any other byte.
_ZERO_OR_PAD = bytes(1 if b in b"0?" else 0 for b in range(256))


def _exponent_form(digits: bytes, count: int, exponent: int) -> list[str]:
    """``1734642660`` -> ``1.73464266e+09``: ``count`` numbers of the same ``exponent`` (6 to 15), given as
    rows of one width (digits only, the first not 0, shorter rows padded at the end with ``?``), each with
    its mantissa's trailing zeros dropped, and its point too if nothing follows it (``1e+09``), as
    ``floatToGoString`` does.

    Done on whole columns rather than per number, several times faster than formatting each: with all rows
    of one width, a column of digits is a strided slice, so the output's columns are strided slice
    assignments into one bytearray (one row each: first digit, point, other digits, exponent, newline).
    Trailing zeros are marked from the right, a column at a time, with the rows of a column taken as one
    big integer (one byte each, 1 where the byte is a zero or padding): AND-ing it into the mask of the
    columns to its right leaves 1 exactly where a zero is trailing. OR-ing ``mask * 0x0F`` into a column
    turns those ``0`` into ``?`` (0x30 | 0x0F), and ``mask * 0x11`` turns an unneeded point into ``?``
    (0x2E | 0x11); one ``replace`` drops every ``?``.
    """
    width = len(digits) // count
    tail = f"e+{exponent:02d}\n".encode()
    stride = width + 1 + len(tail)
    out = bytearray(count * stride)
    out[0::stride] = digits[0::width]
    for k in range(1, width):
        out[k + 1 :: stride] = digits[k::width]
    for k, byte in enumerate(tail, start=width + 1):
        out[k::stride] = bytes((byte,)) * count
    point = b"." * count
    trailing = -1  # all ones: nothing to the right of the last column
    for k in range(width - 1, 0, -1):
        column = digits[k::width]
        trailing &= int.from_bytes(column.translate(_ZERO_OR_PAD), "big")
        if not trailing:
            break
        out[k + 1 :: stride] = (int.from_bytes(column, "big") | trailing * 0x0F).to_bytes(count, "big")
    else:  # every digit after the first is a trailing zero in some rows: their point goes too
        point = (int.from_bytes(point, "big") | trailing * 0x11).to_bytes(count, "big")
    out[1::stride] = point
    return out.replace(b"?", b"").decode("ascii").split("\n")[:-1]


def escaped(values: list[str]) -> list[str]:
    """:func:`escape` of each value: three replaces over the whole column at once, split again."""
    if not values:
        return []
    joined = "\0".join(values)
    if "\\" not in joined and "\n" not in joined and '"' not in joined:
        return values
    if joined.count("\0") != len(values) - 1:  # a value holds the separator itself
        return [escape(v) for v in values]
    return escape(joined).split("\0")


class Columns:
    """The selected chats of one render as columns, each made at most once and only if used."""

    def __init__(self, chats: Sequence[Chat], waits: Mapping[str, Wait] | Sequence[Wait]) -> None:
        self.chats = chats
        self.waits = by_chat(waits)

    def label(self, name: str) -> list[str]:
        """The escaped values of one per-chat label (``chat_id``, ``chat_type``, ``name``)."""
        return cast("list[str]", getattr(self, f"label_{name}"))

    @cached_property
    def label_chat_id(self) -> list[str]:
        return escaped(list(map(attrgetter("id"), self.chats)))

    @cached_property
    def label_chat_type(self) -> list[str]:
        # What Chat.chat_type says, without a property call per chat.
        return [GROUP if is_group else CONTACT for is_group in map(attrgetter("is_group"), self.chats)]

    @cached_property
    def label_name(self) -> list[str]:
        return escaped(list(map(attrgetter("name"), self.chats)))

    @cached_property
    def groups(self) -> list[int]:
        """The positions of the chats that are groups with group data."""
        return [i for i, c in enumerate(self.chats) if c.is_group and c.group is not None]

    @cached_property
    def waiting(self) -> list[int]:
        """The positions of the chats waiting now."""
        waits = self.waits
        if not waits:
            return []
        return [i for i, chat_id in enumerate(map(attrgetter("id"), self.chats)) if chat_id in waits]


Rows = tuple["list[int] | None", list[float]]  # the chats with a sample (None: all), each one's value


@dataclass(frozen=True)
class ChatFamily:
    """One per-chat family: its definition (its labels after the account's are the per-chat ones) and its
    rows. The per-chat labels must sort next to each other among the family's label names (they do:
    account < chat_* < name < whatsapp_id), so that each sample line is the account's part, the chat's
    part and the value."""

    definition: d.MetricDef
    rows: Callable[[Columns], Rows]

    def __post_init__(self) -> None:
        names, labels = sorted(self.definition.label_names), self.definition.labels
        if names[names.index(labels[0]) :][: len(labels)] != sorted(labels):
            raise ValueError(f"{self.definition.name}: per-chat labels must sort next to each other")

    def frame(self, account: Account) -> tuple[str, str]:
        """What comes before and after the chat labels: ``name{account="..",`` and ``,whatsapp_id=".."} ``."""
        known = dict(zip(d.ACCOUNT_LABELS, account.labels, strict=True))
        names = sorted(self.definition.label_names)
        first = names.index(self.definition.labels[0])
        before = [f'{n}="{escape(known[n])}",' for n in names[:first]]
        after = [f',{n}="{escape(known[n])}"' for n in names[first + len(self.definition.labels) :]]
        return f"{self.definition.sample_name}{{{''.join(before)}", f"{''.join(after)}}} "

    def lines(self, account: Account, columns: Columns) -> Iterator[bytes]:
        """The samples, SLICE lines at a time, as bytes (the caller deflates each before the next is made)."""
        before, after = self.frame(account)
        rows, values = self.rows(columns)
        names = sorted(self.definition.labels)
        cols = [columns.label(n) for n in names]
        if rows is not None:
            cols = [[column[i] for i in rows] for column in cols]
        # Each line: before, name0="v0", name1="v1" ..., after, value, newline.
        prefix = f'{before}{names[0]}="'
        seps = [f'",{n}="' for n in names[1:]] + [f'"{after}', "\n" + prefix]
        for start in range(0, len(values), SLICE):
            part = slice(start, start + SLICE)
            yield _interleave(prefix, [*(c[part] for c in cols), numbers(values[part])], seps, "\n").encode()


# Lines written at a time: neither a family's whole text nor its bytes is held (at 10,000 chats most of a
# render's transient), and a slice's blocks, under memory.MMAP_THRESHOLD, are reused, not mapped anew.
# render._split decides plain or deflated on the first slice: the whole family, or SLICE lines.
SLICE = 512


def _interleave(first: str, columns: Sequence[Sequence[str]], seps: Sequence[str], last: str) -> str:
    """``first``, then ``columns[0][i] + seps[0] + columns[1][i] + seps[1] + ...`` for every i,
    the very last separator replaced by ``last``: one string, joined once (no copies of it)."""
    n, k = len(columns[0]), len(columns)
    parts: list[str] = [""] * (2 * k * n + 1)
    parts[0] = first
    for j, (column, sep) in enumerate(zip(columns, seps, strict=True)):
        parts[2 * j + 1 :: 2 * k] = column
        parts[2 * j + 2 :: 2 * k] = [sep] * n
    parts[-1] = last
    return "".join(parts)


def _every(attr: str) -> Callable[[Columns], Rows]:
    """Every chat's ``attr``."""
    return lambda cols: (None, list(map(attrgetter(attr), cols.chats)))


def _waiting(attr: str) -> Callable[[Columns], Rows]:
    """The waiting chats, and ``attr`` of each one's wait."""
    get = attrgetter(attr)

    def rows(cols: Columns) -> Rows:
        chats, waits = cols.chats, cols.waits
        return cols.waiting, [get(waits[chats[i].id]) for i in cols.waiting]

    return rows


def _groups(attr: str) -> Callable[[Columns], Rows]:
    """The chats with group data whose ``attr`` of it is known (not None; a ``created`` of 0 is
    not known either), and that value of each."""
    get = attrgetter(f"group.{attr}")

    def rows(cols: Columns) -> Rows:
        chats = cols.chats
        found = [(i, get(chats[i])) for i in cols.groups]
        found = [(i, v) for i, v in found if v is not None and (v or attr != "created")]
        return [i for i, _ in found], [v for _, v in found]

    return rows


# In the reference collector's order (tests/chat_collector.py).
CHAT_FAMILIES: tuple[ChatFamily, ...] = (
    ChatFamily(d.CHAT_UNREAD, _every("unread")),
    ChatFamily(d.CHAT_LAST_ACTIVITY, _every("last_activity")),
    ChatFamily(d.CHAT_INFO, lambda cols: (None, [1] * len(cols.chats))),
    ChatFamily(d.CHAT_WAITING_SINCE, _waiting("since")),
    ChatFamily(d.CHAT_WAITING_SECONDS, _waiting("seconds")),
    ChatFamily(d.GROUP_PARTICIPANTS, _groups("member_count")),
    ChatFamily(d.GROUP_ADMINS, _groups("admins")),
    ChatFamily(d.GROUP_CREATED, _groups("created")),
)


def render_chats(
    account: Account, chats: Sequence[Chat], waits: Mapping[str, Wait] | Sequence[Wait] = ()
) -> Iterator[Family]:
    """The per-chat families of the selected chats, as ``render`` of the reference collector would give,
    one at a time, each in slices: the caller compresses each slice before the next is written."""
    columns = Columns(chats, waits)
    return ((f.definition.name, header(f.definition), f.lines(account, columns)) for f in CHAT_FAMILIES)
