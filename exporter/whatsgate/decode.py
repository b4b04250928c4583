"""The fast path for ``get-chats``: answer bytes straight into :mod:`exporter.model` records.

At 10,000 chats :func:`json.loads` into dicts and the strict checks of
:mod:`exporter.whatsgate.parse` cost three times the decoding alone. msgspec
decodes the bytes into typed structs in one compiled pass that checks every
type on the way, so only the checks a type cannot say (non-negative, whole,
in range, non-empty, unique) are left to Python.

This path only ever *accepts*: for anything it does not accept (bad type,
missing field, invalid UTF-8, lone surrogate, an error object, ``result`` not
``OK``) it returns ``None`` and the client re-reads the answer the slow way,
with ``json.loads`` and :mod:`~exporter.whatsgate.parse`, which stays the
reference: it rejects with the same reason and names the first bad field. A
differential test (tests/unit/test_decode.py) holds the two to the same
verdict and the same records.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..model import Chat, Group
from .parse import MAX_NUMBER

_UNSET: Any = msgspec.UNSET


class _Person(msgspec.Struct):
    isAdmin: bool = False  # noqa: N815 - the API's spelling
    isSuperAdmin: bool = False  # noqa: N815


class _Meta(msgspec.Struct):
    size: int | float = 0
    creation: int | float = 0
    participants: list[_Person] | None = None


class _Chat(msgspec.Struct):
    id: str
    name: str
    isGroup: bool  # noqa: N815
    isReadOnly: bool  # noqa: N815
    unreadCount: int | float  # noqa: N815
    timestamp: int | float
    pinned: bool
    isMuted: bool  # noqa: N815
    # Raw: a contact's groupMetadata is ignored whatever it holds (as parse.py does);
    # a group's is decoded on its own.
    # Empty when the field is absent (a JSON null arrives as the bytes "null").
    groupMetadata: msgspec.Raw = msgspec.Raw()  # noqa: N815


class _Answer(msgspec.Struct):
    data: list[_Chat]
    result: Any = _UNSET
    # The documented error object: its presence sends the answer to the slow path,
    # which classifies it (e.g. unauthorized).
    name: Any = _UNSET
    message: Any = _UNSET


_ANSWER = msgspec.json.Decoder(_Answer)
_META = msgspec.json.Decoder(_Meta)


def _count(value: int | float) -> int | None:
    """A whole, non-negative number within range, or None (then the slow path names the problem)."""
    if type(value) is float and not value.is_integer():
        return None
    if value < 0 or value > MAX_NUMBER:
        return None
    return int(value)


def _group(raw: msgspec.Raw) -> Group | None:
    if not raw:
        return None
    try:
        meta = _META.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    size, created = _count(meta.size), _count(meta.creation)
    if size is None or created is None:
        return None
    if meta.participants is None:
        return Group(created=created, participants=None, admins=None, size=size)
    admins = sum(1 for p in meta.participants if p.isAdmin or p.isSuperAdmin)
    return Group(created=created, participants=len(meta.participants), admins=admins, size=size)


def decode_chats(body: bytes) -> list[Chat] | None:
    """The chats of a ``result: OK`` answer, or None when the slow path must decide (and explain)."""
    try:
        answer = _ANSWER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if answer.result != "OK" or (isinstance(answer.name, str) and answer.message is not _UNSET):
        return None
    chats: list[Chat] = []
    append = chats.append
    seen: set[str] = set()
    for c in answer.data:
        chat_id = c.id
        unread, activity = _count(c.unreadCount), c.timestamp
        if not chat_id or chat_id in seen or unread is None:
            return None
        if not 0 <= activity <= MAX_NUMBER:  # (JSON has no NaN or infinity: msgspec refuses them)
            return None
        if type(activity) is float:
            activity = int(activity)
        seen.add(chat_id)
        group = None
        if c.isGroup:
            group = _group(c.groupMetadata)
            if group is None:
                return None
        append(Chat(chat_id, c.name, c.isGroup, c.isReadOnly, unread, activity, c.pinned, c.isMuted, group))
    return chats
