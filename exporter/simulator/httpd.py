"""The simulator's HTTP side: a threaded loopback server, its handler, and the control endpoints."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .wire import JSON_TYPE, Reply, Wire, error, json_bytes


class Simulator(Protocol):
    """What the HTTP side needs of the simulator (:class:`exporter.simulator.Simulator`)."""

    _lock: threading.Lock
    _connections: set[socket.socket]
    _stopping: threading.Event

    def _respond(self, method: str, path: str, api_key: str | None, body: bytes) -> Any: ...
    def set_chat(self, whatsapp_id: str, chat_id: str, **fields: Any) -> None: ...
    def set_status(self, whatsapp_id: str, status: str) -> None: ...
    def set_fault(
        self,
        whatsapp_id: str | None,
        fault: str | None,
        delay: float | None = None,
        *,
        command: str | None = ...,
        **params: Any,
    ) -> None: ...
    @property
    def receive(self) -> Callable[..., str]: ...
    @property
    def reply(self) -> Callable[..., str]: ...
    def read(self, whatsapp_id: str, chat_id: str) -> None: ...
    def ack(self, whatsapp_id: str, message_id: str, ack: int = ..., at: float | None = ...) -> int: ...
    def disconnect(self, whatsapp_id: str, at: float | None = ..., reason: str = ...) -> int: ...
    def add_event(self, whatsapp_id: str, action: str, data: Any, at: float | None = ...) -> int: ...
    def set_options(self, **changes: Any) -> None: ...


_FAULT_KEYS = ("whatsapp_id", "fault", "delay", "command")  # the rest of a fault body: parameters
_ENDPOINTS = ("chat", "status", "fault", "message", "read", "ack", "disconnect", "event", "options")
_MESSAGE_KEYS = ("body", "author", "media", "forwarded", "logged_at", "name")  # optional, as in Python


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # tests open bursts of connections; the default of 5 would refuse some
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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as benchmarks poll the same host repeatedly
    server_version = "WhatsGateSimulator/1.0"
    timeout = 60  # idle keep-alive connections eventually give their thread back
    # Headers and body go out in two writes; with Nagle's algorithm and the client's delayed
    # ACK, every keep-alive request would then stall for a delayed-ACK timeout.
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: benchmarks make thousands of requests and tests read stderr."""

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        sim = self.server.sim
        reply = sim._respond(self.command, self.path, self.headers.get("X-Api-Key"), body)
        if reply is None or callable(reply):
            self.close_connection = True  # after a stream the connection's framing is unknown
            if reply is not None:
                reply(Wire(self.connection, self.wfile, sim._stopping))
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


def control(sim: Simulator, path: str, body: bytes) -> Reply:
    """The ``/_sim/*`` endpoints: the control methods, for a simulator in another process.

    They answer ``{"ok": true}``, with ``"id"`` (a message or event id) where the method returns one.
    """
    what = path.removeprefix("/_sim/")
    if what not in _ENDPOINTS:
        return error("Not Found", "Page not found.", 404)
    try:
        req = json.loads(body or b"null")
        if not isinstance(req, dict):
            raise ValueError("the body must be a JSON object")
        result = _control(sim, what, req)
    except (KeyError, ValueError, TypeError) as exc:
        return 400, json_bytes({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), JSON_TYPE, {}
    return 200, json_bytes({"ok": True} | ({} if result is None else {"id": result})), JSON_TYPE, {}


def _control(sim: Simulator, what: str, req: dict[str, Any]) -> int | str | None:
    wid = req.get("whatsapp_id")
    if what == "chat":
        if not isinstance(req.get("fields", {}), dict):
            raise ValueError("fields must be an object")
        sim.set_chat(req["whatsapp_id"], req["chat_id"], **req.get("fields", {}))
    elif what == "status":
        sim.set_status(req["whatsapp_id"], req["status"])
    elif what == "fault":
        params = {k: v for k, v in req.items() if k not in _FAULT_KEYS}
        delay = None if req.get("delay") is None else float(req["delay"])
        sim.set_fault(wid, req.get("fault"), delay, command=req.get("command"), **params)
    elif what == "message":
        direction = req.get("direction", "in")
        unknown = set(req) - {"whatsapp_id", "chat_id", "direction", "at", *_MESSAGE_KEYS}
        if unknown:
            raise ValueError(f"unknown key {', '.join(sorted(unknown))}")
        if direction not in ("in", "out"):
            raise ValueError("direction must be 'in' (the customer's) or 'out' (ours)")
        extra = {k: req[k] for k in _MESSAGE_KEYS if req.get(k) is not None}
        for key, value in extra.items():
            if key != "logged_at" and not isinstance(value, bool if key in ("media", "forwarded") else str):
                raise ValueError(f"{key} has the wrong type")
        send = sim.receive if direction == "in" else sim.reply
        return send(req["whatsapp_id"], req["chat_id"], req.get("at"), **extra)
    elif what == "read":
        sim.read(req["whatsapp_id"], req["chat_id"])
    elif what == "ack":
        return sim.ack(req["whatsapp_id"], req["message_id"], int(req.get("ack", 3)), req.get("at"))
    elif what == "disconnect":
        return sim.disconnect(req["whatsapp_id"], req.get("at"), str(req.get("reason", "NAVIGATION")))
    elif what == "event":
        return sim.add_event(req["whatsapp_id"], req["action"], req.get("data"), req.get("at"))
    else:
        sim.set_options(**req)
    return None
