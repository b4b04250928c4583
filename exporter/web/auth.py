"""HTTP basic auth against bcrypt hashes (``basic_auth_users``), with a cache of successful checks.

A bcrypt check at cost 10 takes ~60-100 ms: paid on every scrape it would
dominate the exporter's CPU. Successful checks are cached under an HMAC of
user, password and hash with a key random per process, so the cache never
holds a password nor anything that can be checked offline against one. Failures
are never cached, and an unknown user is checked against a dummy hash of the
same cost, so a wrong guess always costs the prober a full bcrypt and does not
tell whether the user exists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

import bcrypt

# A cost-10 hash of a random string nobody knows: what an unknown user is checked against.
_DUMMY = b"$2b$10$9wyCdiZ2GZsWAF6SwdqCIefNr1ayS/lkhz6ulsKiAnIP2ErMRA5Wq"
CACHE_SIZE = 256  # distinct (user, password) pairs remembered; a few scrapers need a few
_KEY = secrets.token_bytes(32)


class BasicAuth:
    """Checks ``Authorization: Basic`` headers; with no users configured, everything passes."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def check(self, header: str | None) -> bool:
        """True when ``header`` (the Authorization value) names a configured user and its password."""
        if not self.users:
            return True
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user_b, sep, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
            user = user_b.decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        token = hmac.new(_KEY, b"\0".join((user_b, password, hashed or b"")), hashlib.sha256).digest()
        with self._lock:
            if hashed is not None and token in self._ok:
                self._ok.move_to_end(token)
                return True
        try:
            # bcrypt compares in constant time; $2y$ (htpasswd) is the same algorithm as $2b$.
            ok = bcrypt.checkpw(password, hashed or _DUMMY) and hashed is not None
        except ValueError:  # longer than bcrypt's 72 bytes, or a hash bcrypt refuses
            bcrypt.checkpw(b"", _DUMMY)  # as slow as any other failure
            ok = False
        if ok:
            with self._lock:
                self._ok[token] = None
                if len(self._ok) > CACHE_SIZE:
                    self._ok.popitem(last=False)
        return ok
