"""HTTP client for the two read-only WhatsGate commands the exporter uses.

Every failure becomes a :class:`PollError` carrying one of a small, fixed set
of reasons, which is what ``whatsgate_poll_errors_total{reason}`` counts and
what an operator greps the log for. The API key lives only in the session's
headers: it is never part of a URL, a message or a repr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .. import __version__, logfmt, memory
from ..model import (
    API_ERROR,
    CONNECTION,
    HTTP_STATUS,
    INVALID_RESPONSE,
    TIMEOUT,
    UNAUTHORIZED,
    Chat,
    Session,
)
from .decode import decode_chats
from .parse import InvalidResponse, parse_chats, parse_sessions

# Commands that change state or send messages; the client refuses them outright.
_READ_ONLY_COMMANDS = frozenset({"get-chats", "sessions-get"})


class PollError(Exception):
    """A failed call, classified. ``str()`` is a one-line, secret-free description."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class WhatsGateClient:
    def __init__(self, url: str, api_key: str, timeout: float = 10.0) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._secret = api_key
        self._session = requests.Session()
        self._session.headers.update(
            {
                "X-Api-Key": api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"whatsgate-exporter/{__version__}",
            }
        )
        # A couple of quick retries for refused connections and gateway errors,
        # which are usually a proxy restarting. Reads are not retried: a slow API
        # must not make a poll take several timeouts. 429 is left to the poller's
        # backoff, which waits a whole poll interval or more.
        retry = Retry(
            total=2,
            connect=2,
            # False, not 0: urllib3 then re-raises the read timeout itself, which
            # requests reports as a Timeout rather than a generic ConnectionError.
            read=False,
            status=2,
            other=0,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=4)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return f"WhatsGateClient(url={self._url!r})"

    def close(self) -> None:
        self._session.close()

    def call(
        self,
        command: str,
        body: dict[str, Any],
        parse: Callable[[Any], Any] = lambda p: p,
        fast: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """POST one command; check, decode and parse a successful (``result: OK``) answer.

        ``fast`` (bytes in, result or None out) may accept a 200 answer at once; when it
        returns None the answer takes the slow path, which classifies and explains it.
        """
        if command not in _READ_ONLY_COMMANDS:
            raise ValueError(f"refusing to call {command!r}: the exporter only reads")
        try:
            response = self._session.post(f"{self._url}/{command}", json=body, timeout=self._timeout)
        except requests.Timeout:
            raise PollError(TIMEOUT, f"{command}: no answer within {self._timeout:g}s") from None
        except requests.ConnectionError as exc:
            if "Read timed out" in str(exc):
                raise PollError(TIMEOUT, f"{command}: no answer within {self._timeout:g}s") from None
            raise PollError(CONNECTION, f"{command}: {_connection_detail(exc)}") from None
        except requests.RequestException as exc:
            raise PollError(CONNECTION, f"{command}: {type(exc).__name__}") from None
        with memory.HEAVY_WORK:
            if fast is not None and response.status_code == 200:
                parsed = fast(response.content)
                if parsed is not None:
                    return parsed
            payload = self._decode(command, response)
            del response  # the raw body is not needed once decoded
            try:
                return parse(payload)
            except InvalidResponse as exc:
                raise PollError(INVALID_RESPONSE, f"{command}: {self._snippet(str(exc))}") from None

    def _snippet(self, text: str) -> str:
        return logfmt.excerpt(text, self._secret)

    def _decode(self, command: str, response: requests.Response) -> Any:
        status = response.status_code
        try:
            payload = json.loads(response.content)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            payload = None
        error = _error_object(payload)
        if status in (401, 403) or (error and error[0].lower() == "unauthorized"):
            message = error[1] if error else f"HTTP {status}"
            raise PollError(UNAUTHORIZED, f"{command}: HTTP {status}: {self._snippet(message)}")
        if status != 200:
            # The documented error object comes with 500; on other statuses (429, 502, ...)
            # any body is a proxy's or a rate limiter's, and the status says more.
            if status == 500 and error:
                name, message = self._snippet(error[0]), self._snippet(error[1])
                raise PollError(API_ERROR, f"{command}: HTTP {status}: {name}: {message}")
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise PollError(HTTP_STATUS, f"{command}: HTTP {status} ({kind})")
        if not isinstance(payload, dict):
            what = "body is not JSON" if payload is None else "body is not a JSON object"
            raise PollError(
                INVALID_RESPONSE, f"{command}: HTTP 200 but {what}: {self._snippet(response.text)}"
            )
        if payload.get("result") != "OK":
            message = error[1] if error else str(payload.get("message", ""))
            result = self._snippet(repr(payload.get("result")))
            detail = f"result is {result}" + (f": {self._snippet(message)}" if message else "")
            raise PollError(API_ERROR, f"{command}: {detail}")
        return payload

    def get_chats(self, whatsapp_id: str) -> list[Chat]:
        return self.call("get-chats", {"WhatsappID": whatsapp_id}, parse_chats, decode_chats)

    def sessions(self, page_size: int = 100, max_pages: int = 100) -> list[Session]:
        """All sessions of the key, following ``sessions-get`` pagination."""
        found: list[Session] = []
        page, pages = 1, 1
        while page <= min(pages, max_pages):
            sessions, pages = self.call("sessions-get", {"page": page, "page_cnt": page_size}, parse_sessions)
            found.extend(sessions)
            if not sessions:
                break
            page += 1
        return found


def _error_object(payload: Any) -> tuple[str, str] | None:
    """The documented error object ``{"name", "message", "code"}``, if that is what came back."""
    if isinstance(payload, dict) and isinstance(payload.get("name"), str) and "message" in payload:
        return payload["name"], str(payload["message"])
    return None


def _connection_detail(exc: requests.ConnectionError) -> str:
    """Name the cause (refused, DNS, TLS) without dumping urllib3's nested reprs."""
    text = str(exc)
    for needle, label in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
        ("RemoteDisconnected", "server closed the connection without answering"),
        ("Connection reset", "connection reset"),
        ("Max retries exceeded", "connection failed"),
    ):
        if needle in text:
            return label
    return type(exc).__name__
