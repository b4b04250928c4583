"""HTTP client for the read-only WhatsGate commands the exporter uses.

Every failure becomes a :class:`PollError` carrying one of a small, fixed set
of reasons, which is what ``whatsgate_poll_errors_total{reason}`` counts and
what an operator greps the log for. The API key lives only in the session's
headers: it is never part of a URL, a message or a repr, and it is never sent
anywhere but the configured URL (redirects are not followed).

The server is not trusted: ``timeout`` is the deadline of the whole call (see
:mod:`.deadline`), answers are read and inflated in bounded chunks up to
``max_response_size``, and every piece of server text in a message is a
bounded, redacted excerpt.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import requests
import urllib3

from .. import __version__, memory
from ..config import redaction
from ..config.http import HttpClientConfig
from ..config.session import describe_error, new_session
from ..model import (
    API_ERROR,
    CONNECTION,
    HTTP_STATUS,
    INTERNAL,
    INVALID_RESPONSE,
    TIMEOUT,
    UNAUTHORIZED,
    Chat,
    Session,
)
from ..snapshot.replies import Message
from .budget import BodyBudget, Ticket, too_many_items
from .deadline import DeadlineAdapter, DeadlineRetry, DeadlineTimeout, deadline_in, received, remaining
from .errors import PollError as PollError
from .events import EventsPage, decode_events, decode_history
from .parse import InvalidResponse, parse_chats
from .sessions import MAX_PAGES, PAGE_SIZE
from .sessions import paginate as paginate

_T = TypeVar("_T")
# The statuses that point elsewhere (Location); other 3xx are reported by status only.
_REDIRECTS = frozenset({300, 301, 302, 303, 305, 307, 308})
# Commands that change state or send messages; the client refuses them outright.
_READ_ONLY_COMMANDS = frozenset({"get-chats", "sessions-get", "events-get", "get-history"})
# Commands whose answers carry messages: no excerpt of them in an error, whatever the answer.
_MESSAGE_COMMANDS = frozenset({"events-get", "get-history"})


# A non-200 answer is read only this far: enough for any error object or the
# title of an HTML error page, and a hostile error page of any size costs nothing.
ERROR_BODY_LIMIT = 64 * 1024
# See config.example.yaml (whatsgate.max_response_size) for how this was sized.
DEFAULT_MAX_RESPONSE_SIZE = 64 * 1024 * 1024
# Bodies are read (and inflated) this much at a time: the most memory a gzip
# bomb can take beyond max_response_size before it is refused.
_CHUNK = 256 * 1024
# The bodies of every client of the process share one budget (see .budget).
BODIES = BodyBudget()
# No lock of the caller's to take before HEAVY_WORK (reusable: it does nothing).
_NOTHING_FIRST: AbstractContextManager[object] = contextlib.nullcontext()
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")


class WhatsGateClient:
    def __init__(
        self,
        url: str,
        api_key: str,
        timeout: float = 10.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        pool_size: int = 4,
        http: HttpClientConfig | None = None,
        bodies: BodyBudget | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._bodies = bodies or BODIES
        self._timeout = timeout
        self._max_size = max_response_size
        self._secret = api_key
        # A couple of quick retries for refused connections and gateway errors,
        # which are usually a proxy restarting. Reads are not retried: a slow API
        # must not make a poll take several timeouts. 429 is left to the poller's
        # backoff, which waits a whole poll interval or more. DeadlineRetry: no
        # retry starts once the call's deadline (whatsgate.timeout) cannot be met.
        retry = DeadlineRetry(
            total=2,
            connect=2,
            # False, not 0: urllib3 then re-raises the read timeout itself, which
            # requests reports as a Timeout rather than a generic ConnectionError.
            read=False,
            status=2,
            other=0,
            # False: never follow a redirect, so the X-Api-Key header cannot be sent to
            # another host (requests is told the same with allow_redirects=False).
            redirect=False,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods=frozenset({"POST"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        # tls_config and proxy_url (verification on, the environment's proxies by default). One
        # host, and as many kept-alive connections as polls can run at once (poll_concurrency):
        # fewer would close and reopen sockets on every poll.
        self._session = new_session(
            http or HttpClientConfig(),
            "whatsgate",
            DeadlineAdapter,
            max_retries=retry,
            pool_connections=1,
            pool_maxsize=pool_size,
        )
        self._session.headers.update(
            {
                "X-Api-Key": api_key,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"whatsgate-exporter/{__version__}",
            }
        )

    @property
    def url_for_log(self) -> str:
        """The base URL with any ``user:password@`` removed, safe for logs and pages."""
        return redaction.redact_url(self._url)

    def __repr__(self) -> str:
        return f"WhatsGateClient(url={self.url_for_log!r})"

    def close(self) -> None:
        self._session.close()

    def call(self, command: str, body: dict[str, Any], parse: Callable[[bytes | bytearray], _T]) -> _T:
        """POST one command; ``parse`` reads a 200 answer's bytes (or raises InvalidResponse).

        An answer ``parse`` refuses is classified first (not JSON, an error object, ``result``
        not ``OK``); only a documented envelope with bad content is ``invalid_response`` in
        ``parse``'s words. Everything, from connect to the last byte, must be over within
        ``timeout``; anything that goes wrong, even an exporter bug, is a PollError.
        """
        with self.held(command, body, parse) as result:
            return result

    @contextlib.contextmanager
    def held(
        self,
        command: str,
        body: dict[str, Any],
        parse: Callable[[bytes | bytearray], _T],
        first: AbstractContextManager[object] = _NOTHING_FIRST,
    ) -> Iterator[_T]:
        """:meth:`call`, its answer decoded under ``memory.HEAVY_WORK`` and kept under it until
        the block ends: the caller builds and renders what it decoded before another answer is
        decoded (several accounts' decoded chats alive at once set the small objects' arenas'
        high-water mark, which is never given back). The request is made outside any lock;
        ``first`` (the caller's own lock) is taken after it and before HEAVY_WORK, so a caller
        that takes its lock and then renders keeps one order of the two locks. Only the request
        and the decode are classified as PollErrors: the block's own exceptions pass as they are."""
        with contextlib.ExitStack() as locks:
            yield self._decoded(command, body, parse, locks, first)

    def _decoded(
        self,
        command: str,
        body: dict[str, Any],
        parse: Callable[[bytes | bytearray], _T],
        locks: contextlib.ExitStack,
        first: AbstractContextManager[object],
    ) -> _T:
        """Fetch, then take ``first`` and HEAVY_WORK into ``locks`` and decode (see :meth:`held`)."""
        if command not in _READ_ONLY_COMMANDS:
            raise ValueError(f"refusing to call {command!r}: the exporter only reads")
        ticket = self._bodies.ticket()
        try:
            status, headers, content = self._fetch(command, body, ticket)
            locks.enter_context(first)
            locks.enter_context(memory.HEAVY_WORK)
            refused = ""
            if status == 200:
                if why := too_many_items(content, self._max_size):
                    # Counted before anything is decoded: an answer of {} is a dict per 3 bytes.
                    raise PollError(INVALID_RESPONSE, f"{command}: answer holds {why}")
                try:
                    return parse(content)
                except InvalidResponse as exc:
                    refused = self._snippet(str(exc))
                    if exc.envelope_ok:
                        raise PollError(INVALID_RESPONSE, f"{command}: {refused}") from None
            self._classify(command, status, headers, content)
            raise PollError(INVALID_RESPONSE, f"{command}: {refused}")
        except PollError:
            raise
        except Exception as exc:  # MemoryError, a library bug: classified, never a crash
            detail = self._snippet(f"{type(exc).__name__}: {exc}")
            raise PollError(INTERNAL, f"{command}: unexpected error: {detail}") from None
        finally:
            ticket.release()  # the body is decoded (or dropped): its bytes are no longer held

    def _fetch(
        self, command: str, body: dict[str, Any], ticket: Ticket
    ) -> tuple[int, Mapping[str, str], bytearray]:
        """Send the request and read the answer (bounded in size), all within the deadline."""
        started = time.monotonic()
        with deadline_in(self._timeout):
            try:
                response = self._session.post(
                    f"{self._url}/{command}",
                    json=body,
                    # requests passes a urllib3 Timeout through as it is (its stubs do not say so).
                    timeout=DeadlineTimeout(connect=self._timeout, read=self._timeout),  # type: ignore[arg-type]
                    stream=True,  # the body is read below, in bounded chunks, against the deadline
                    allow_redirects=False,
                )
            except requests.ConnectTimeout:
                raise PollError(TIMEOUT, f"{command}: could not connect {self._took(started)}") from None
            except requests.Timeout:
                raise PollError(
                    TIMEOUT, f"{command}: connected, but no answer {self._took(started)}"
                ) from None
            except requests.ConnectionError as exc:
                if "timed out" in str(exc):
                    raise PollError(TIMEOUT, f"{command}: no answer {self._took(started)}") from None
                raise PollError(CONNECTION, f"{command}: {describe_error(exc)}") from None
            except requests.RequestException as exc:
                raise PollError(CONNECTION, f"{command}: {type(exc).__name__}") from None
            try:
                status = response.status_code
                limit = self._max_size if status == 200 else ERROR_BODY_LIMIT
                content = self._read_body(
                    command, response.raw, limit, started, ticket if status == 200 else None, received()
                )
                return status, response.headers, content
            finally:
                response.close()

    def _read_body(
        self, command: str, raw: Any, limit: int, started: float, ticket: Ticket | None, head: int
    ) -> bytearray:
        """Read and inflate the body chunk by chunk, stopping at ``limit`` bytes or the deadline.

        A 200 answer's bytes are counted in ``ticket`` as they arrive (error answers are
        capped at ERROR_BODY_LIMIT anyway). ``head``: the bytes read from the socket before the
        body, so that a timeout reports the body's bytes that arrived, also those a read
        still waiting for more had gathered."""
        content = bytearray()
        try:
            while chunk := raw.read(_CHUNK, decode_content=True):
                if ticket is not None and not ticket.grow(len(chunk), remaining() or 0):
                    raise PollError(
                        TIMEOUT,
                        f"{command}: answer not complete {self._took(started)} ({len(content)} bytes"
                        " received, then waited for memory: another large answer was being read)",
                    )
                content += chunk
                if len(content) > limit:
                    if limit == self._max_size:
                        size = _size(limit)
                        raise PollError(
                            INVALID_RESPONSE, f"{command}: answer larger than max_response_size ({size})"
                        )
                    del content[limit:]  # an error answer: its start says enough
                    break
                if (remaining() or 0) <= 0:
                    raise TimeoutError
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            got = f"{max(len(content), received() - head)} bytes received"
            raise PollError(
                TIMEOUT, f"{command}: answer not complete {self._took(started)} ({got})"
            ) from None
        except urllib3.exceptions.DecodeError:
            encoding = self._snippet(str(raw.headers.get("Content-Encoding", "")))
            raise PollError(INVALID_RESPONSE, f"{command}: cannot decompress the {encoding} answer") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            what = "connection closed" if "IncompleteRead" in repr(exc) else type(exc).__name__
            raise PollError(CONNECTION, f"{command}: answer cut off ({what})") from None
        # Returned as read: json and msgspec decode a bytearray as they do bytes, and a copy
        # would hold the body twice for every poll in flight.
        return content

    def _took(self, started: float) -> str:
        return f"within {time.monotonic() - started:.1f}s (whatsgate.timeout is {self._timeout:g}s)"

    def _snippet(self, text: str) -> str:
        return redaction.excerpt(text, self._secret)

    def _classify(
        self, command: str, status: int, headers: Mapping[str, str], content: bytes | bytearray
    ) -> None:
        """Raise the PollError of an answer that is not a JSON object with ``result: OK``."""
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            payload = None
        error = _error_object(payload)
        if status in (401, 403) or (error and error[0].lower() == "unauthorized"):
            message = error[1] if error else f"HTTP {status}"
            raise PollError(UNAUTHORIZED, f"{command}: HTTP {status}: {self._snippet(message)}")
        if status in _REDIRECTS:
            # Never followed (the key must not go to another host) and never named:
            # the Location is the server's text and may carry anything.
            raise PollError(HTTP_STATUS, f"{command}: HTTP {status} redirect (not followed)")
        if status == 304:  # an answer to a conditional request, which the client never makes
            raise PollError(HTTP_STATUS, f"{command}: HTTP 304 not modified (never asked for)")
        if status != 200:
            # The documented error object comes with 500; on other statuses (429, 502, ...)
            # any body is a proxy's or a rate limiter's, and the status says more.
            if status == 500 and error:
                name, message = self._snippet(error[0]), self._snippet(error[1])
                raise PollError(API_ERROR, f"{command}: HTTP {status}: {name}: {message}")
            raise PollError(HTTP_STATUS, f"{command}: HTTP {status} ({self._content_type(headers)})")
        if not isinstance(payload, dict):
            what = "body is not JSON" if payload is None else "body is not a JSON object"
            if command in _MESSAGE_COMMANDS:  # an excerpt could quote a customer's message
                raise PollError(INVALID_RESPONSE, f"{command}: HTTP 200 but {what} ({_size(len(content))})")
            text = content[: redaction.EXCERPT_SOURCE * 4].decode("utf-8", "replace")
            raise PollError(INVALID_RESPONSE, f"{command}: HTTP 200 but {what}: {self._snippet(text)}")
        if payload.get("result") != "OK":
            message = error[1] if error else str(payload.get("message", ""))
            result = repr(self._snippet(str(payload.get("result"))))
            detail = f"result is {result}" + (f": {self._snippet(message)}" if message else "")
            raise PollError(API_ERROR, f"{command}: {detail}")

    def _content_type(self, headers: Mapping[str, str]) -> str:
        """The media type of an error answer, if it looks like one; never the server's raw text."""
        kind = headers.get("Content-Type")
        if kind is None:
            return "no content type"
        kind = kind.split(";")[0].strip()
        if not _CONTENT_TYPE.fullmatch(kind) or redaction.scrub(kind, (self._secret,)) != kind:
            return "unrecognised content type"
        return kind.lower()

    def get_chats(self, whatsapp_id: str) -> list[Chat]:
        return self.call("get-chats", {"WhatsappID": whatsapp_id}, parse_chats)

    def chats(
        self, whatsapp_id: str, first: AbstractContextManager[object] = _NOTHING_FIRST
    ) -> AbstractContextManager[list[Chat]]:
        """get-chats, its chats kept under HEAVY_WORK (``first`` before it) until the block ends."""
        return self.held("get-chats", {"WhatsappID": whatsapp_id}, parse_chats, first)

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> EventsPage:
        """One page of the account's event log from ``date`` on (the cursor, sent back exactly as
        received; None: from the start). No ``action`` filter: messages both ways and
        disconnects are all needed."""
        body: dict[str, Any] = {"WhatsappID": whatsapp_id, "page_cnt": page_cnt, "page": page}
        if date is not None:
            body["date"] = date
        return self.call("events-get", body, decode_events)

    def history(self, whatsapp_id: str, chat_id: str) -> tuple[tuple[Message, ...], int]:
        """One chat's last messages (get-history): those of ``chat_id``, and how many were skipped."""
        return self.call(
            "get-history",
            {"WhatsappID": whatsapp_id, "recipient": {"id": chat_id}},
            lambda content: decode_history(content, chat_id),
        )

    def sessions(self, page_size: int = PAGE_SIZE, max_pages: int = MAX_PAGES) -> list[Session]:
        """All sessions of the key, across ``sessions-get`` pages, checked (see :func:`paginate`)."""
        return paginate(self.call, page_size, max_pages)


def _size(n: int) -> str:
    """A byte count as an operator would write it in the config (``64 MiB``, ``1500 bytes``)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def _error_object(payload: Any) -> tuple[str, str] | None:
    """The documented error object ``{"name", "message", "code"}``, if that is what came back."""
    if isinstance(payload, dict) and isinstance(payload.get("name"), str) and "message" in payload:
        return payload["name"], str(payload["message"])
    return None
