"""One deadline for a whole HTTP call: connect, retries, headers and body.

requests and urllib3 only know per-socket-operation timeouts: a server that
drips one byte every 0.3 s never trips a 10 s read timeout and holds a poll
open for as long as it likes. This module makes ``whatsgate.timeout`` the
deadline of the call instead, with three small hooks into urllib3, all driven
by the deadline of the call running in the current thread (a context variable,
because one client and its connection pool are shared by every poller thread):

- :class:`DeadlineTimeout`: each connect and the wait for the answer get the
  time that is left, not a fresh full timeout per attempt;
- :class:`DeadlineRetry`: no retry (nor its back-off sleep) starts once the
  deadline cannot be met;
- :class:`_DeadlineResponse`: every ``recv`` of the status line, headers and
  body gets the time that is left as its socket timeout, so a drip still ends
  at the deadline, whatever http.client's buffering does;
- :class:`_Resolving`: the name lookup before a connect (``getaddrinfo``, which
  has no timeout: a resolver that does not answer holds it for its own retries)
  runs on a small pool and is waited for until the deadline, then given up as a
  connect timeout.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import http.client
import io
import ipaddress
import socket
import time
from collections.abc import Iterator
from typing import Any, ClassVar

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from ..config.session import ServerNameAdapter

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("whatsgate_deadline", default=None)
# Bytes read from the socket during the current call: what a timeout reports as received, since
# bytes that a blocking read had gathered when the deadline struck never reach the caller.
_RECEIVED: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "whatsgate_received", default=None
)
# The smallest socket timeout handed out once the deadline is (nearly) reached:
# 0 would switch the socket to non-blocking mode, None would mean "wait forever".
_EXPIRED = 0.001


def remaining() -> float | None:
    """Seconds left before the current call's deadline (None outside a call)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def received() -> int:
    """Bytes read from the socket so far in the current call (status line and headers included)."""
    counter = _RECEIVED.get()
    return 0 if counter is None else counter[0]


@contextlib.contextmanager
def deadline_in(seconds: float) -> Iterator[float]:
    """Run the block as one call that must be over ``seconds`` from now; yields the monotonic deadline."""
    deadline = time.monotonic() + seconds
    token = _DEADLINE.set(deadline)
    counted = _RECEIVED.set([0])
    try:
        yield deadline
    finally:
        _RECEIVED.reset(counted)
        _DEADLINE.reset(token)


def _left(configured: float | None) -> float | None:
    left = remaining()
    if left is None:
        return configured
    left = max(left, _EXPIRED)
    return left if configured is None else min(configured, left)


class DeadlineTimeout(Timeout):
    """A urllib3 timeout whose connect and read values shrink to what is left of the call's deadline."""

    @property
    def connect_timeout(self) -> Any:  # the base class types it loosely too (it may be a sentinel)
        base = super().connect_timeout
        return _left(base if isinstance(base, int | float) else None)

    @property
    def read_timeout(self) -> float | None:
        base = self._read if isinstance(self._read, int | float) else None
        return _left(base)

    def clone(self) -> DeadlineTimeout:
        # urllib3 clones the timeout for every attempt; the clone must keep deriving from the deadline.
        return DeadlineTimeout(connect=self._connect, read=self._read, total=self.total)


class DeadlineRetry(Retry):
    """urllib3's Retry, except that it is exhausted when the next attempt would start past the deadline."""

    def is_exhausted(self) -> bool:
        left = remaining()
        if left is not None and left <= self.get_backoff_time():
            return True
        return super().is_exhausted()


class _DeadlineReader(io.RawIOBase):
    """A socket reader whose every read may block only until the deadline of the call."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = remaining()
        if left is not None:
            if left <= 0:
                # socket.timeout is TimeoutError: urllib3 turns it into a ReadTimeoutError.
                raise TimeoutError("deadline of the call reached")
            self._sock.settimeout(left)
        n = self._raw.readinto(buffer)
        counter = _RECEIVED.get()
        if n and counter is not None:
            counter[0] += n
        return n

    def close(self) -> None:
        self._raw.close()  # releases the socket's makefile reference, as http.client expects
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through a :class:`_DeadlineReader` when a deadline is set."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        fp = self.fp
        if remaining() is not None and isinstance(fp, io.BufferedReader):
            raw = fp.detach()  # the socket.SocketIO of sock.makefile("rb"), kept open
            self.fp = io.BufferedReader(_DeadlineReader(raw, sock))


# Lookups that hang are left to finish here on their own; a few at once is plenty for one API host.
_LOOKUPS = concurrent.futures.ThreadPoolExecutor(4, "whatsgate-dns")


class _Resolving(HTTPConnection):
    """A connection whose host name is looked up against the deadline, then connected to by address."""

    def _new_conn(self) -> socket.socket:
        left, host = remaining(), self._dns_host
        if left is None or _is_address(host):
            return super()._new_conn()
        lookup = _LOOKUPS.submit(socket.getaddrinfo, host, self.port, 0, socket.SOCK_STREAM)
        try:
            found = lookup.result(timeout=max(left, _EXPIRED))
        except concurrent.futures.TimeoutError:
            raise ConnectTimeoutError(self, f"looking up {self.host} took longer than the deadline") from None
        except OSError:
            return super()._new_conn()  # urllib3 says what failed, as without a deadline
        failed: Exception | None = None
        for *_, address in found:  # each in turn, as create_connection tries them (::1, then 127.0.0.1)
            self._dns_host = str(address[0])
            try:
                return super()._new_conn()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                failed = exc
            finally:
                self._dns_host = host
        raise failed or NewConnectionError(self, f"{self.host} has no address")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _HTTPConnection(_Resolving):
    response_class = _DeadlineResponse


class _HTTPSConnection(_Resolving, HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(ServerNameAdapter):
    """requests' adapter, with connection pools whose responses honour the call's deadline."""

    _POOLS: ClassVar[dict[str, type[HTTPConnectionPool]]] = {"http": _HTTPPool, "https": _HTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._POOLS
        return manager
