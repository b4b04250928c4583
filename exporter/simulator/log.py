"""The message log: one per account, the single source of unread counts, events and history.

Every message goes through ``AccountLog.incoming`` or ``outgoing``, which appends it to its
chat's history, records it as an event (``message`` in, ``create`` out) and moves the chat's
``unreadCount`` and ``timestamp`` (an outgoing message marks the chat read, as sending from
the phone does), so ``get-chats``, ``events-get`` and ``get-history`` cannot disagree. A read
without an answer (``read``) only zeroes ``unreadCount``.

Events are kept encoded, sorted by (time, id), at most ``Options.max_events`` per account
(the oldest dropped), so a page is a slice and a join. Event ids come from one counter per
simulator, like WhatsGate's ids across the sessions of one API key.
"""

from __future__ import annotations

import base64
import bisect
import collections
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from .wire import json_bytes

HISTORY = 100  # get-history's documented limits: the last 100 messages...
HISTORY_AGE = 90 * 86400  # ...none older than 90 days
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Bodies are recognisable text, chosen in turn (no random draw, so traffic stays seeded as before).
# fmt: off
CUSTOMER_TEXTS = ("Hello! Where is my order?", "Is the shop open today?", "Thank you!",
                  "Can I change the delivery address?", "The app says payment failed",
                  "Any news?", "Do you have this in blue?", "Please call me back")
AGENT_TEXTS = ("Hello! Let me check.", "Your order ships tomorrow.", "Yes, we are open until 20:00.",
               "Done, the address is updated.", "Sorry for the wait!", "You are welcome!")
# fmt: on
Entry = tuple[int, int, str, bytes]  # (time, event id, action, the encoded event)
_WHEN = itemgetter(0)


@dataclass
class Options:
    """Simulator-wide settings of the log, changeable at run time (``Simulator.set_options``)."""

    time_zone: str = "UTC"  # the zone event_date is written in (WhatsGate does not say which)
    newest_first: bool = False  # events-get pages: newest event first instead of oldest
    history_newest_first: bool = True  # get-history's order
    body_marker: str = ""  # added to every new body and media key, so tests can look for leaks
    max_events: int = 20_000  # per account; the oldest events are dropped beyond it
    _zone: ZoneInfo = field(init=False, repr=False)
    _rendered: tuple[int, str] = field(init=False, repr=False, default=(-1, ""))

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validates the fields (after a change too); ValueError names the bad one."""
        try:
            self._zone = ZoneInfo(self.time_zone)
        except (ValueError, KeyError, TypeError) as exc:  # unknown zone names raise a KeyError subclass
            raise ValueError(f"time_zone: unknown time zone {self.time_zone!r}") from exc
        self._rendered = (-1, "")
        for name in ("newest_first", "history_newest_first"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        if not isinstance(self.body_marker, str):
            raise ValueError("body_marker must be a string")
        if type(self.max_events) is not int or self.max_events < 1:
            raise ValueError("max_events must be a positive integer")

    def render(self, when: int) -> str:
        """``when`` as an event_date; bursts share a second, so the last one is remembered."""
        if self._rendered[0] != when:
            self._rendered = (when, datetime.fromtimestamp(when, self._zone).strftime(DATE_FORMAT))
        return self._rendered[1]

    def parse(self, date: str) -> int:
        """An event_date (or a bare date) back to Unix seconds; ValueError if malformed."""
        try:
            local = datetime.strptime(date, DATE_FORMAT)
        except ValueError:
            local = datetime.strptime(date, "%Y-%m-%d")
        return int(local.replace(tzinfo=self._zone).timestamp())


def encode_event(event_id: int, whatsapp_id: str, action: str, date: str, data: bytes) -> bytes:
    head = {"id": event_id, "whatsapp_id": whatsapp_id, "event_action": action, "event_date": date}
    return json_bytes(head | {"status_code": None})[:-1] + b',"event_data":' + data + b"}"


class AccountLog:
    """One account's messages and events. The caller holds the simulator's lock."""

    def __init__(self, whatsapp_id: str, number: str, ids: Iterator[int], options: Options) -> None:
        self.whatsapp_id = whatsapp_id
        self.number = number  # the account's own WhatsApp id: from/to of its messages
        self._ids = ids
        self._options = options
        self._events: list[Entry] = []
        self._history: dict[str, collections.deque[tuple[int, int, bytes]]] = {}
        self._sent = 0  # messages so far: numbers their ids and picks their texts
        self._tag = hashlib.sha256(whatsapp_id.encode()).hexdigest()[:4].upper()

    # --- recording ---------------------------------------------------------------------------
    def incoming(self, chat: dict[str, Any], t: float, **kwargs: Any) -> dict[str, Any]:
        """A customer's message in ``chat`` (a get-chats dict, changed in place); see ``_message``."""
        unread = _unread(chat)
        message = self._message(chat, False, t, **kwargs)
        chat["unreadCount"] = unread + 1
        return message

    def outgoing(self, chat: dict[str, Any], t: float, **kwargs: Any) -> dict[str, Any]:
        """Our message in ``chat``: sending marks the chat read."""
        _unread(chat)
        message = self._message(chat, True, t, **kwargs)
        chat["unreadCount"] = 0
        return message

    def read(self, chat: dict[str, Any]) -> None:
        _unread(chat)
        chat["unreadCount"] = 0

    def _message(
        self,
        chat: dict[str, Any],
        ours: bool,
        t: float,
        *,
        body: str | None = None,
        author: str | None = None,
        media: bool = False,
        forwarded: bool = False,
        logged_at: float | None = None,
    ) -> dict[str, Any]:
        """Builds, keeps and logs one message; ``logged_at`` is the event's time (default ``t``)."""
        chat_id, when = chat["id"], int(t)
        self._sent += 1
        msg_id = f"3EB0{self._tag}{self._sent:012X}"
        texts = AGENT_TEXTS if ours else CUSTOMER_TEXTS
        text = texts[self._sent % len(texts)] if body is None else body
        marker = self._options.body_marker
        message: dict[str, Any] = {
            "_id": msg_id,
            "id": f"{'true' if ours else 'false'}_{chat_id}_{msg_id}",
            "ack": 1,
            "hasMedia": media,
            "mediaKey": _media_key(msg_id, marker) if media else "",
            "body": f"{text} {marker}" if marker else text,
            "type": "image" if media else "chat",
            "timestamp": when,
            "from": self.number if ours else chat_id,
            "to": chat_id if ours else self.number,
            "isForwarded": forwarded,
        }
        if chat_id.endswith("@g.us"):
            message["author"] = self.number if ours else author or _member(chat, self.number)
        encoded = json_bytes(message)
        kept = self._history.setdefault(chat_id, collections.deque(maxlen=HISTORY))
        kept.append((when, self._sent, encoded))
        if type(chat.get("timestamp")) is not int or chat["timestamp"] < when:
            chat["timestamp"] = when
        logged = t if logged_at is None else logged_at
        self._add("create" if ours else "message", b'{"message":' + encoded + b"}", logged)
        return message

    def ack(self, message_id: str, ack: int, t: float) -> int:
        """An ``ack`` event: our message ``message_id`` was delivered (2) or read (3)."""
        chat_id = message_id.split("_")[1] if message_id.count("_") >= 2 else ""
        kept = self._history.get(chat_id, collections.deque())
        for i, (when, seq, encoded) in enumerate(kept):
            message = json.loads(encoded)
            if message["id"] == message_id:
                message["ack"] = ack
                encoded = json_bytes(message)
                kept[i] = (when, seq, encoded)
                return self._add("ack", b'{"message":' + encoded + b',"ack":%d}' % ack, t)
        raise KeyError(f"no message {message_id!r} in the history")

    def event(self, action: str, data: Any, t: float) -> int:
        """Logs any event, malformed ones included; returns its id."""
        return self._add(action, json_bytes(data), t)

    def _add(self, action: str, data: bytes, t: float) -> int:
        event_id, when = next(self._ids), int(t)
        entry = (when, event_id, action, self._encode(event_id, action, when, data))
        if self._events and _WHEN(self._events[-1]) > when:
            bisect.insort(self._events, entry)  # a late event (test scripts): keep the order
        else:
            self._events.append(entry)
        excess = len(self._events) - self._options.max_events
        if excess > self._options.max_events // 10:  # trimmed in batches: a list drops its head in O(n)
            del self._events[:excess]
        return event_id

    def _encode(self, event_id: int, action: str, when: int, data: bytes) -> bytes:
        return encode_event(event_id, self.whatsapp_id, action, self._options.render(when), data)

    def extra(self, action: str, data: bytes, t: float) -> Entry:
        """An event outside the log (a fault's), with a real id so readers can de-duplicate it."""
        event_id, when = next(self._ids), int(t)
        return (when, event_id, action, self._encode(event_id, action, when, data))

    def rerender(self) -> None:
        """Writes every event_date again, after the time zone changed."""
        for i, (when, event_id, action, raw) in enumerate(self._events):
            event = json.loads(raw)
            data = json_bytes(event["event_data"])
            self._events[i] = (when, event_id, action, self._encode(event_id, action, when, data))

    # --- reading -----------------------------------------------------------------------------
    def select(self, since: int | None, action: str | None, extra: Sequence[Entry] = ()) -> list[Entry]:
        """Events at or after ``since`` (inclusive), of one action or all, oldest first."""
        start = 0 if since is None else bisect.bisect_left(self._events, since, key=_WHEN)
        chosen = self._events[start:]
        if extra:
            chosen = sorted([*chosen, *(e for e in extra if since is None or e[0] >= since)])
        if action is not None:
            chosen = [e for e in chosen if e[2] == action]
        return chosen

    def history(self, chat_id: str, now: float) -> list[bytes]:
        """get-history's messages: the last ``HISTORY``, none older than ``HISTORY_AGE``."""
        kept = sorted(m for m in self._history.get(chat_id, ()) if m[0] >= now - HISTORY_AGE)
        ordered = reversed(kept) if self._options.history_newest_first else iter(kept)
        return [encoded for _, _, encoded in ordered]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for *_, raw in self._events]


def _unread(chat: dict[str, Any]) -> int:
    if type(chat.get("unreadCount")) is not int or not isinstance(chat.get("id"), str):
        raise ValueError(f"chat {chat.get('id')!r} has no integer unreadCount or no string id")
    return int(chat["unreadCount"])


def _member(chat: dict[str, Any], number: str) -> str:
    """Who wrote in a group: its first member other than us."""
    members = chat.get("groupMetadata", {}).get("participants", [])
    others = [p["id"] for p in members if isinstance(p, dict) and p.get("id") != number]
    return others[0] if others else "79990000000@c.us"


def _media_key(msg_id: str, marker: str) -> str:
    key = base64.b64encode(hashlib.sha256(msg_id.encode()).digest()).decode()
    return f"{marker}{key}"
