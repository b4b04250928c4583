"""The strict parser: a decoded WhatsGate answer in, typed records out.

Parsing is strict: the documentation is the contract, and a chat that breaks it
(missing field, wrong type) makes the whole answer invalid, because a partial
snapshot would silently under-count every aggregate.

Two things JSON allows but the exposition cannot carry are refused here too, so
that whatever parses also renders (issue 8):
- a string with a lone UTF-16 surrogate (the escape ``"\ud800"``, or the raw
  bytes ``ED A0 80`` that ``json.loads`` lets through) cannot be encoded as
  UTF-8: the answer is ``invalid_response`` naming the field ("not valid
  Unicode"), not silently repaired, because a repaired id would be another chat;
- a number above :data:`MAX_NUMBER` (2**53, beyond which a float, and so the
  exposition, no longer holds every integer; ``1`` and 400 zeros does not even
  fit a float) is ``invalid_response`` naming the field ("out of range"). No
  real count or Unix time (even in milliseconds) comes near it.

This module is the reference; :mod:`exporter.whatsgate.decode` is the fast path
that must agree with it.
"""

from __future__ import annotations

import math
from typing import Any

from ..model import Chat, Group, Session

# The largest number accepted: every integer up to it is exact as a float.
MAX_NUMBER = 2**53
# The most chats an answer and participants a group may list (10 times the largest accounts
# the exporter is sized for, and WhatsApp's groups of at most 1,024): more is a hostile or
# broken answer, refused rather than held (issue 21).
MAX_CHATS = 100_000
MAX_PARTICIPANTS = 10_000


class InvalidResponse(ValueError):
    """The API answered 200 but not with what the documentation shows."""


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise InvalidResponse(f"{where}.{key}: missing")
    value = obj[key]
    # bool is an int in Python; a JSON true where a count belongs is still wrong.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidResponse(f"{where}.{key}: expected {_kind_name(kind)}, got {_json_type(value)}")
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    """A string field that UTF-8 can carry (no lone surrogates)."""
    value: str = _field(obj, key, str, where)
    if not value.isascii() and not _encodable(value):
        raise InvalidResponse(f"{where}.{key}: not valid Unicode (lone surrogate)")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _kind_name(type(value))


def _number(obj: dict[str, Any], key: str, where: str, count: bool = False) -> int:
    """A non-negative whole number; timestamps may come as floats, counts may not be fractional."""
    value = _field(obj, key, (int, float), where)
    if isinstance(value, float) and not (math.isfinite(value) and (not count or value.is_integer())):
        raise InvalidResponse(f"{where}.{key}: expected a whole number, got {value}")
    if value < 0:
        raise InvalidResponse(f"{where}.{key}: negative value {value}")
    if value > MAX_NUMBER:
        raise InvalidResponse(f"{where}.{key}: out of range (above 2**53)")
    return int(value)


def _group(meta: Any, where: str) -> Group:
    if not isinstance(meta, dict):
        raise InvalidResponse(f"{where}: expected object, got {_json_type(meta)}")
    size = _number(meta, "size", where, count=True) if "size" in meta else 0
    created = _number(meta, "creation", where) if "creation" in meta else 0
    raw = meta.get("participants")
    if raw is None:
        return Group(created=created, participants=None, admins=None, size=size)
    if not isinstance(raw, list):
        raise InvalidResponse(f"{where}.participants: expected array, got {_json_type(raw)}")
    if len(raw) > MAX_PARTICIPANTS:
        raise InvalidResponse(f"{where}.participants: more than {MAX_PARTICIPANTS} participants")
    admins = 0
    for i, person in enumerate(raw):
        if not isinstance(person, dict):
            raise InvalidResponse(f"{where}.participants[{i}]: expected object, got {_json_type(person)}")
        is_admin = person.get("isAdmin", False)
        is_super = person.get("isSuperAdmin", False)
        if not isinstance(is_admin, bool) or not isinstance(is_super, bool):
            raise InvalidResponse(f"{where}.participants[{i}]: isAdmin/isSuperAdmin must be booleans")
        admins += is_admin or is_super
    return Group(created=created, participants=len(raw), admins=admins, size=size)


def parse_chat(obj: Any, where: str = "chat") -> Chat:
    """Turn one chat object of ``get-chats`` into a :class:`Chat`, or raise :class:`InvalidResponse`."""
    if not isinstance(obj, dict):
        raise InvalidResponse(f"{where}: expected object, got {_json_type(obj)}")
    chat_id = _text(obj, "id", where)
    if not chat_id:
        raise InvalidResponse(f"{where}.id: empty")
    where = f"{where}[id={chat_id!r}]" if len(chat_id) < 80 else where
    is_group = _field(obj, "isGroup", bool, where)
    group = _group(_field(obj, "groupMetadata", dict, where), f"{where}.groupMetadata") if is_group else None
    return Chat(
        id=chat_id,
        name=_text(obj, "name", where),
        is_group=is_group,
        read_only=_field(obj, "isReadOnly", bool, where),
        unread=_number(obj, "unreadCount", where, count=True),
        last_activity=_number(obj, "timestamp", where),
        pinned=_field(obj, "pinned", bool, where),
        muted=_field(obj, "isMuted", bool, where),
        group=group,
    )


def _ok_data(payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise InvalidResponse(f"answer: expected a JSON object, got {_json_type(payload)}")
    if "data" not in payload:
        raise InvalidResponse("answer: no 'data' field")
    return payload["data"]


def parse_chats(payload: Any) -> list[Chat]:
    """Parse a whole decoded ``get-chats`` answer (``result`` already checked by the client)."""
    data = _ok_data(payload)
    if not isinstance(data, list):
        raise InvalidResponse(f"data: expected array, got {_json_type(data)}")
    if len(data) > MAX_CHATS:
        raise InvalidResponse(f"data: more than {MAX_CHATS} chats")
    chats = [parse_chat(obj, f"data[{i}]") for i, obj in enumerate(data)]
    seen: set[str] = set()
    for chat in chats:
        if chat.id in seen:
            # Two series with the same labels would make the whole scrape invalid.
            raise InvalidResponse(f"data: chat id {chat.id!r} appears twice")
        seen.add(chat.id)
    return chats


def parse_sessions(payload: Any) -> tuple[list[Session], int]:
    """Parse one page of ``sessions-get``; returns the sessions and the page count."""
    data = _ok_data(payload)
    if not isinstance(data, list):
        raise InvalidResponse(f"data: expected array, got {_json_type(data)}")
    sessions = []
    for i, obj in enumerate(data):
        where = f"data[{i}]"
        if not isinstance(obj, dict):
            raise InvalidResponse(f"{where}: expected object, got {_json_type(obj)}")
        name = obj.get("name")
        sessions.append(
            Session(
                whatsapp_id=_text(obj, "unique_id", where),
                name=name if isinstance(name, str) and _encodable(name) else "",
                status=_text(obj, "status", where),
            )
        )
    pages = payload.get("pages", 1)
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
        pages = 1
    return sessions, pages
