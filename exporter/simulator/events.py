"""``events-get`` and ``get-history``: requests checked, answers paged and framed, and their faults.

``events-get`` pages the account's log (log.py) after an inclusive ``date`` bound, oldest
event first unless ``Options.newest_first``; without ``WhatsappID`` it mixes every account's
events, as WhatsGate mixes every session of the key. ``get-history`` answers one chat's last
messages. Their own faults: ``bad_events`` puts malformed events among the real ones (each
with a real id and date, so a reader past them does not see them again), ``bad_envelope``
answers something other than the documented envelope.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Sequence
from typing import Any

from .faults import Fault
from .log import AccountLog, Entry, Options
from .wire import JSON_TYPE, Reply, error, json_bytes

MAX_PAGE = 100  # page_cnt above this is served as this, as WhatsGate documents
_BAD_BODY = "Where is my refund?"


def events_reply(
    logs: Sequence[AccountLog], req: dict[str, Any], options: Options, fault: Fault | None
) -> Reply:
    """One page of the events of ``logs`` (one account's, or all) as ``req`` asks."""
    try:
        page_cnt, page = int(req.get("page_cnt", 10)), int(req.get("page", 1))
    except (TypeError, ValueError):
        page_cnt = page = 0
    if page_cnt < 1 or page < 1:
        return error("Bad Request", "page and page_cnt must be positive integers")
    page_cnt = min(page_cnt, MAX_PAGE)
    date, action = req.get("date"), req.get("action")
    since = None
    if date not in (None, ""):
        with contextlib.suppress(ValueError):
            since = options.parse(date) if isinstance(date, str) else None
        if since is None:
            return error("Bad Request", "date must be YYYY-MM-DD HH:MM:SS")
    action = action if isinstance(action, str) and action else None
    extra = fault.events if fault is not None and fault.name == "bad_events" else ()
    if len(logs) == 1:
        chosen = logs[0].select(since, action, extra)
    else:
        chosen = list(heapq.merge(*(log.select(since, action) for log in logs)))
    if options.newest_first:
        chosen.reverse()
    first = (page - 1) * page_cnt
    data = b"[" + b",".join(raw for *_, raw in chosen[first : first + page_cnt]) + b"]"
    pages, elements = math.ceil(len(chosen) / page_cnt), len(chosen)
    mode = fault.params["mode"] if fault is not None and fault.name == "bad_envelope" else None
    if mode == "list":
        return 200, data, JSON_TYPE, {}
    if mode == "no_pages":
        return 200, b'{"result":"OK","data":' + data + b"}", JSON_TYPE, {}
    if mode == "data_object":
        data = b'{"events":' + data + b"}"
    head: dict[str, Any] = {"result": "OK", "pages": pages, "elements": elements, "page": page}
    if mode == "bad_counts":
        head |= {"pages": str(pages), "elements": -1, "page": None}
    return 200, json_bytes(head)[:-1] + b',"data":' + data + b"}", JSON_TYPE, {}


def history_reply(log: AccountLog, req: dict[str, Any], now: float, fault: Fault | None) -> Reply:
    """``get-history`` for ``req["recipient"]["id"]``: an unknown chat has no messages."""
    recipient = req.get("recipient")
    chat_id = recipient.get("id") if isinstance(recipient, dict) else None
    if not isinstance(chat_id, str) or not chat_id:
        return error("Bad Request", "Missing required parameter: recipient")
    data = b"[" + b",".join(log.history(chat_id, now)) + b"]"
    mode = fault.params["mode"] if fault is not None and fault.name == "bad_envelope" else None
    if mode == "list":
        return 200, data, JSON_TYPE, {}
    if mode == "data_object":
        data = b'{"messages":' + data + b"}"
    return 200, b'{"result":"OK","data":' + data + b"}", JSON_TYPE, {}


def bad_events(log: AccountLog, kinds: Sequence[str], now: float, marker: str) -> list[Entry]:
    """The malformed events of a ``bad_events`` fault, dated ``now``, in the order of ``kinds``."""
    body = f"{_BAD_BODY} {marker}" if marker else _BAD_BODY
    usable = {
        "_id": "3EB0BAD",
        "id": "false_79990000999@c.us_3EB0BAD",
        "ack": 1,
        "hasMedia": False,
        "mediaKey": "",
        "body": body,
        "type": "chat",
        "timestamp": int(now),
        "from": "79990000999@c.us",
        "to": log.number,
        "isForwarded": False,
    }
    made: dict[str, tuple[str, Any]] = {
        "no_message": ("message", {}),
        "null_message": ("message", {"message": None}),
        "bad_message": ("create", {"message": usable | {"id": 42, "timestamp": "yesterday", "from": None}}),
        "unknown_action": ("reaction", {"message": usable, "reaction": "👍"}),
    }
    events = []
    for kind in kinds:
        if kind in made:
            action, data = made[kind]
            events.append(log.extra(action, json_bytes(data), now))
            continue
        when, event_id, action, raw = log.extra("message", json_bytes({"message": usable}), now)
        if kind == "not_an_object":
            raw = json_bytes(f"event {event_id}: {body}")
        else:  # no_id: a well-formed event without its id
            raw = raw.replace(b'"id":%d,' % event_id, b"", 1)
        events.append((when, event_id, action, raw))
    return events
