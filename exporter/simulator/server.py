"""A loopback stand-in for the WhatsGate HTTP API.

It exists so that new users can watch the exporter work (``whatsgate-exporter --demo``) before
they have a WhatsGate account, and so that tests and benchmarks can produce on demand what the
real service produces rarely: unread piling up, slow or broken answers, malformed chats,
sessions losing authorisation, accounts with 10,000 chats.

Only the two read-only commands the exporter uses are served, ``get-chats`` and
``sessions-get``, with the documented shapes and error objects. Tests in the same process drive
the simulator through its methods; a simulator in another process is driven over HTTP:

    POST /_sim/chat   {"whatsapp_id": "...", "chat_id": "...", "fields": {"unreadCount": 5}}
    POST /_sim/status {"whatsapp_id": "...", "status": "AUTH"}
    POST /_sim/fault  {"whatsapp_id": null, "fault": "slow", "delay": 2.5}

They answer 200 ``{"ok": true}`` or 400 ``{"ok": false, "error": "..."}``. These control
endpoints need no API key: the simulator is a test and demo convenience that should only ever
listen on loopback, never on a shared network.

Standalone: ``python -m exporter.simulator --listen 127.0.0.1:8080 --demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# status, body, content type, extra headers; None means "drop the connection unanswered".
Reply = tuple[int, bytes, str, dict[str, str]]

JSON_TYPE = "application/json; charset=UTF-8"
# fmt: off
FAULTS = frozenset({"slow", "unauthorized", "api_error", "rate_limited", "bad_gateway", "not_json",
                    "result_not_ok", "bad_chat", "down"})
# fmt: on
STATUS_NAMES = {"READY": "Ready", "AUTH": "Waiting for authorization"}
DEMO_ACCOUNTS = (
    ("demo-support", "Support line"),
    ("demo-sales", "Sales line"),
    ("demo-community", "Community"),
)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _error(name: str, message: str, status: int = 500) -> Reply:
    return status, _json({"name": name, "message": message, "code": 0}), JSON_TYPE, {}


UNAUTHORIZED = _error("Unauthorized", "Your request was made with invalid credentials.")
_BAD_GATEWAY_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center>"
    b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
# not_json claims to be JSON on purpose: clients must not trust the header either.
_FAULT_REPLIES: dict[str, Reply] = {
    "unauthorized": UNAUTHORIZED,
    "api_error": _error("Internal Server Error", "Session error"),
    "rate_limited": (
        429,
        _json({"name": "Too Many Requests", "message": "Rate limit exceeded.", "code": 0}),
        JSON_TYPE,
        {"Retry-After": "1"},
    ),
    "bad_gateway": (502, _BAD_GATEWAY_HTML, "text/html", {}),
    "not_json": (200, b"<html>maintenance</html>", JSON_TYPE, {}),
    "result_not_ok": (200, _json({"result": "ERROR", "message": "Session is restarting"}), JSON_TYPE, {}),
}


@dataclass
class SimAccount:
    """One WhatsGate session; ``chats`` are raw API objects, served exactly as stored."""

    whatsapp_id: str
    name: str
    status: str = "READY"
    chats: list[dict] = field(default_factory=list)


class Simulator:
    """Serves accounts over real HTTP so clients are tested with their real network stack.

    The simulator owns the given accounts from then on (copying 100,000 benchmark chats would
    be slow); read them with ``chats()`` and change them with the control methods, which take
    effect on the next request. All mutable state is guarded by one lock.
    """

    def __init__(
        self,
        accounts: Sequence[SimAccount],
        api_key: str = "demo",
        *,
        seed: int | None = 0,
        dynamic: bool = False,
    ) -> None:
        self._accounts: dict[str, SimAccount] = {}
        for account in accounts:
            if account.whatsapp_id in self._accounts:
                raise ValueError(f"duplicate whatsapp_id {account.whatsapp_id!r}")
            self._accounts[account.whatsapp_id] = account
        self.api_key = api_key
        self.dynamic = dynamic
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._cache: dict[str, bytes] = {}  # encoded get-chats answers, dropped on change
        self._faults: dict[str, tuple[str, float]] = {}
        self._counts: Counter[tuple[str, str | None]] = Counter()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def demo(cls, api_key: str = "demo", seed: int | None = None) -> Simulator:
        """Three lively accounts whose names stress label escaping and bidi text."""
        rng = random.Random(seed)
        now = int(time.time())
        accounts = []
        for n, (wid, name) in enumerate(DEMO_ACCOUNTS):
            specials = []
            for i, (title, group, forced) in enumerate(_SPECIALS[2 * n : 2 * n + 2]):
                members = _participants(rng, rng.randint(3, 9)) if group else None
                chat_id = f"1203630{n}000000000{i}@g.us" if group else f"7999{n}00000{i}@c.us"
                specials.append(_chat(rng, chat_id, title, now, members) | forced)
            if n == 2:  # like the documented example, size disagrees with the participant list
                specials.append(
                    _chat(rng, "120363099999999999@g.us", "Announcements", now, _participants(rng, 6), size=0)
                )
            chats = _make_chats(rng, rng.randint(10, 40) - len(specials), 0.25, (3, 12), now)
            for chat in specials:
                chats.insert(rng.randint(0, len(chats)), chat)
            accounts.append(SimAccount(wid, name, chats=chats))
        return cls(accounts, api_key, seed=seed, dynamic=True)

    @classmethod
    def generate(
        cls,
        accounts: int = 10,
        chats: int = 10_000,
        group_fraction: float = 0.1,
        participants: int = 20,
        api_key: str = "demo",
        seed: int = 0,
    ) -> Simulator:
        """Static benchmark data; timestamps are fixed so one seed always gives the same bytes."""
        rng = random.Random(seed)
        sizes = (participants, participants)
        built = [
            SimAccount(
                f"bench-{i:02d}",
                f"Bench line {i:02d}",
                chats=_make_chats(rng, chats, group_fraction, sizes, 1_735_689_600),
            )
            for i in range(accounts)
        ]
        return cls(built, api_key, seed=seed, dynamic=False)

    # --- serving -----------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server((host, port), _Handler)
        self._server.sim = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="whatsgate-simulator", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Also cuts keep-alive connections, so clients see the API gone rather than lingering."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes "slow" requests
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
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    # --- control -----------------------------------------------------------------------------
    def set_chat(self, whatsapp_id: str, chat_id: str, **fields: Any) -> None:
        with self._lock:
            chats = self._accounts[whatsapp_id].chats
            chats[_index(chats, chat_id)].update(copy.deepcopy(fields))
            self._cache.pop(whatsapp_id, None)

    def add_chat(self, whatsapp_id: str, chat: dict) -> None:
        """Appends even malformed or duplicate chats: tests need to serve those too."""
        with self._lock:
            self._accounts[whatsapp_id].chats.append(copy.deepcopy(chat))
            self._cache.pop(whatsapp_id, None)

    def remove_chat(self, whatsapp_id: str, chat_id: str) -> None:
        with self._lock:
            chats = self._accounts[whatsapp_id].chats
            del chats[_index(chats, chat_id)]
            self._cache.pop(whatsapp_id, None)

    def set_status(self, whatsapp_id: str, status: str) -> None:
        with self._lock:
            self._accounts[whatsapp_id].status = status

    def set_fault(self, whatsapp_id: str | None, fault: str | None, delay: float = 0.0) -> None:
        """``delay`` is slept before any fault's answer, so e.g. "down" can also hang first."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
        if delay < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            if whatsapp_id is not None and whatsapp_id not in self._accounts:
                raise KeyError(whatsapp_id)
            for wid in self._accounts if whatsapp_id is None else [whatsapp_id]:
                if fault is None:
                    self._faults.pop(wid, None)
                else:
                    self._faults[wid] = (fault, float(delay))

    def request_count(self, command: str, whatsapp_id: str | None = None) -> int:
        """Counts every request to a command, rejected ones included; None sums all ids."""
        with self._lock:
            if whatsapp_id is not None:
                return self._counts[(command, whatsapp_id)]
            return sum(n for (cmd, _), n in self._counts.items() if cmd == command)

    def chats(self, whatsapp_id: str) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._accounts[whatsapp_id].chats)

    # --- request handling --------------------------------------------------------------------
    def _respond(self, method: str, path: str, api_key: str | None, body: bytes) -> Reply | None:
        path = path.split("?", 1)[0]
        if method == "POST" and path.startswith("/_sim/"):
            return self._control(path, body)
        command = path.removeprefix("/api/v1/")
        if method != "POST" or command not in ("get-chats", "sessions-get"):
            return _error("Not Found", "Page not found.", 404)
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
            return _error("Bad Request", "The request body must be a JSON object.")
        return self._sessions_get(req) if command == "sessions-get" else self._get_chats(wid)

    def _get_chats(self, wid: Any) -> Reply | None:
        if not isinstance(wid, str) or not wid:
            return _error("Bad Request", "Missing required parameter: WhatsappID")
        with self._lock:
            if wid not in self._accounts:
                return _error("Not Found", "Session not found")
            fault, delay = self._faults.get(wid, (None, 0.0))
        if delay:
            self._stopping.wait(delay)
        if fault == "down":
            return None
        if fault == "bad_chat":
            data = self.chats(wid)
            data += [
                {"id": f"7999000000{i}@c.us", "name": "Filler", "unreadCount": 0}
                for i in range(2 - len(data))
            ]
            data[0]["unreadCount"] = "seven"
            del data[1]["id"]
            return 200, _json({"result": "OK", "data": data}), JSON_TYPE, {}
        if fault in _FAULT_REPLIES:
            return _FAULT_REPLIES[fault]
        with self._lock:
            account = self._accounts[wid]
            if account.status != "READY":
                return _error("Session Not Ready", f"Session status is {account.status}")
            if self.dynamic:
                self._advance(account)
            if wid not in self._cache:
                self._cache[wid] = _json({"result": "OK", "data": account.chats})
            return 200, self._cache[wid], JSON_TYPE, {}

    def _advance(self, account: SimAccount) -> None:
        """Live-looking traffic for the demo; reads grow with backlog, so unread stays bounded."""
        chats = [c for c in account.chats if type(c.get("unreadCount")) is int]
        if not chats:
            return
        busy = self._rng.sample(chats, k=min(len(chats), self._rng.randint(1, 3)))
        for chat in busy:
            chat["unreadCount"] += self._rng.randint(1, 3)
            chat["timestamp"] = int(time.time())
        unread = [c for c in chats if c["unreadCount"] and all(c is not b for b in busy)]
        if unread and self._rng.random() < 0.35:
            self._rng.choice(unread)["unreadCount"] = 0
        self._cache.pop(account.whatsapp_id, None)

    def _sessions_get(self, req: dict) -> Reply:
        try:
            page_cnt, page = int(req.get("page_cnt", 20)), int(req.get("page", 1))
        except (TypeError, ValueError):
            page_cnt = page = 0
        if page_cnt < 1 or page < 1:
            return _error("Bad Request", "page and page_cnt must be positive integers")
        wanted = {
            k: req[f]
            for k, f in (("unique_id", "WhatsappID"), ("name", "name"), ("status", "status"))
            if req.get(f) not in (None, "")
        }
        with self._lock:
            sessions = [_session(i, a) for i, a in enumerate(self._accounts.values(), 1)]
        sessions = [s for s in sessions if all(s[k] == v for k, v in wanted.items())]
        first, pages = (page - 1) * page_cnt, math.ceil(len(sessions) / page_cnt)
        answer = {"result": "OK", "pages": pages, "elements": len(sessions), "page": page}
        return 200, _json(answer | {"data": sessions[first : first + page_cnt]}), JSON_TYPE, {}

    def _control(self, path: str, body: bytes) -> Reply:
        try:
            req = json.loads(body or b"null")
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            if path == "/_sim/chat":
                if not isinstance(req.get("fields", {}), dict):
                    raise ValueError("fields must be an object")
                self.set_chat(req["whatsapp_id"], req["chat_id"], **req.get("fields", {}))
            elif path == "/_sim/status":
                self.set_status(req["whatsapp_id"], req["status"])
            elif path == "/_sim/fault":
                self.set_fault(req.get("whatsapp_id"), req.get("fault"), float(req.get("delay") or 0))
            else:
                return _error("Not Found", "Page not found.", 404)
        except (KeyError, ValueError, TypeError) as exc:
            return 400, _json({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), JSON_TYPE, {}
        return 200, _json({"ok": True}), JSON_TYPE, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: Simulator

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sim._lock:
            self.sim._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sim._lock:
            self.sim._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, stop()) are expected here, not worth a traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as benchmarks poll the same host repeatedly
    server_version = "WhatsGateSimulator/1.0"
    timeout = 60  # idle keep-alive connections eventually give their thread back
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: benchmarks make thousands of requests and tests read stderr."""

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        reply = self.server.sim._respond(self.command, self.path, self.headers.get("X-Api-Key"), body)
        if reply is None:
            self.close_connection = True
            return
        status, payload, content_type, headers = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer


# --- data generation -------------------------------------------------------------------------
# fmt: off
_FIRST = ("Anna", "Boris", "Chen", "Dmitry", "Elena", "Fatima", "Giorgi", "Hana", "Ivan", "José",
          "Kemal", "Lena", "Maria", "Nikolai", "Olga", "Pavel", "Rustam", "Sofia", "Timur", "Yulia")
_LAST = ("Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Novak", "García", "Öztürk", "Kim", "Sato",
         "Müller", "Okafor", "Nguyen")
_GROUP = (("Sales", "Support", "Family", "Parents", "Football", "Book", "Night shift", "Logistics",
           "Marketing", "Neighbours", "Alumni"), ("team", "chat", "club", "news", "ops"))
# fmt: on
# (name, is group, forced fields): label escaping, bidi text, and each flag at least once.
_SPECIALS: list[tuple[str, bool, dict]] = [
    ("Мама 👩‍👧 ❤️", False, {"pinned": True, "unreadCount": 2}),
    ("مجموعة العائلة", True, {"isMuted": True, "muteExpiration": 28800}),
    ("שלום עולם", False, {"isReadOnly": True}),
    ('The "Quoted" Club', True, {"pinned": True, "unreadCount": 12}),
    ("C:\\Users\\backslash", False, {"isMuted": True, "muteExpiration": 0}),
    ("Line one\nLine two 🚀", True, {"isReadOnly": True, "unreadCount": 4}),
]


def _index(chats: list[dict], chat_id: str) -> int:
    for i, chat in enumerate(chats):
        if chat.get("id") == chat_id:
            return i
    raise KeyError(f"no chat {chat_id!r}")


def _session(index: int, account: SimAccount) -> dict:
    ready = account.status == "READY"
    return {
        "id": index,
        "name": account.name,
        "unique_id": account.whatsapp_id,
        "status": account.status,
        "status_name": STATUS_NAMES.get(account.status, str(account.status).title()),
        "callback": "",
        "date_add": "2024-01-01 10:00:00",
        "pushname": account.name if ready else "",
        "wid": f"7999{index:07d}@c.us" if ready else "",
        "qr_link": "",
    }


def _unread(rng: random.Random) -> int:
    r = rng.random()
    return 0 if r < 0.7 else rng.randint(1, 5) if r < 0.93 else rng.randint(6, 300)


def _participants(rng: random.Random, count: int) -> list[dict]:
    ids = [f"79{rng.randrange(10**9):09d}@c.us" for _ in range(count)]
    return [
        {"id": pid, "isAdmin": i == 0 or rng.random() < 0.15, "isSuperAdmin": i == 0}
        for i, pid in enumerate(ids)
    ]


def _chat(
    rng: random.Random,
    chat_id: str,
    name: str,
    now: int,
    participants: list[dict] | None = None,
    size: int | None = None,
) -> dict:
    muted = rng.random() < 0.15
    chat = {
        "id": chat_id,
        "name": name,
        "isGroup": participants is not None,
        "isReadOnly": rng.random() < 0.05,
        "unreadCount": _unread(rng),
        "timestamp": now - rng.randrange(30 * 86400),
        "pinned": rng.random() < 0.05,
        "isMuted": muted,
        "muteExpiration": rng.choice((0, 3600, 28800)) if muted else 0,
    }
    if participants is not None:
        chat["groupMetadata"] = {
            "id": chat_id,
            "creation": now - rng.randrange(86400, 3 * 365 * 86400),
            "owner": participants[0]["id"] if participants else "",
            "size": len(participants) if size is None else size,
            "participants": participants,
        }
    return chat


def _make_chats(
    rng: random.Random, count: int, group_fraction: float, sizes: tuple[int, int], now: int
) -> list[dict]:
    base = rng.randrange(10**8)
    groups = set(rng.sample(range(count), round(count * group_fraction)))
    chats = []
    for i in range(count):
        if i in groups:
            name = f"{rng.choice(_GROUP[0])} {rng.choice(_GROUP[1])}"
            chats.append(
                _chat(rng, f"1203630{base + i:011d}@g.us", name, now, _participants(rng, rng.randint(*sizes)))
            )
        else:
            digits = f"{rng.randrange(10**7):07d}"
            name = (
                f"+7 999 {digits[:3]}-{digits[3:5]}-{digits[5:]}"
                if rng.random() < 0.15
                else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            )
            chats.append(_chat(rng, f"79{base + i:09d}@c.us", name, now))
    return chats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator", description="Serve a simulated WhatsGate API (loopback only)."
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    parser.add_argument("--demo", action="store_true", help="three lively accounts (default)")
    parser.add_argument("--accounts", type=int, help="benchmark data: number of accounts")
    parser.add_argument("--chats", type=int, help="benchmark data: chats per account")
    parser.add_argument("--group-fraction", type=float, help="benchmark data: share of groups")
    parser.add_argument("--participants", type=int, help="benchmark data: members per group")
    parser.add_argument("--api-key", default="demo")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--listen must be HOST:PORT")
    bench = {
        k: v
        for k in ("accounts", "chats", "group_fraction", "participants")
        if (v := getattr(args, k)) is not None
    }
    if args.demo and bench:
        parser.error("--demo cannot be combined with benchmark options")
    sim = (
        Simulator.generate(**bench, api_key=args.api_key, seed=args.seed or 0)
        if bench
        else Simulator.demo(args.api_key, seed=args.seed)
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    print(sim.start(host, int(port)), flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
