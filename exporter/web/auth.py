"""HTTP basic auth against bcrypt hashes (``basic_auth_users``), and the web config's ``rate_limit``.

bcrypt is slow on purpose; paid on every scrape it would dominate the exporter's
CPU, and run on the event loop it would stall every other client. So:

* successful checks are cached under an HMAC of user, password and hash with a
  key random per process: the cache never holds a password nor anything that
  can be checked offline against one; failures are never cached;
* a check that is not cached runs on a small pool of threads
  (:meth:`BasicAuth.verify`), never on the event loop;
* every failed check answers no sooner than :attr:`BasicAuth.floor` after it
  began, and an unknown user is checked against a dummy hash of the highest cost
  among the configured users: a wrong password costs the same time whether the
  user exists or not, whatever each user's bcrypt cost.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from ..config.webconfig import WebConfig

CACHE_SIZE = 256  # distinct (user, password) pairs remembered; a few scrapers need a few
_KEY = secrets.token_bytes(32)
# Successful checks, for the whole process: a web config reload (a rotated certificate, a new
# user) keeps them, or every scraper would queue again behind whatever wrong passwords wait for
# bcrypt. A token names the hash it was checked against: a changed hash never matches.
_OK: OrderedDict[bytes, None] = OrderedDict()
_OK_LOCK = threading.Lock()


def _cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


class BasicAuth:
    """Checks ``Authorization: Basic`` headers; with no users configured, everything passes."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self.floor = 0.0
        self._dummy = b""
        if users:
            # What an unknown user is checked against: a hash nobody knows the password of, at the
            # highest cost in use. Making it is one check at that cost: its time sets the floor,
            # twice it, so that a check on a busy core still ends before the floor does.
            started = time.perf_counter()
            cost = max(map(_cost, users.values()))
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
            self.floor = 2 * (time.perf_counter() - started)

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def _token(self, header: str | None) -> tuple[bytes, bytes, bytes | None, bytes] | None:
        """(user, password, hash or None, cache token), or None for a malformed header."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            user_b, sep, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
            user = user_b.decode()
        except (binascii.Error, ValueError):  # ValueError: not ASCII, or the user not UTF-8
            return None
        if not sep:
            return None
        hashed = self.users.get(user)
        token = hmac.new(_KEY, b"\0".join((user_b, password, hashed or b"")), hashlib.sha256).digest()
        return user_b, password, hashed, token

    def cached(self, header: str | None) -> bool | None:
        """True or False when known without bcrypt (no users, malformed, cached); None otherwise."""
        if not self.users:
            return True
        parsed = self._token(header)
        if parsed is None:
            return False
        with _OK_LOCK:
            if parsed[2] is not None and parsed[3] in _OK:
                _OK.move_to_end(parsed[3])
                return True
        return None

    def check(self, header: str | None) -> bool:
        """True when ``header`` (the Authorization value) names a configured user and its password.

        Blocks for a bcrypt check when the answer is not cached: see :meth:`verify`."""
        known = self.cached(header)
        if known is not None:
            return known
        parsed = self._token(header)
        assert parsed is not None
        _, password, hashed, token = parsed
        try:
            # bcrypt compares in constant time; $2y$ (htpasswd) is the same algorithm as $2b$.
            ok = bcrypt.checkpw(password, hashed or self._dummy) and hashed is not None
        except ValueError:  # longer than bcrypt's 72 bytes
            bcrypt.checkpw(b"", self._dummy)  # as slow as any other failure
            ok = False
        if ok:
            with _OK_LOCK:
                _OK[token] = None
                while len(_OK) > CACHE_SIZE:
                    _OK.popitem(last=False)
        return ok

    async def verify(self, header: str | None, pool: Executor) -> bool:
        """:meth:`check` for the event loop: bcrypt on ``pool``, a failure answered at the floor."""
        known = self.cached(header)
        if known is not None:
            return known
        loop = asyncio.get_running_loop()
        started = loop.time()
        ok = await loop.run_in_executor(pool, self.check, header)
        if not ok:
            await asyncio.sleep(self.floor - (loop.time() - started))
        return ok


@dataclass
class Bucket:
    """The exporter-toolkit's ``rate_limit``: a token bucket of ``burst`` requests, one more every
    ``interval`` seconds, over every request before authentication (as Go's rate.Limiter there)."""

    interval: float
    burst: int
    _tokens: float = field(default=0.0, init=False)
    _at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._tokens, self._at = float(self.burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.interval)
        self._at = now
        allowed = self._tokens >= 1
        self._tokens -= allowed
        return allowed


@dataclass(frozen=True)
class Gate:
    """A web config in force: its TLS context and headers, with the password checks and the
    token bucket its users and ``rate_limit`` ask for (made anew at each reload)."""

    context: ssl.SSLContext | None
    auth: BasicAuth
    headers: tuple[tuple[str, str], ...]
    files: tuple[Path, ...]
    rate_limit: Bucket | None

    @classmethod
    def of(cls, config: WebConfig) -> Gate:
        limit = config.rate_limit
        bucket = Bucket(limit.interval, limit.burst) if limit is not None else None
        return cls(config.context, BasicAuth(dict(config.users)), config.headers, config.files, bucket)
