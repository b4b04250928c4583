"""The simulator's HTTP side: a threaded loopback server, its handler, and the control endpoints."""

from __future__ import annotations

import json
import socket
import sys
import threading
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
        command: str = ...,
        **params: Any,
    ) -> None: ...


_FAULT_KEYS = ("whatsapp_id", "fault", "delay", "command")  # the rest of a fault body: parameters


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
    # ACK, every keep-alive request would then stall for 40 ms.
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
    """The ``/_sim/*`` endpoints: the control methods, for a simulator in another process."""
    try:
        req = json.loads(body or b"null")
        if not isinstance(req, dict):
            raise ValueError("the body must be a JSON object")
        if path == "/_sim/chat":
            if not isinstance(req.get("fields", {}), dict):
                raise ValueError("fields must be an object")
            sim.set_chat(req["whatsapp_id"], req["chat_id"], **req.get("fields", {}))
        elif path == "/_sim/status":
            sim.set_status(req["whatsapp_id"], req["status"])
        elif path == "/_sim/fault":
            params = {k: v for k, v in req.items() if k not in ("whatsapp_id", "fault", "delay", "command")}
            delay = None if req.get("delay") is None else float(req["delay"])
            command = req.get("command") or "get-chats"
            sim.set_fault(req.get("whatsapp_id"), req.get("fault"), delay, command=command, **params)
        else:
            return error("Not Found", "Page not found.", 404)
    except (KeyError, ValueError, TypeError) as exc:
        return 400, json_bytes({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), JSON_TYPE, {}
    return 200, json_bytes({"ok": True}), JSON_TYPE, {}
