"""The demo's stand-in for WhatsGate: a loopback server, its data and its faults. Not the product.

It exists so that new users can watch the exporter work (``whatsgate-exporter --demo``) before
they have a WhatsGate account, and so that tests and benchmarks can produce on demand what the
real service produces rarely or only under attack: unread piling up, customers waiting, slow,
endless or huge answers, malformed chats, sessions losing authorisation, 10,000 accounts.

It depends on nothing else in the package, so that it stays a faithful outsider. Modules:
server.py (``Simulator``: accounts, control methods, HTTP), data.py (generated chats and
names), support.py (the demo's support line and office hours), faults.py, sessions.py and
streams.py (faults), wire.py (reply types), cli.py (``python -m exporter.simulator``).

Tests in the same process drive the simulator through its methods; a simulator in another
process is driven over HTTP (no API key: it should only ever listen on loopback):

    POST /_sim/chat   {"whatsapp_id": "...", "chat_id": "...", "fields": {"unreadCount": 5}}
    POST /_sim/status {"whatsapp_id": "...", "status": "AUTH"}
    POST /_sim/fault  {"whatsapp_id": null, "fault": "slow", "delay": 2.5}
    POST /_sim/fault  {"whatsapp_id": "a", "fault": "redirect", "status": 307, "target": "http://..."}
    POST /_sim/fault  {"whatsapp_id": null, "fault": "silent", "command": "sessions-get"}

They answer 200 ``{"ok": true}`` or 400 ``{"ok": false, "error": "..."}``. Keys of a fault's
body other than whatsapp_id, fault, delay and command are the fault's parameters.

Faults (``set_fault(whatsapp_id, fault, delay=None, *, command="get-chats", **params)``;
``delay`` is waited before answering, except where it is a pace):

- ``slow``: answers normally after ``delay``. ``down``: drops the connection unanswered.
- ``unauthorized``, ``api_error``, ``rate_limited`` (429, Retry-After), ``bad_gateway`` (502
  HTML), ``not_json`` (HTML labelled JSON), ``result_not_ok``: WhatsGate's error answers.
- ``bad_chat``: one chat with a string ``unreadCount``, one without ``id``.
- ``drip``: the normal answer, the body one byte every ``delay`` seconds (default 0.3);
  ``whole=True`` drips the status line and headers too.
- ``headers_then_hang``: status (``status``, default 200) and headers, then nothing.
- ``chunked_forever``: ``Transfer-Encoding: chunked``, a small chunk every ``delay`` (0.05) s.
- ``silent``: reads the request and never answers.
- ``gzip_bomb``: ``Content-Encoding: gzip``, ~1/1000 of ``size`` bytes on the wire inflating
  to ``size`` (default 2 GiB) bytes of one JSON chat; generated as sent, never held.
- ``huge_html``: ``status`` (default 200) with ``size`` (default 300 MB) bytes of HTML.
- ``redirect``: ``status`` (301/302/303/307/308, default 302) to ``target`` + "/" + command.
- ``surrogate``: an extra chat whose ``fields`` (default ["name", "id"]) hold the JSON escape
  ``\\ud800``; ``raw_surrogate``: the same with the raw bytes ED A0 80 (default ["name"]).
- ``huge_number``: an extra group whose ``fields`` (default unreadCount, timestamp, creation,
  size) are ``1`` followed by 400 zeros.
- ``echo_key``: echoes the request's X-Api-Key, plain and JSON-escaped, in the error
  message (``mode="error"``, ``status`` default 500) or in two chat names (``mode="name"``),
  and in the Content-Type header (``application/json; charset=UTF-8; key=...``).
- sessions-get only (whatsapp_id None): ``sessions_ignore_page`` (every page is page 1),
  ``sessions_empty`` (no sessions, ``times`` answers, default 1, then clears itself),
  ``sessions_short`` (``drop`` sessions left out, default half, ``times`` as above),
  ``sessions_growing_pages`` (``pages`` grows by one on every request; extra pages are empty),
  ``sessions_surrogate`` (an extra session whose ``fields``, default ["unique_id", "status"],
  contain ``\\ud800``). Any fault not limited to get-chats also applies to sessions-get with
  ``command="sessions-get"``.

Standalone: ``python -m exporter.simulator --listen 127.0.0.1:8080 --demo``.
"""

from .cli import main
from .data import DEMO_ACCOUNTS, SimAccount
from .faults import FAULTS
from .server import Simulator
from .support import DEMO_ACCOUNT_SCHEDULES, DEMO_SCHEDULES

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_ACCOUNT_SCHEDULES",
    "DEMO_SCHEDULES",
    "FAULTS",
    "SimAccount",
    "Simulator",
    "main",
]
