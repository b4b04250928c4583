"""The web config, re-read when its file or a certificate it names changes.

Checked at most every ``interval`` seconds when a connection asks (off the
event loop: a reload builds an SSL context and a bcrypt hash), with a cheap stat
of each file and a hash of the (small) config file itself, so a rotated
certificate or a new user applies without a restart. A broken edit keeps the
last good config and logs one line per broken version; so does an edit that
would turn basic auth or TLS off (an emptied or truncated file reads that way:
turning them off takes a restart).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from ..config.schema import ConfigError
from ..config.webconfig import load_web_config
from .auth import Gate

log = logging.getLogger(__name__)

Fingerprint = tuple[object, ...]


class WebConfigWatcher:
    """Holds the web config in force (a :class:`Gate`); ``get()`` reloads it when its files changed."""

    def __init__(self, path: str | Path, interval: float = 2.0) -> None:
        self.path = Path(path)
        self.interval = interval
        self._lock = threading.Lock()
        self.config = Gate.of(load_web_config(self.path))  # a bad file at start-up raises ConfigError
        self._seen = self._fingerprint(self.config)
        self._checked = time.monotonic()

    def _fingerprint(self, config: Gate) -> Fingerprint:
        parts: list[object] = []
        try:
            parts.append(hashlib.sha256(self.path.read_bytes()).digest())
        except OSError as exc:
            parts.append(exc.errno)
        for path in config.files:
            try:
                parts.append(((st := os.stat(path)).st_ino, st.st_size, st.st_mtime_ns))
            except OSError as exc:
                parts.append(exc.errno)
        return tuple(parts)

    def due(self) -> bool:
        """Whether :meth:`get` would look at the files now."""
        return time.monotonic() - self._checked >= self.interval

    def get(self) -> Gate:
        with self._lock:
            if self.due():
                self._checked = time.monotonic()
                self._reload()
        return self.config

    def _reload(self) -> None:
        seen = self._fingerprint(self.config)
        if seen == self._seen:
            return
        self._seen = seen  # a broken version is reported once, not at every check
        try:
            config = Gate.of(load_web_config(self.path))
            if self.config.auth.enabled and not config.auth.enabled:
                raise ConfigError("basic_auth_users", "no users: turning basic auth off takes a restart")
            if self.config.context is not None and config.context is None:
                raise ConfigError("tls_server_config", "no certificate: turning TLS off takes a restart")
        except ConfigError as exc:
            failed = {"file": str(self.path), "err": str(exc)}
            log.warning("web config reload failed: keeping the last good one", extra={"fields": failed})
            return
        # The files as looked at before the load, not after: an edit landing during the load (a
        # bcrypt hash to make) is then new at the next look, and loaded.
        if config.files != self.config.files:
            seen = self._fingerprint(config)
        self.config, self._seen = config, seen
        fields = {"file": str(self.path), "tls": config.context is not None, "users": len(config.auth.users)}
        log.info("web config reloaded", extra={"fields": fields})
