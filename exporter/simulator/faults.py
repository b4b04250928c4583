"""Faults: which exist, their parameters, and the answers that replace or corrupt a normal one.

A fault is chosen per account and command (``get-chats``, ``events-get``, ``get-history``; or
``sessions-get`` for all accounts) and changes the next answers until cleared. There are four
families, applied in this order:

- replacing answers, instead of any data: ``down`` (connection dropped), ``unauthorized``,
  ``api_error``, ``rate_limited``, ``bad_gateway``, ``not_json``, ``result_not_ok``,
  ``echo_key`` (``mode="error"``) and ``redirect``;
- corrupted data, inside an otherwise normal answer: ``bad_chat``, ``surrogate``,
  ``raw_surrogate``, ``huge_number``, ``echo_key`` (``mode="name"``) for get-chats;
  ``bad_events`` for events-get; ``bad_envelope`` for events-get and get-history (events.py);
- corrupted session lists (``sessions-get`` only), in sessions.py: ``sessions_*``;
- hostile delivery of the (normal or corrupted) answer, in streams.py: ``drip``,
  ``headers_then_hang``, ``chunked_forever``, ``silent``, ``gzip_bomb``, ``huge_html``.

``delay`` is slept before the answer (``slow`` is just that), except for ``drip`` and
``chunked_forever``, where it is the pause between bytes or chunks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .wire import JSON_TYPE, UNAUTHORIZED, Reply, error, json_bytes

_ALL_NUMBERS = ("unreadCount", "timestamp", "creation", "size")
COMMANDS: tuple[str, ...] = ("get-chats", "sessions-get", "events-get", "get-history")
# bad_events' kinds, the malformed events events.py builds: no usable message, or no event at all.
BAD_EVENTS = ("no_message", "null_message", "bad_message", "unknown_action", "not_an_object", "no_id")
ENVELOPES = {"list": COMMANDS[2:], "data_object": COMMANDS[2:], "no_pages": COMMANDS[2:3]}
ENVELOPES |= {"bad_counts": COMMANDS[2:3]}  # mode -> the commands it applies to
# Each fault's parameters and their defaults; a default's type is the parameter's type.
PARAMS: dict[str, dict[str, Any]] = {
    "slow": {},
    "down": {},
    "unauthorized": {},
    "api_error": {},
    "rate_limited": {},
    "bad_gateway": {},
    "not_json": {},
    "result_not_ok": {},
    "bad_chat": {},
    "drip": {"whole": False},  # whole: drip the status line and headers too, not just the body
    "headers_then_hang": {"status": 200},
    "chunked_forever": {},
    "silent": {},
    "gzip_bomb": {"size": 2 * 2**30},  # inflated bytes
    "huge_html": {"size": 300 * 10**6, "status": 200},
    "redirect": {"status": 302, "target": ""},  # target: a base URL; the command is appended
    "surrogate": {"fields": ["name", "id"]},
    "raw_surrogate": {"fields": ["name"]},
    "huge_number": {"fields": list(_ALL_NUMBERS)},
    "echo_key": {"mode": "error", "status": 500},
    "sessions_ignore_page": {},
    "sessions_empty": {"times": 1},  # answers this many times, then clears itself
    "sessions_short": {"times": 1, "drop": 0},  # drop: sessions left out; 0 means half of them
    "sessions_growing_pages": {},
    "sessions_surrogate": {"fields": ["unique_id", "status"]},
    "bad_events": {"kinds": list(BAD_EVENTS)},  # malformed events among the real ones
    "bad_envelope": {"mode": "list"},  # an answer that is not the documented envelope
}
FAULTS = frozenset(PARAMS)
SESSIONS_FAULTS = frozenset(f for f in FAULTS if f.startswith("sessions_"))
CHATS_ONLY = frozenset({"bad_chat", "surrogate", "raw_surrogate", "huge_number"})
# The commands a fault is limited to; the others apply to every command.
ONLY: dict[str, tuple[str, ...]] = {"bad_events": ("events-get",), "bad_envelope": COMMANDS[2:]}
ONLY.update((f, ("get-chats",)) for f in CHATS_ONLY)
ONLY.update((f, ("sessions-get",)) for f in SESSIONS_FAULTS)
STREAMS = frozenset({"drip", "headers_then_hang", "chunked_forever", "silent", "gzip_bomb", "huge_html"})
DEFAULT_DELAY = {"drip": 0.3, "chunked_forever": 0.05}
_FIELD_CHOICES = {
    "surrogate": {"name", "id"},
    "raw_surrogate": {"name", "id"},
    "huge_number": set(_ALL_NUMBERS),
    "sessions_surrogate": {"unique_id", "status", "name"},
    "bad_events": set(BAD_EVENTS),
}
_BAD_GATEWAY_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center>"
    b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
# not_json claims to be JSON on purpose: clients must not trust the header either.
REPLIES: dict[str, Reply] = {
    "unauthorized": UNAUTHORIZED,
    "api_error": error("Internal Server Error", "Session error"),
    "rate_limited": (
        429,
        json_bytes({"name": "Too Many Requests", "message": "Rate limit exceeded.", "code": 0}),
        JSON_TYPE,
        {"Retry-After": "1"},
    ),
    "bad_gateway": (502, _BAD_GATEWAY_HTML, "text/html", {}),
    "not_json": (200, b"<html>maintenance</html>", JSON_TYPE, {}),
    "result_not_ok": (
        200,
        json_bytes({"result": "ERROR", "message": "Session is restarting"}),
        JSON_TYPE,
        {},
    ),
}
HUGE = b"1" + b"0" * 400  # beyond a float's range, and valid JSON
_SENTINEL = 7_777_777_777_777_777_777  # stands for HUGE until the chat is serialised


@dataclass
class Fault:
    """A chosen fault; ``used`` counts the answers it shaped (self-clearing and growing faults)."""

    name: str
    delay: float
    params: Mapping[str, Any]
    used: int = 0
    events: list[Any] = field(default_factory=list)  # bad_events: this account's malformed events


def make_fault(name: str, delay: float | None, params: Mapping[str, Any], command: str) -> Fault:
    """Checks a fault request and fills in defaults; ValueError names what is wrong."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {', '.join(COMMANDS)}, not {command!r}")
    if command not in ONLY.get(name, COMMANDS):
        raise ValueError(f"fault {name!r} does not apply to {command}")
    if delay is None:
        delay = DEFAULT_DELAY.get(name, 0.0)
    if delay < 0:
        raise ValueError("delay must not be negative")
    defaults = PARAMS[name]
    unknown = set(params) - set(defaults)
    if unknown:
        raise ValueError(f"fault {name!r} takes no parameter {', '.join(sorted(unknown))}")
    merged = dict(defaults)
    for key, value in params.items():
        merged[key] = _check(name, key, value, defaults[key])
    if name == "redirect":
        if merged["status"] not in (301, 302, 303, 307, 308):
            raise ValueError("redirect status must be 301, 302, 303, 307 or 308")
        if not str(merged["target"]).startswith(("http://", "https://")):
            raise ValueError("redirect needs target, an http(s) URL")
    if name == "echo_key" and merged["mode"] not in ("error", "name"):
        raise ValueError("echo_key mode must be 'error' or 'name'")
    if name == "echo_key" and merged["mode"] == "name" and command != "get-chats":
        raise ValueError("echo_key mode 'name' applies to get-chats only")
    if name == "bad_envelope" and command not in ENVELOPES.get(merged["mode"], ()):
        modes = ", ".join(m for m, commands in ENVELOPES.items() if command in commands)
        raise ValueError(f"bad_envelope mode for {command} must be one of {modes}")
    if "status" in merged and not 100 <= merged["status"] <= 599:
        raise ValueError("status must be an HTTP status code")
    return Fault(name, float(delay), merged)


def _check(fault: str, key: str, value: Any, default: Any) -> Any:
    if key in ("fields", "kinds"):
        if not isinstance(value, (list, tuple)) or not set(value) <= _FIELD_CHOICES[fault] or not value:
            raise ValueError(f"{key} must be a non-empty list of {sorted(_FIELD_CHOICES[fault])}")
        return list(value)
    kind = type(default)
    if kind is int and (type(value) is not int or value < 0):
        raise ValueError(f"{key} must be a non-negative integer")
    if kind is not int and not isinstance(value, kind):
        raise ValueError(f"{key} must be a {kind.__name__}")
    return value


def replacing(fault: Fault, api_key: str, command: str) -> Reply | None:
    """The answer that replaces the normal one, or None to build the normal one."""
    if fault.name in REPLIES:
        return REPLIES[fault.name]
    if fault.name == "echo_key" and fault.params["mode"] == "error":
        body = {"name": "Unauthorized", "message": f"Invalid key {api_key} (escaped: {_escaped(api_key)})"}
        return fault.params["status"], json_bytes(body | {"code": 0}), _echo_type(api_key), {}
    if fault.name == "redirect":
        location = f"{fault.params['target'].rstrip('/')}/{command}"
        return fault.params["status"], b"", "text/html", {"Location": location}
    return None


def chats_body(chats: list[dict[str, Any]], fault: Fault | None, api_key: str) -> tuple[bytes, str] | None:
    """A ``get-chats`` body (and content type) with corrupted data, or None for a normal one."""
    if fault is None:
        return None
    if fault.name == "bad_chat":
        data = copy.deepcopy(chats)
        data += [
            {"id": f"7999000000{i}@c.us", "name": "Filler", "unreadCount": 0} for i in range(2 - len(data))
        ]
        data[0]["unreadCount"] = "seven"
        del data[1]["id"]
        return json_bytes({"result": "OK", "data": data}), JSON_TYPE
    extra = _extra_chats(fault, api_key)
    if extra is None:
        return None
    items = [json_bytes(chats)[1:-1], *extra] if chats else extra
    content_type = _echo_type(api_key) if fault.name == "echo_key" else JSON_TYPE
    return b'{"result":"OK","data":[' + b",".join(items) + b"]}", content_type


def _extra_chats(fault: Fault, api_key: str) -> list[bytes] | None:
    """The corrupted chats a fault appends, serialised by hand where JSON libraries would refuse."""
    fields = fault.params.get("fields", [])
    if fault.name in ("surrogate", "raw_surrogate"):
        bad = _extra_chat("7999\ud800000@c.us" if "id" in fields else "79990000777@c.us")
        bad["name"] = "Broken \ud800 name" if "name" in fields else "Broken"
        if fault.name == "surrogate":  # the JSON escape \ud800: valid JSON text, but no character
            return [json.dumps(bad, separators=(",", ":")).encode()]
        # bytes ED A0 80: what UTF-8 would be for \ud800 if it were allowed, so invalid UTF-8
        return [json.dumps(bad, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")]
    if fault.name == "huge_number":
        bad = _extra_chat("120363000000000777@g.us", group=True)
        for key in fields:
            (bad["groupMetadata"] if key in ("creation", "size") else bad)[key] = _SENTINEL
        return [json_bytes(bad).replace(str(_SENTINEL).encode(), HUGE)]
    if fault.name == "echo_key" and fault.params["mode"] == "name":
        return [
            json_bytes(_extra_chat("79990000777@c.us") | {"name": f"Key {api_key}"}),
            json_bytes(_extra_chat("79990000778@c.us") | {"name": f"Escaped key {_escaped(api_key)}"}),
        ]
    return None


def _escaped(text: str) -> str:
    """The key as a JSON string's inside: what a JSON log line or body shows of it."""
    return json.dumps(text)[1:-1]


def _echo_type(api_key: str) -> str:
    return f"{JSON_TYPE}; key={api_key}"


def _extra_chat(chat_id: str, group: bool = False) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "id": chat_id,
        "name": "Extra",
        "isGroup": group,
        "isReadOnly": False,
        "unreadCount": 1,
        "timestamp": 1_735_689_600,
        "pinned": False,
        "isMuted": False,
        "muteExpiration": 0,
    }
    if group:
        chat["groupMetadata"] = {
            "id": chat_id,
            "creation": 1_700_000_000,
            "owner": "79990000001@c.us",
            "size": 1,
            "participants": [{"id": "79990000001@c.us", "isAdmin": True, "isSuperAdmin": True}],
        }
    return chat
