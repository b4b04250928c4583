"""events-get and get-history answers, decoded into what reply times need and nothing more.

One parser, msgspec's: the answer's bytes are decoded into typed structs in one compiled pass.
A message's ``body``, ``mediaKey``, caption and every other content field are not declared, so
msgspec skips them: they are never copied out of the answer's bytes, let alone stored.

The envelope (``{"result": "OK", "pages": P, "page": N, "data": [...]}``) must be whole, or the
answer is an invalid response (the client then classifies it: error object, not JSON, ...). An
answer msgspec refuses as a whole is read again event by event (:func:`_again`): one without an
integer id or a date is skipped and counted; a
``message`` or ``create`` without a usable message keeps its id (so that the cursor reads it once)
and comes without a message, which the poller counts. Neither fails the poll.

A message's direction and chat come from its ``id`` (``true_CHAT_...``: sent by this account,
``false_CHAT_...``: received), as documented; ``from``/``to`` only when the id has no chat
part. A timestamp must be a finite Unix time in seconds, not more than :data:`FUTURE` ahead of
this machine's clock: a message dated in the future would make every later answer look older
than it and so keep its customer counted as unanswered. An event dated after tomorrow (UTC) is
skipped and counted likewise: as the cursor it would hide every later event.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

from ..snapshot.replies import Message
from .parse import InvalidResponse, _json_type

# Clocks differ: a phone's, WhatsGate's, this machine's. Minutes ahead is skew; more is an error.
FUTURE = 300.0
# event_date is local time in an undocumented zone, at most 14 hours ahead of UTC: a date after
# tomorrow (UTC) is a broken clock's, and taken as the cursor it would hide every later event.
DATE_AHEAD = 86400.0
_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Message(msgspec.Struct, gc=False):
    id: str
    timestamp: float
    from_: str | None = msgspec.field(name="from", default=None)
    to: str | None = None


class _Data(msgspec.Struct, gc=False):
    message: _Message | None = None


# The answer in one compiled pass, for when every event in it is well formed (almost always):
# decoding each event apart costs a second call per event. Anything it refuses is read again by
# json.loads and converted event by event (_again), where one bad event is skipped on its own.
class _WholeEvent(msgspec.Struct, gc=False):
    id: int
    event_date: str
    event_action: str = ""
    event_data: _Data | None = None


class _WholeEnvelope(msgspec.Struct):
    result: str
    data: list[_WholeEvent]
    pages: _Count
    page: _Count


class _History(msgspec.Struct):
    result: str
    data: list[_Message]


class _Listed(msgspec.Struct):  # either answer as json.loads read it, converted item by item
    result: str
    data: list[Any]


class Event(msgspec.Struct, frozen=True, gc=False):
    """One usable event, reduced."""

    id: int
    date: str  # event_date exactly as received: the cursor sends it back byte for byte
    action: str  # "message", "create", "disconnect", ... (as received)
    # For message and create; None for every other action, and where the message is unusable.
    message: Message | None


@dataclass(frozen=True)
class EventsPage:
    events: tuple[Event, ...]  # in answer order
    page: int  # the page this answer says it is
    pages: int  # total pages the answer announces
    skipped: int  # events in the answer without a usable id or date (counted, skipped)


# What convert raises for what it refuses: a lone surrogate where no string belongs (or in a key)
# it cannot even describe.
_REFUSED = (msgspec.ValidationError, UnicodeEncodeError)
_MESSAGE_ACTIONS = frozenset({"message", "create"})
_whole = msgspec.json.Decoder(_WholeEnvelope)
_history = msgspec.json.Decoder(_History)


def _usable(raw: _Message, event_id: int | None, latest: float) -> Message | None:
    direction, _, rest = raw.id.partition("_")
    if direction not in ("true", "false"):
        return None
    outgoing = direction == "true"
    chat = rest.partition("_")[0] or ((raw.to if outgoing else raw.from_) or "")
    if "@" not in chat or not chat.isprintable():
        return None
    ts = raw.timestamp
    if not 0 < ts <= latest:  # also refuses NaN and inf
        return None
    return Message(chat, outgoing, ts, event_id)


def _latest_date(now: float) -> str:
    """The latest event_date accepted, written as documented (``YYYY-MM-DD HH:MM:SS``): the cursor
    compares dates as strings, so any date that sorts after it is refused."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + DATE_AHEAD))


def _reduced(
    event: _WholeEvent | _EventHead, data: _Data | None, latest: float, latest_date: str
) -> Event | None:
    date = event.event_date
    if not date or not date.isprintable() or date > latest_date:
        return None
    message = None
    if event.event_action in _MESSAGE_ACTIONS and data is not None and data.message is not None:
        message = _usable(data.message, event.id, latest)
    return Event(event.id, event.event_date, event.event_action, message)


class _EventHead(msgspec.Struct):
    id: int
    event_date: str
    event_action: str = ""


class _Paged(_Listed):
    pages: _Count
    page: _Count


_L = TypeVar("_L", bound=_Listed)


def _again(body: bytes | bytearray, kind: type[_L]) -> _L:
    """An answer msgspec refused as a whole, read by json.loads and converted to ``kind`` (its
    items still to convert one by one), or InvalidResponse when it is not that envelope.

    Reached by a bad event or message, and by a lone surrogate escape (``"\\ud83d"``, an emoji
    cut in half) in any message's body, which msgspec refuses and json.loads keeps as it is: one
    customer's broken text must not stop the account's event log at its cursor."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidResponse("answer: not JSON") from None
    try:
        return msgspec.convert(payload, kind)
    except _REFUSED:
        why = _why(payload, paged=kind is _Paged)
    raise InvalidResponse(why)


def _converted_event(obj: Any, latest: float, latest_date: str) -> Event | None:
    try:
        event = msgspec.convert(obj, _WholeEvent)
        return _reduced(event, event.event_data, latest, latest_date)
    except _REFUSED:
        pass
    try:  # its message is unusable: it keeps its id, so that the cursor reads it only once
        return _reduced(msgspec.convert(obj, _EventHead), None, latest, latest_date)
    except _REFUSED:
        return None


def decode_events(body: bytes | bytearray) -> EventsPage:
    """An events-get answer, or InvalidResponse when it is not the documented envelope with
    ``result: OK``."""
    now = time.time()  # one reading for both bounds
    latest, latest_date = now + FUTURE, _latest_date(now)
    try:
        whole = _whole.decode(body)
    except (msgspec.DecodeError, UnicodeError):
        pass
    else:
        _ok(whole.result)
        found = [
            e
            for event in whole.data
            if (e := _reduced(event, event.event_data, latest, latest_date)) is not None
        ]
        return EventsPage(tuple(found), whole.page, whole.pages, len(whole.data) - len(found))
    paged = _again(body, _Paged)
    _ok(paged.result)
    events = [e for obj in paged.data if (e := _converted_event(obj, latest, latest_date)) is not None]
    return EventsPage(tuple(events), paged.page, paged.pages, len(paged.data) - len(events))


def decode_history(body: bytes | bytearray, chat_id: str) -> tuple[tuple[Message, ...], int]:
    """get-history's messages of ``chat_id`` and how many were skipped (unusable, or of another
    chat); InvalidResponse when the answer is not the documented envelope with ``result: OK``."""
    messages: list[_Message | None]
    try:
        answer = _history.decode(body)
        result, messages = answer.result, list(answer.data)
    except (msgspec.DecodeError, UnicodeError):
        again = _again(body, _Listed)
        result, messages = again.result, [_message_of(obj) for obj in again.data]
    _ok(result)
    latest = time.time() + FUTURE
    kept = [m for raw in messages if raw is not None and (m := _usable(raw, None, latest)) is not None]
    kept = [m for m in kept if m.chat_id == chat_id]
    return tuple(kept), len(messages) - len(kept)


def _message_of(obj: Any) -> _Message | None:
    try:
        return msgspec.convert(obj, _Message)
    except _REFUSED:
        return None


def _ok(result: str) -> None:
    if result != "OK":
        raise InvalidResponse("answer: result is not OK")  # the client says why


def _why(payload: Any, paged: bool) -> str:
    """Why json.loads's ``payload`` is still not the documented envelope (the client has
    already named an answer that is not a JSON object with ``result: OK``)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return f"data: expected an array, got {_json_type(data)}"
    if paged:
        for key in ("pages", "page"):
            value = payload.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"{key}: expected a whole number, got {_json_type(value)}"
    return "not the documented envelope (invalid UTF-8 or an unexpected type)"
