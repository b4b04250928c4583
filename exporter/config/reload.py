"""Reloading the configuration without a restart (SIGHUP, or POST /-/reload with --web.enable-lifecycle).

The new file is read and validated completely first; only a config that
passed every check is applied, by assignments that take effect from the next
poll and the next evaluation. On any error the running config stays, one line
is logged, and the caller (the HTTP endpoint) gets the message. Accounts whose
settings did not change keep their state: waits, counters, last success,
pending alerts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .schema import ConfigError
from .settings import Config

log = logging.getLogger(__name__)

# What a reload cannot change: said on every reload, so nobody waits for it to apply.
NOT_RELOADABLE = (
    "flags (--web.listen-address, --web.telemetry-path), poll_concurrency, state_file, shard, whatsgate"
)


class Reloader:
    def __init__(
        self,
        load: Callable[[], Config],
        apply: Callable[[Config], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.load = load
        self.apply = apply
        self.clock = clock
        self.successful = True
        self.last_success = clock()  # the start-up load counts, as in Prometheus
        self._lock = threading.Lock()  # SIGHUP and /-/reload at once: one after the other

    def reload(self, trigger: str) -> tuple[bool, str]:
        """Reload; returns (ok, message). Never raises."""
        with self._lock:
            try:
                config = self.load()
            except ConfigError as exc:
                return self._failed(trigger, f"config error: {exc}")
            except Exception as exc:  # an unreadable file, a bug: the running config stays
                log.debug("loading the config failed", exc_info=True)
                return self._failed(trigger, f"cannot load the config: {type(exc).__name__}")
            try:
                self.apply(config)
            except Exception as exc:
                log.error("applying the reloaded config failed", exc_info=True)
                return self._failed(trigger, f"cannot apply the config: {type(exc).__name__}")
            self.successful, self.last_success = True, self.clock()
            log.info(
                "configuration reloaded",
                extra={"fields": {"trigger": trigger, "not_reloadable": NOT_RELOADABLE}},
            )
            return True, "configuration reloaded"

    def _failed(self, trigger: str, message: str) -> tuple[bool, str]:
        self.successful = False
        log.error(
            "configuration reload failed, keeping the running one",
            extra={"fields": {"trigger": trigger, "err": message}},
        )
        return False, message
