"""The answer parser: a WhatsGate answer's bytes in, typed records out.

One parser, msgspec's: the documentation is the contract, written as the typed structs below,
and msgspec decodes the bytes into them in one compiled pass that checks every type on the
way. A chat that breaks the contract (missing field, wrong type) makes the whole answer
invalid, because a partial snapshot would silently under-count every aggregate. What a type
cannot say is checked here after the decoding: unique chat ids, a group's metadata present,
the answer read as ``json.loads`` reads it.

msgspec's JSON reader is stricter than the API's JSON, which is what ``json.loads`` accepts
(``NaN``, a lone surrogate such as ``"\\ud800"`` or the raw bytes ``ED A0 80``): an answer it
refuses is read again with ``json.loads`` and converted into the same structs
(:func:`_again`), whose refusal names the first bad field in the operator's terms
(``data[3][id='7999@c.us'].unreadCount: negative value -1``). Two things JSON allows but the
exposition cannot carry are refused, so that whatever parses also renders (issue 8):
- a string with a lone UTF-16 surrogate cannot be encoded as UTF-8: the answer is
  ``invalid_response`` naming the field ("not valid Unicode"), not silently repaired,
  because a repaired id would be another chat;
- a number above :data:`MAX_NUMBER` (2**53, beyond which a float, and so the exposition, no
  longer holds every integer; ``1`` and 400 zeros does not even fit a float) is
  ``invalid_response`` naming the field ("out of range"). No real count or Unix time (even
  in milliseconds) comes near it.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Annotated, Any, TypeVar

import msgspec

from ..model import Chat, Group, Session

# The largest number accepted: every integer up to it is exact as a float.
MAX_NUMBER = 2**53
# The most chats an answer and participants a group may list (10 times the largest accounts
# the exporter is sized for, and WhatsApp's groups of at most 1,024): more is a hostile or
# broken answer, refused rather than held (issue 21).
MAX_CHATS = 100_000
MAX_PARTICIPANTS = 10_000

_UNSET: Any = msgspec.UNSET
_RANGE = msgspec.Meta(ge=0, le=MAX_NUMBER)
# A time may come as a float (documented) and is cut to whole seconds; a count may be a float
# only when it is whole (3.0).
Time = Annotated[int, _RANGE] | Annotated[float, _RANGE]
Count = Annotated[int, _RANGE] | Annotated[float, msgspec.Meta(ge=0, le=MAX_NUMBER, multiple_of=1)]
_COUNTS = frozenset({"unreadCount", "size"})


class InvalidResponse(ValueError):
    """The API answered 200 but not with what the documentation shows."""

    # True when the answer is a JSON object with ``result: OK`` and no error object, as the
    # client would classify it: then it need not read the answer again to say so.
    envelope_ok = False


# gc=False: these transients hold no cycles, and ~10,000 of them per answer would otherwise
# trigger (and lengthen) cycle collections during the poll.
class _Person(msgspec.Struct, gc=False):
    isAdmin: bool = False
    isSuperAdmin: bool = False


class _Meta(msgspec.Struct, gc=False):
    size: Count = 0
    creation: Time = 0
    participants: Annotated[list[_Person], msgspec.Meta(max_length=MAX_PARTICIPANTS)] | None = None


class _Chat(msgspec.Struct, gc=False):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    name: str
    isGroup: bool
    isReadOnly: bool
    unreadCount: Count
    timestamp: Time
    pinned: bool
    isMuted: bool
    # Read for groups only: a contact's is ignored whatever it holds (_again drops it).
    groupMetadata: _Meta | msgspec.UnsetType | None = msgspec.UNSET


class _Answer(msgspec.Struct, kw_only=True):
    result: Any = _UNSET
    # The documented error object, which the client classifies (e.g. unauthorized).
    name: Any = _UNSET
    message: Any = _UNSET


class _Chats(_Answer):
    data: Annotated[list[_Chat], msgspec.Meta(max_length=MAX_CHATS)]


class _RawChats(_Answer):
    """:class:`_Chats` with each chat left as its bytes, decoded one at a time (parse_chats)."""

    data: Annotated[list[msgspec.Raw], msgspec.Meta(max_length=MAX_CHATS)]


class _Session(msgspec.Struct, gc=False):
    unique_id: str
    status: str
    name: Any = None


class _Sessions(_Answer):
    data: list[_Session]
    pages: Any = 1


_A = TypeVar("_A", bound=_Answer)
_B = TypeVar("_B", bound=_Answer)
_RAW_CHATS = msgspec.json.Decoder(_RawChats)
_CHAT = msgspec.json.Decoder(_Chat)
_SESSIONS = msgspec.json.Decoder(_Sessions)


class _Undecodable(Exception):
    """A chat msgspec's reader refused: the answer is read again as json.loads reads it."""


def parse_chats(body: bytes | bytearray) -> list[Chat]:
    """The chats of a ``get-chats`` answer, or :class:`InvalidResponse` naming the first bad field."""
    # The answer's chats are decoded one at a time, each freed as soon as its record exists (its
    # strings go on in the record): the decoded answer is never held whole beside the records,
    # and the decoding holds the GIL a chat at a time, not for the whole answer in one call
    # (bench/RESULTS.md, "Memory at 10 x 10,000, sixth session").
    answer = _read(body, _RAW_CHATS, _Chats)
    try:
        chats = _records(answer.data)
    except _Undecodable:
        chats = _records(_again(body, _Chats).data)
    if len({c.id for c in chats}) != len(chats):
        seen: set[str] = set()
        for chat in chats:
            if chat.id in seen:
                # Two series with the same labels would make the whole scrape invalid.
                raise InvalidResponse(f"data: chat id {chat.id!r} appears twice")
            seen.add(chat.id)
    return chats


def _records(data: list[msgspec.Raw] | list[_Chat]) -> list[Chat]:
    """The answer's chats (undecoded or decoded) as records, each taken from the end of the
    reversed list: the list lets go of each chat as its record is made."""
    data.reverse()
    pop, decode = data.pop, _CHAT.decode
    chats: list[Chat] = []
    append = chats.append
    for i in range(len(data)):
        c = pop()
        if isinstance(c, msgspec.Raw):
            try:
                c = decode(c)
            except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
                raise _Undecodable from None
        unread, ts = c.unreadCount, c.timestamp
        if type(unread) is float or type(ts) is float:  # whole counts, times cut to the second
            unread, ts = int(unread), int(ts)
        group = _group(c.groupMetadata, i, c) if c.isGroup else None
        # unread and ts are ints now (mypy cannot follow the type() test).
        append(Chat(c.id, c.name, c.isGroup, c.isReadOnly, unread, ts, c.pinned, c.isMuted, group))  # type: ignore[arg-type]
    return chats


def _group(meta: _Meta | msgspec.UnsetType | None, i: int, chat: _Chat) -> Group:
    """A group chat's metadata as its record keeps it; ``i``: the chat's index in the answer."""
    if meta is msgspec.UNSET or meta is None:
        why = "missing" if meta is msgspec.UNSET else "expected object, got null"
        raise InvalidResponse(f"{_where(i, chat.id)}.groupMetadata: {why}")
    size, created = int(meta.size), int(meta.creation)
    if meta.participants is None:
        return Group(created=created, participants=None, admins=None, size=size)
    admins = sum(1 for p in meta.participants if p.isAdmin or p.isSuperAdmin)
    return Group(created=created, participants=len(meta.participants), admins=admins, size=size)


def parse_sessions(body: bytes | bytearray) -> tuple[list[Session], int]:
    """One page of ``sessions-get``: the sessions and the page count."""
    answer = _read(body, _SESSIONS, _Sessions)
    sessions = []
    for s in answer.data:
        name = s.name if isinstance(s.name, str) else ""  # a lone surrogate's is _LONE
        sessions.append(Session(whatsapp_id=s.unique_id, name=name, status=s.status))
    pages = answer.pages
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
        pages = 1
    return sessions, pages


def _read(body: bytes | bytearray, decoder: msgspec.json.Decoder[_A], kind: type[_B]) -> _A | _B:
    """The answer decoded by ``decoder``, or into ``kind`` when that refuses it, its envelope
    checked (the client says why it is not OK)."""
    try:
        answer: _A | _B = decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
        answer = _again(body, kind)
    else:
        if not _decodes_as_json_loads_does(body):
            raise InvalidResponse("answer: not valid UTF-8")
    if not _ok(answer.result, answer.name, answer.message is not _UNSET):
        raise InvalidResponse("answer: result is not OK")  # the client says why
    return answer


def _ok(result: Any, name: Any, message: bool) -> bool:
    return result == "OK" and not (message and isinstance(name, str) and name.lower() == "unauthorized")


def _again(body: bytes | bytearray, kind: type[_A]) -> _A:
    """An answer msgspec's reader refused, read by json.loads and converted into ``kind``."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise InvalidResponse("answer: not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidResponse(f"answer: expected a JSON object, got {_json_type(payload)}")
    if _surrogates(body):  # else no string can hold one, and the walk is skipped
        _mark_lone_surrogates(payload)
    if isinstance(payload.get("data"), list):
        for obj in payload["data"]:
            if isinstance(obj, dict) and obj.get("isGroup") is False:
                obj.pop("groupMetadata", None)
    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        refused = InvalidResponse(_why(payload, str(exc), named=kind is _Chats))
    refused.envelope_ok = _ok(payload.get("result"), payload.get("name"), "message" in payload)
    raise refused


class _LoneSurrogate:
    """Stands for a string with a lone surrogate, which msgspec.convert cannot read."""


_LONE = _LoneSurrogate()


def _surrogates(body: bytes | bytearray) -> bool:
    """Whether json.loads may read a surrogate, paired or not: an escape \\ud800-\\udfff, or
    its UTF-8 bytes (ED A0-BF), or something that starts as one."""
    return b"\\ud" in body or b"\\uD" in body or (not body.isascii() and b"\xed" in body)


def _mark_lone_surrogates(payload: dict[str, Any]) -> None:
    """Replace every string UTF-8 cannot carry by _LONE, and every such key by one it can.

    Where a struct wants a string, convert then refuses _LONE with the field's path; an unknown
    field's is ignored, as json.loads's string was."""
    todo: list[Any] = [payload]
    while todo:  # not recursive: json.loads already read the answer as deep as Python recurses
        node, renamed = todo.pop(), []
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(key, str) and not _encodable(key):
                renamed.append(key)  # after the loop: a dict cannot change size while iterated
            if isinstance(value, str) and not _encodable(value):
                node[key] = _LONE
            elif isinstance(value, (dict, list)):
                todo.append(value)
        for key in renamed:
            node[key.encode("utf-8", "surrogatepass").decode("utf-8", "replace")] = node.pop(key)


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TYPES = {"str": "string", "bool": "boolean", "int | float": "integer or number"}


def _why(payload: dict[str, Any], error: str, named: bool) -> str:
    """msgspec's refusal of the converted ``payload`` in the operator's terms: the path to the
    field (a chat's id in it when ``named``) and what is wrong with its value."""
    text, _, path = error.partition(" - at `$")
    if text == "Object missing required field `data`" and not path:
        return "answer: no 'data' field"
    where, parent = "", None
    value: Any = payload
    for key, index in _STEP.findall(path.rstrip("`")):
        parent = value
        if key:
            where, value = f"{where}.{key}" if where else key, value[key]
        else:
            value = value[int(index)]
            chat_id = (
                value.get("id") if isinstance(value, dict) and named and parent is payload["data"] else None
            )
            where += f"[{index}]"
            if isinstance(chat_id, str) and chat_id and len(chat_id) < 80 and _encodable(chat_id):
                where += f"[id={chat_id!r}]"
    missing = re.fullmatch(r"Object missing required field `(.+)`", text)
    if missing:
        return f"{where}.{missing[1]}: missing"
    last = where.rpartition(".")[2]
    if last in ("isAdmin", "isSuperAdmin"):
        return f"{where.rpartition('.')[0]}: isAdmin/isSuperAdmin must be booleans"
    if "of length >= 1" in text:
        return f"{where}: empty"
    if "of length <=" in text:
        limit, what = (MAX_CHATS, "chats") if where == "data" else (MAX_PARTICIPANTS, "participants")
        return f"{where}: more than {limit} {what}"
    if text.startswith(("Expected `int`", "Expected `float`")):  # a number of the right type
        if isinstance(value, float) and not (
            math.isfinite(value) and (last not in _COUNTS or value.is_integer())
        ):
            return f"{where}: expected a whole number, got {value}"
        if value < 0:
            return f"{where}: negative value {value}"
        return f"{where}: out of range (above 2**53)"
    kind = text.partition("`")[2].partition("`")[0].removesuffix(" | null")  # Expected `str`, got ...
    if kind == "str" and value is _LONE:
        return f"{where}: not valid Unicode (lone surrogate)"
    return f"{where}: expected {_TYPES.get(kind, kind)}, got {_json_type(value)}"


def _where(i: int, chat_id: str) -> str:
    return f"data[{i}][id={chat_id!r}]" if len(chat_id) < 80 else f"data[{i}]"


def _encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES[type(value)]


# What json.loads makes of JSON (and what _LONE stands for), as an operator reads it.
_JSON_TYPES = {str: "string", _LoneSurrogate: "string", bool: "boolean", int: "integer", float: "number"}
_JSON_TYPES.update({list: "array", dict: "object"})


# Checked this much at a time, so that the check holds no copy of a large answer: it runs beside
# the decoded answer, and each slice becomes text of up to 4 bytes per byte while it is checked.
_UTF8_SLICE = 1 << 16


def _decodes_as_json_loads_does(body: bytes | bytearray) -> bool:
    """Whether json.loads can decode the bytes as text: UTF-8, encoded surrogates allowed.

    msgspec checks the UTF-8 of the strings it keeps, not of the keys and values it skips
    (an unknown field): json.loads, and so the API's JSON, refuses invalid UTF-8 anywhere."""
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
