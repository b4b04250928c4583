"""The demo's stand-in for WhatsGate: a loopback server, its data and its faults. Not the product.

It exists so that new users can watch the exporter work (``whatsgate-exporter --demo``) before
they have a WhatsGate account, and so that tests and benchmarks can produce on demand what the
real service produces rarely or only under attack: unread piling up, customers waiting for an
answer, slow, endless or huge answers, malformed chats and events, sessions losing
authorisation, 10,000 accounts.

It depends on nothing else in the package, so that it stays a faithful outsider. Modules:
server.py (``Simulator``: accounts, HTTP), script.py (control methods for messages), data.py
(generated chats and names), log.py (each account's messages and events), support.py (the
demo's support line and office hours), traffic.py (a past for chats, churn, benchmark volume),
events.py (events-get, get-history), faults.py, sessions.py and streams.py (faults), wire.py
(reply types), cli.py (``python -m exporter.simulator``).

Accounts: ``Simulator.demo()`` serves ``demo-support`` ("Support line"), ``demo-sales`` ("Sales
line") and ``demo-community`` ("Community"); ``Simulator.generate()`` serves ``bench-00``,
``bench-01``, ... The API key (header ``X-Api-Key``) is ``DEFAULT_API_KEY`` unless given; it
is public, and occurs in no id or name, so redacting it from logs changes nothing else.

Commands (POST /api/v1/COMMAND): ``sessions-get``, ``get-chats``, ``events-get`` and
``get-history``, shaped as documented. One message log per account feeds the last three:
a customer's message adds one unread and moves the chat's ``timestamp``; ours (``create``)
zeroes unread and moves it too; a read without answer zeroes unread only.

- ``events-get`` {WhatsappID, date, action, page_cnt, page} answers ``{"result": "OK",
  "pages": P, "elements": E, "page": N, "data": [event...]}``. ``date`` ("YYYY-MM-DD
  HH:MM:SS", in ``time_zone``) is an inclusive bound on event_date; ``page_cnt`` defaults to
  10 and is capped at 100; pages are oldest first, or newest first with ``newest_first``.
  Without WhatsappID it mixes every account's events. It answers whatever the session status.
  An event: ``{"id": N (one increasing sequence per simulator), "whatsapp_id", "event_action",
  "event_date" (seconds, in time_zone, default UTC), "status_code": null, "event_data"}``:

  - ``message`` (incoming) and ``create`` (ours): ``{"message": MESSAGE}``;
  - ``ack``: ``{"message": MESSAGE with its new ack, "ack": 2 or 3}`` (our answer delivered, read);
  - ``disconnect``: ``{"reason": "NAVIGATION"}`` (the demo's) or the reason given.

  MESSAGE: ``{"_id", "id": "true_"|"false_" + chat id + "_" + _id, "ack", "hasMedia",
  "mediaKey", "body", "type" ("chat", or "image" with media), "timestamp" (Unix seconds),
  "from", "to", "isForwarded"}``; in a group (``@g.us``) the chat is the group: ``from`` is the
  group for incoming messages, and ``author`` says who wrote. ``to`` / ``from`` of ours is the
  session's own number (sessions-get's ``wid``). Bodies are readable text, plus
  ``body_marker`` when set (in media keys too).
- ``get-history`` {WhatsappID, recipient: {id}} answers ``{"result": "OK", "data":
  [MESSAGE...]}``: the chat's last 100 messages, none older than 90 days, newest first
  (oldest first with ``history_newest_first`` false); a chat never written in has none.

Options (``Simulator(..., time_zone="Europe/Moscow", newest_first=True, ...)``, the same
keywords for ``demo()`` and ``generate()``, or ``set_options`` at run time): ``time_zone``,
``newest_first``, ``history_newest_first``, ``body_marker``, ``max_events`` (per account,
default 20,000, oldest dropped). Constructor only: ``history=True`` gives every chat a past
consistent with its unread count and timestamp (the demo always has one); ``events_per_poll=N``
adds N messages per account at each of its get-chats requests (benchmarks: also
``--events-per-poll``).

Tests in the same process drive the simulator through its methods (``receive``, ``reply``,
``read``, ``ack``, ``disconnect``, ``add_event``, ``set_chat``, ``set_status``, ``set_fault``,
``set_options``; ``events()``, ``history()``, ``chats()`` to look); a simulator in another
process is driven over HTTP (no API key: it should only ever listen on loopback). Times
(``at``) are Unix seconds and default to the simulator's clock:

    POST /_sim/chat       {"whatsapp_id": "...", "chat_id": "...", "fields": {"unreadCount": 5}}
    POST /_sim/status     {"whatsapp_id": "...", "status": "AUTH"}
    POST /_sim/fault      {"whatsapp_id": null, "fault": "slow", "delay": 2.5}
    POST /_sim/fault      {"whatsapp_id": "a", "fault": "redirect", "status": 307, "target": "http://..."}
    POST /_sim/fault      {"whatsapp_id": null, "fault": "silent", "command": "sessions-get"}
    POST /_sim/fault      {"whatsapp_id": "a", "fault": "bad_events", "command": "events-get"}
    POST /_sim/message    {"whatsapp_id": "a", "chat_id": "79991112233@c.us", "direction": "in",
                           "at": 1767225600, "body": "...", "author": "...", "media": false,
                           "forwarded": false, "logged_at": 1767225660, "name": "New customer"}
    POST /_sim/message    {"whatsapp_id": "a", "chat_id": "79991112233@c.us", "direction": "out", "at": ...}
    POST /_sim/read       {"whatsapp_id": "a", "chat_id": "79991112233@c.us"}
    POST /_sim/ack        {"whatsapp_id": "a", "message_id": "true_...", "ack": 3, "at": ...}
    POST /_sim/disconnect {"whatsapp_id": "a", "reason": "LOGOUT", "at": ...}
    POST /_sim/event      {"whatsapp_id": "a", "action": "anything", "data": {...}, "at": ...}
    POST /_sim/options    {"newest_first": true, "time_zone": "Europe/Moscow", "body_marker": "..."}

They answer 200 ``{"ok": true}`` (with ``"id"``, the message's or event's, for message, ack,
disconnect and event) or 400 ``{"ok": false, "error": "..."}``. A message to an unknown chat
creates it (a group if its id ends in ``@g.us``). ``logged_at`` is the event's time when
WhatsGate logged it after the message was sent. Keys of a fault's body other than
whatsapp_id, fault, delay and command are the fault's parameters.

Faults (``set_fault(whatsapp_id, fault, delay=None, *, command="get-chats", **params)``;
``command`` is get-chats, events-get, get-history or sessions-get; ``delay`` is waited before
answering, except where it is a pace; ``set_fault(None, None)`` clears every fault):

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
  to ``size`` (default ``2 * 2**30``) bytes of one JSON chat; generated as sent, never held.
- ``huge_html``: ``status`` (default 200) with ``size`` (default ``300 * 10**6``) bytes of HTML.
- ``redirect``: ``status`` (301/302/303/307/308, default 302) to ``target`` + "/" + command.
- ``surrogate``: an extra chat whose ``fields`` (default ["name", "id"]) hold the JSON escape
  ``\\ud800``; ``raw_surrogate``: the same with the raw bytes ED A0 80 (default ["name"]).
- ``huge_number``: an extra group whose ``fields`` (default unreadCount, timestamp, creation,
  size) are ``1`` followed by 400 zeros.
- ``echo_key``: echoes the request's X-Api-Key, plain and JSON-escaped, in the error
  message (``mode="error"``, ``status`` default 500) or in two chat names (``mode="name"``,
  get-chats only), and in the Content-Type header (``application/json; charset=UTF-8; key=...``).
- sessions-get only (whatsapp_id None): ``sessions_ignore_page`` (every page is page 1),
  ``sessions_empty`` (no sessions, ``times`` answers, default 1, then clears itself),
  ``sessions_short`` (``drop`` sessions left out, default half, ``times`` as above),
  ``sessions_growing_pages`` (``pages`` grows by one on every request; extra pages are empty),
  ``sessions_surrogate`` (an extra session whose ``fields``, default ["unique_id", "status"],
  contain ``\\ud800``).
- events-get only: ``bad_events``: malformed events among the real ones, one per ``kinds``
  (default all): ``no_message`` (event_data ``{}``), ``null_message`` (``{"message": null}``),
  ``bad_message`` (a ``create`` whose message has a numeric id and a string timestamp),
  ``unknown_action`` (action ``reaction``), ``not_an_object`` (a JSON string in ``data``),
  ``no_id`` (an event without ``id``). Each has a real id and the event_date of the moment
  the fault was set, so it is paged and bounded by ``date`` like the log's events.
- events-get and get-history: ``bad_envelope``: ``mode`` ``list`` (a bare JSON array),
  ``data_object`` (``data`` is an object); events-get only: ``no_pages`` (no pages, elements,
  page), ``bad_counts`` (``pages`` a string, ``elements`` -1, ``page`` null).

Every fault not limited to some commands applies to each command, chosen with ``command``.
A duplicate event at a cursor's boundary needs no fault: the ``date`` bound is inclusive.

Standalone: ``python -m exporter.simulator --listen 127.0.0.1:8080 --demo`` (``--help`` lists
the accounts and the key).
"""

from .cli import main
from .data import DEFAULT_API_KEY, DEMO_ACCOUNTS, SimAccount
from .faults import FAULTS
from .server import Simulator
from .support import DEMO_ACCOUNT_SCHEDULES, DEMO_SCHEDULES

__all__ = [
    "DEFAULT_API_KEY",
    "DEMO_ACCOUNTS",
    "DEMO_ACCOUNT_SCHEDULES",
    "DEMO_SCHEDULES",
    "FAULTS",
    "SimAccount",
    "Simulator",
    "main",
]
