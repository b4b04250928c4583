"""What the WhatsGate API returns, as typed records, and the pure functions over them.

Parsing is strict: the documentation is the contract, and a chat that breaks it
(missing field, wrong type) makes the whole answer invalid, because a partial
snapshot would silently under-count every aggregate. The records keep only
what the metrics and alerts need, so a 10,000-chat account costs a few MB,
not the tens of MB of its decoded JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CONTACT = "contact"
GROUP = "group"
CHAT_TYPES = (CONTACT, GROUP)


class InvalidResponse(ValueError):
    """The API answered 200 but not with what the documentation shows."""


@dataclass(frozen=True, slots=True)
class Group:
    created: int
    # None when the answer had no participant list: then only `size` is known.
    participants: int | None
    admins: int | None
    size: int

    @property
    def member_count(self) -> int:
        """The participant list is the truth when it lists anyone; `size` is documented as unreliable.

        An empty list is taken as "not sent" rather than "nobody", since a group always has a member.
        """
        return self.participants if self.participants else self.size


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    name: str
    is_group: bool
    read_only: bool
    unread: int
    last_activity: int
    pinned: bool
    muted: bool
    group: Group | None = None

    @property
    def chat_type(self) -> str:
        return GROUP if self.is_group else CONTACT


@dataclass(frozen=True, slots=True)
class Session:
    whatsapp_id: str
    name: str
    status: str


# --- parsing ----------------------------------------------------------------


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise InvalidResponse(f"{where}.{key}: missing")
    value = obj[key]
    # bool is an int in Python; a JSON true where a count belongs is still wrong.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidResponse(f"{where}.{key}: expected {_kind_name(kind)}, got {_json_type(value)}")
    return value


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
    chat_id = _field(obj, "id", str, where)
    if not chat_id:
        raise InvalidResponse(f"{where}.id: empty")
    where = f"{where}[id={chat_id!r}]" if len(chat_id) < 80 else where
    is_group = _field(obj, "isGroup", bool, where)
    group = _group(_field(obj, "groupMetadata", dict, where), f"{where}.groupMetadata") if is_group else None
    return Chat(
        id=chat_id,
        name=_field(obj, "name", str, where),
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
                whatsapp_id=_field(obj, "unique_id", str, where),
                name=name if isinstance(name, str) else "",
                status=_field(obj, "status", str, where),
            )
        )
    pages = payload.get("pages", 1)
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
        pages = 1
    return sessions, pages


# --- turning chats into numbers ---------------------------------------------


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
    chats: Sequence[Chat], selects: Callable[[str, str], bool], max_per_account: int
) -> Selection:
    """Pick the chats that get per-chat series: filter by the include/exclude rules, then cap.

    ``selects(chat_id, name)`` says whether a chat passes the filters; ``max_per_account`` 0 means no cap.
    """
    kept = [c for c in chats if selects(c.id, c.name)]
    filtered = len(chats) - len(kept)
    over = 0
    if max_per_account and len(kept) > max_per_account:
        kept.sort(key=priority)
        over = len(kept) - max_per_account
        del kept[max_per_account:]
    return Selection(chats=tuple(kept), filtered=filtered, over_limit=over)
