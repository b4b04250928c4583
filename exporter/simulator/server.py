"""The simulator: its accounts, the control methods tests call, and the loopback HTTP server.

Only the read-only commands the exporter uses are served, ``get-chats``, ``sessions-get``,
``events-get`` and ``get-history``, with the documented shapes and error objects. Data lives
in data.py, messages and events in log.py (one log per account), the demo's traffic in
support.py, other traffic in traffic.py, faults in faults.py, sessions.py, events.py and
streams.py, the message-level control methods in script.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import faults as faultlib
from .data import (
    DEFAULT_API_KEY,
    DEMO_ACCOUNTS,
    SimAccount,
    bench_accounts,
    demo_accounts,
    own_number,
    session,
)
from .events import bad_events, events_reply, history_reply
from .httpd import Handler, Server, control
from .log import AccountLog, Options
from .script import Scripting
from .sessions import exhausted, sessions_reply
from .streams import stream
from .support import SupportLine, support_lines
from .traffic import churn, prehistory, volume
from .wire import JSON_TYPE, UNAUTHORIZED, Answer, Reply, error, json_bytes

_SLOW_PARTS = frozenset({"drip", "chunked_forever"})  # delay is their pace, not a wait before


class Simulator(Scripting):
    """Serves accounts over real HTTP so clients are tested with their real network stack.

    The simulator owns the given accounts from then on (copying 100,000 benchmark chats would
    be slow); read them with ``chats()`` and change them with the control methods, which take
    effect on the next request. All mutable state is guarded by one lock; slow answers wait
    outside it, so one hanging client never holds up another.

    ``history``: give every chat a past consistent with its unread count and last activity
    (traffic.prehistory). ``events_per_poll``: that many messages per account at each of its
    get-chats requests (benchmark volume). The other keywords are ``log.Options``.
    """

    def __init__(
        self,
        accounts: Sequence[SimAccount],
        api_key: str = DEFAULT_API_KEY,
        *,
        seed: int | None = 0,
        dynamic: bool = False,
        clock: Callable[[], float] = time.time,
        history: bool = False,
        events_per_poll: int = 0,
        **options: Any,
    ) -> None:
        self._accounts: dict[str, SimAccount] = {}
        for account in accounts:
            if account.whatsapp_id in self._accounts:
                raise ValueError(f"duplicate whatsapp_id {account.whatsapp_id!r}")
            self._accounts[account.whatsapp_id] = account
        self.api_key = api_key
        self.dynamic = dynamic
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}  # encoded get-chats answers, dropped on change
        self._sessions: list[dict[str, Any]] | None = None  # sessions-get records, dropped on change
        self._faults: dict[tuple[str, str], faultlib.Fault] = {}  # by (command, whatsapp_id)
        self._sessions_fault: faultlib.Fault | None = None
        self._options = Options(**options)
        ids = itertools.count(1)  # event ids: one sequence for all accounts
        self._logs = {
            wid: AccountLog(wid, own_number(i), ids, self._options) for i, wid in enumerate(self._accounts, 1)
        }
        if type(events_per_poll) is not int or events_per_poll < 0:
            raise ValueError("events_per_poll must be a non-negative integer")
        self._volume = events_per_poll  # messages per account at each of its get-chats requests
        self._volume_rng = random.Random(f"{seed}:volume")
        self._volume_at: dict[str, float] = {}  # when each account's volume was last added
        self._counts: Counter[tuple[str, str | None]] = Counter()
        self._lines: dict[str, SupportLine] = {}
        self._order = {wid: i for i, wid in enumerate(self._accounts)}
        self._fill: Iterator[None] | None = None  # builds deferred chats, account by account
        self._filled = len(self._accounts)
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        if history:
            past = random.Random(f"{seed}:history")
            for wid, account in self._accounts.items():
                prehistory(past, account.chats, self._logs[wid])

    @classmethod
    def demo(
        cls,
        api_key: str = DEFAULT_API_KEY,
        seed: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> Simulator:
        """Three support-line accounts (see support.py) whose names stress escaping and bidi text.

        ``options`` are ``log.Options`` (time zone, page order, body marker).
        """
        now = clock()
        accounts = demo_accounts(random.Random(seed), int(now))
        sim = cls(accounts, api_key, seed=seed, dynamic=True, clock=clock, **options)
        logs = {wid: sim._logs[wid] for wid, _ in DEMO_ACCOUNTS}
        sim._lines = support_lines(logs, seed, now, lambda w: sim._accounts[w].chats)
        return sim

    @classmethod
    def generate(
        cls,
        accounts: int = 10,
        chats: int = 10_000,
        group_fraction: float = 0.1,
        participants: int = 20,
        api_key: str = DEFAULT_API_KEY,
        seed: int = 0,
        events_per_poll: int = 0,
        **options: Any,
    ) -> Simulator:
        """Static benchmark data: one seed always gives the same bytes.

        Chats are generated when an account is first read, so many accounts start at once.
        ``events_per_poll`` messages are added at each get-chats request of an account (spread
        since its last one), which then changes its chats; ``options`` are ``log.Options``.
        """
        built, fill = bench_accounts(accounts, chats, group_fraction, participants, seed)
        sim = cls(built, api_key, seed=seed, dynamic=False, events_per_poll=events_per_poll, **options)
        sim._fill, sim._filled = fill, 0
        return sim

    # --- serving -----------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = Server((host, port), Handler)
        self._server.sim = self
        # serve_forever's poll interval bounds how long stop() waits for the serving loop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="whatsgate-simulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Also cuts open connections, so clients see the API gone rather than lingering.

        Hanging and streaming answers end too: they wait on the same event.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            for sock in self._connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}/api/v1"

    # --- control -----------------------------------------------------------------------------
    def set_chat(self, whatsapp_id: str, chat_id: str, **fields: Any) -> None:
        """Sets fields as given, past the message log: for data no message explains (see script.py)."""
        with self._lock:
            chats = self._account(whatsapp_id).chats
            chats[_index(chats, chat_id)].update(copy.deepcopy(fields))
            self._cache.pop(whatsapp_id, None)

    def add_chat(self, whatsapp_id: str, chat: dict[str, Any]) -> None:
        """Appends even malformed or duplicate chats: tests need to serve those too."""
        with self._lock:
            self._account(whatsapp_id).chats.append(copy.deepcopy(chat))
            self._cache.pop(whatsapp_id, None)

    def remove_chat(self, whatsapp_id: str, chat_id: str) -> None:
        with self._lock:
            chats = self._account(whatsapp_id).chats
            del chats[_index(chats, chat_id)]
            self._cache.pop(whatsapp_id, None)

    def set_status(self, whatsapp_id: str, status: str) -> None:
        with self._lock:
            self._accounts[whatsapp_id].status = status
            self._sessions = None

    def set_fault(
        self,
        whatsapp_id: str | None,
        fault: str | None,
        delay: float | None = None,
        *,
        command: str | None = None,
        **params: Any,
    ) -> None:
        """Chooses the fault of ``whatsapp_id``'s ``command`` (None: every account's).

        ``command`` is get-chats (the default), events-get or get-history; ``sessions-get``
        (implied by the ``sessions_*`` faults) takes ``whatsapp_id`` None. ``fault`` None clears;
        ``set_fault(None, None)`` without a command clears every fault of every command.
        ``delay`` and ``params`` are described in faults.py.
        """
        if fault is not None and fault in faultlib.SESSIONS_FAULTS:
            command = "sessions-get"
        if whatsapp_id is None and fault is None and command is None:
            with self._lock:
                self._faults.clear()
                self._sessions_fault = None
            return
        command = command or "get-chats"
        chosen = None if fault is None else faultlib.make_fault(fault, delay, params, command)
        with self._lock:
            if command == "sessions-get":
                if whatsapp_id is not None:
                    raise ValueError("sessions-get faults apply to all accounts: whatsapp_id must be None")
                self._sessions_fault = chosen
                return
            if whatsapp_id is not None and whatsapp_id not in self._accounts:
                raise KeyError(whatsapp_id)
            for wid in self._accounts if whatsapp_id is None else [whatsapp_id]:
                if chosen is None:
                    self._faults.pop((command, wid), None)
                    continue
                self._faults[(command, wid)] = own = dataclasses.replace(chosen)
                if own.name == "bad_events":
                    marker = self._options.body_marker
                    own.events = bad_events(self._logs[wid], own.params["kinds"], self._clock(), marker)

    def request_count(self, command: str, whatsapp_id: str | None = None) -> int:
        """Counts every request to a command, rejected ones included; None sums all ids."""
        with self._lock:
            if whatsapp_id is not None:
                return self._counts[(command, whatsapp_id)]
            return sum(n for (cmd, _), n in self._counts.items() if cmd == command)

    def chats(self, whatsapp_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._account(whatsapp_id).chats)

    def _account(self, whatsapp_id: str) -> SimAccount:
        """The account, its deferred chats built first (all before it too: one random stream)."""
        account = self._accounts[whatsapp_id]
        while self._fill is not None and self._filled <= self._order[whatsapp_id]:
            next(self._fill)
            self._filled += 1
        return account

    # --- request handling --------------------------------------------------------------------
    def _respond(self, method: str, path: str, api_key: str | None, body: bytes) -> Answer:
        path = path.split("?", 1)[0]
        if method == "POST" and path.startswith("/_sim/"):
            return control(self, path, body)
        command = path.removeprefix("/api/v1/")
        if method != "POST" or command not in faultlib.COMMANDS:
            return error("Not Found", "Page not found.", 404)
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = None
        wid = req.get("WhatsappID") if isinstance(req, dict) else None
        with self._lock:
            self._counts[(command, wid if isinstance(wid, str) else None)] += 1
        if api_key != self.api_key:
            return UNAUTHORIZED
        if not isinstance(req, dict):
            return error("Bad Request", "The request body must be a JSON object.")
        if command == "sessions-get":
            with self._lock:
                fault = self._sessions_fault
            return self._faulty(fault, command, api_key, lambda: self._sessions_page(req, fault))
        if command == "events-get" and wid in (None, ""):  # every session's events, mixed
            return self._events_page(None, req, None)
        if not isinstance(wid, str) or not wid:
            return error("Bad Request", "Missing required parameter: WhatsappID")
        with self._lock:
            if wid not in self._accounts:
                return error("Not Found", "Session not found")
            fault = self._faults.get((command, wid))
        pages: dict[str, Callable[[], Reply]] = {
            "get-chats": lambda: self._chats_page(wid, fault, api_key),
            "events-get": lambda: self._events_page(wid, req, fault),
            "get-history": lambda: self._history_page(wid, req, fault),
        }
        return self._faulty(fault, command, api_key, pages[command])

    def _faulty(
        self, fault: faultlib.Fault | None, command: str, api_key: str, normal: Callable[[], Reply]
    ) -> Answer:
        """The normal answer, or what the fault makes of it (see faults.py for the order)."""
        if fault is None:
            return normal()
        if fault.delay and fault.name not in _SLOW_PARTS:
            self._stopping.wait(fault.delay)  # outside the lock: other requests go on
        if fault.name == "down":
            return None
        replaced = faultlib.replacing(fault, api_key, command)
        if replaced is not None:
            return replaced
        reply = normal()
        return stream(fault, reply) if fault.name in faultlib.STREAMS else reply

    def _chats_page(self, wid: str, fault: faultlib.Fault | None, api_key: str) -> Reply:
        with self._lock:
            account = self._account(wid)
            if account.status != "READY":
                return error("Session Not Ready", f"Session status is {account.status}")
            now = self._clock()
            self._advance(wid, now)
            if self.dynamic and wid not in self._lines:
                churn(self._rng, account.chats, now, self._logs[wid])
                self._cache.pop(wid, None)
            if self._volume:
                since = self._volume_at.get(wid, now)
                volume(self._volume_rng, account.chats, self._logs[wid], self._volume, since, now)
                self._volume_at[wid] = now
                self._cache.pop(wid, None)
            corrupted = faultlib.chats_body(account.chats, fault, api_key)
            if corrupted is not None:
                return 200, corrupted[0], corrupted[1], {}
            if wid not in self._cache:
                self._cache[wid] = json_bytes({"result": "OK", "data": account.chats})
            return 200, self._cache[wid], JSON_TYPE, {}

    def _events_page(self, wid: str | None, req: dict[str, Any], fault: faultlib.Fault | None) -> Reply:
        """events-get works whatever the session's status: it reads WhatsGate's log, not the phone."""
        with self._lock:
            now = self._clock()
            for each in self._lines if wid is None else [wid]:
                self._account(each)
                self._advance(each, now)
            logs = list(self._logs.values()) if wid is None else [self._logs[wid]]
            return events_reply(logs, req, self._options, fault)

    def _history_page(self, wid: str, req: dict[str, Any], fault: faultlib.Fault | None) -> Reply:
        with self._lock:
            account = self._account(wid)
            if account.status != "READY":
                return error("Session Not Ready", f"Session status is {account.status}")
            now = self._clock()
            self._advance(wid, now)
            return history_reply(self._logs[wid], req, now, fault)

    def _advance(self, wid: str, now: float) -> None:
        """Plays the demo's support line up to ``now``: every command sees the same moment."""
        line = self._lines.get(wid)
        if line is not None and line.advance(self._accounts[wid].chats, now):
            self._cache.pop(wid, None)

    def _sessions_page(self, req: dict[str, Any], fault: faultlib.Fault | None) -> Reply:
        with self._lock:
            if self._sessions is None:
                self._sessions = [session(i, a) for i, a in enumerate(self._accounts.values(), 1)]
            own = fault if fault is not None and fault.name in faultlib.SESSIONS_FAULTS else None
            reply = sessions_reply(self._sessions, req, own)
            if own is not None and exhausted(own) and self._sessions_fault is own:
                self._sessions_fault = None
            return reply


def _index(chats: list[dict[str, Any]], chat_id: str) -> int:
    for i, chat in enumerate(chats):
        if chat.get("id") == chat_id:
            return i
    raise KeyError(f"no chat {chat_id!r}")
