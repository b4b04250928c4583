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

import codecs
from typing import Annotated, Any

import msgspec

from ..model import Chat, Group
from .parse import MAX_CHATS, MAX_NUMBER, MAX_PARTICIPANTS

_UNSET: Any = msgspec.UNSET

# Counts and times as the API sends them: whole, non-negative, in range. Anything else
# (an integral float such as 3.0, which parse.py accepts) goes the slow path.
Number = Annotated[int, msgspec.Meta(ge=0, le=MAX_NUMBER)]


# gc=False: these transients hold no cycles, and ~10,000 of them per answer would
# otherwise trigger (and lengthen) cycle collections during the poll.
class _Person(msgspec.Struct, gc=False):
    isAdmin: bool = False
    isSuperAdmin: bool = False


class _Meta(msgspec.Struct, gc=False):
    size: Number = 0
    creation: Number = 0
    participants: list[_Person] | None = None


class _Chat(msgspec.Struct, gc=False):
    id: str
    name: str
    isGroup: bool
    isReadOnly: bool
    unreadCount: Number
    timestamp: Number
    pinned: bool
    isMuted: bool
    # parse.py ignores a contact's groupMetadata whatever it holds; here anything but an
    # object or null sends the answer to the slow path, which then accepts it.
    groupMetadata: _Meta | None = None


class _Answer(msgspec.Struct):
    data: list[_Chat]
    result: Any = _UNSET
    # The documented error object: its presence sends the answer to the slow path,
    # which classifies it (e.g. unauthorized).
    name: Any = _UNSET
    message: Any = _UNSET


_ANSWER = msgspec.json.Decoder(_Answer)


def _group(meta: _Meta | None) -> Group | None:
    if meta is None:  # absent or null: parse.py explains why that is invalid for a group
        return None
    if meta.participants is None:
        return Group(created=meta.creation, participants=None, admins=None, size=meta.size)
    if len(meta.participants) > MAX_PARTICIPANTS:  # the slow path says so
        return None
    admins = sum(1 for p in meta.participants if p.isAdmin or p.isSuperAdmin)
    return Group(created=meta.creation, participants=len(meta.participants), admins=admins, size=meta.size)


# Checked this much at a time, so that the check holds no copy of a large answer.
_UTF8_SLICE = 1 << 20


def _decodes_as_json_loads_does(body: bytes | bytearray) -> bool:
    """Whether json.loads can decode the bytes as text: UTF-8, encoded surrogates allowed.

    msgspec checks the UTF-8 of the strings it keeps, not of the keys and values it skips
    (an unknown field): the reference refuses an answer with invalid UTF-8 anywhere."""
    if body.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
    view = memoryview(body)
    try:
        for start in range(0, len(view), _UTF8_SLICE):
            decoder.decode(view[start : start + _UTF8_SLICE])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        view.release()
    return True


def decode_chats(body: bytes | bytearray) -> list[Chat] | None:
    """The chats of a ``result: OK`` answer, or None when the slow path must decide (and explain)."""
    try:
        answer = _ANSWER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not _decodes_as_json_loads_does(body):
        return None
    if answer.result != "OK" or (isinstance(answer.name, str) and answer.message is not _UNSET):
        return None
    data = answer.data
    if len(data) > MAX_CHATS:  # the slow path says so
        return None
    ids = {c.id for c in data}
    if len(ids) != len(data) or "" in ids:  # a duplicate or an empty id
        return None
    chats: list[Chat] = []
    append = chats.append
    for c in data:
        group = None
        if c.isGroup:
            group = _group(c.groupMetadata)
            if group is None:
                return None
        append(
            Chat(
                c.id, c.name, c.isGroup, c.isReadOnly, c.unreadCount, c.timestamp, c.pinned, c.isMuted, group
            )
        )
    return chats
