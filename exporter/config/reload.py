"""Reloading the configuration without a restart (SIGHUP, or POST /-/reload with --web.enable-lifecycle).

The new file is read and validated completely first; only a config that
passed every check is applied, by assignments that take effect from the next
poll and the next evaluation. On any error the running config stays, one line
is logged, and the caller (the HTTP endpoint) gets the message. Accounts whose
settings did not change keep their state: waits, counters, last success,
pending alerts.

A reload logs one line: which top-level keys differ from the running config
and, of those, which did not apply (:data:`NOT_RELOADABLE`: they keep their
running value until a restart). The command-line flags are not in the file, so
no reload changes them; what a flag sets (``--shard``, ``--demo``) is set in
the config the loader returns, so a file's value under it never differs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from .schema import ConfigError
from .settings import Config

log = logging.getLogger(__name__)

# What the running parts were built with (the client, the scheduler's workers, the state
# file writer, the accounts this replica owns): a reload keeps their running values.
NOT_RELOADABLE = ("whatsgate", "poll_concurrency", "state_file", "shard")


def changed(running: Config, new: Config) -> list[str]:
    """The top-level keys whose values differ, in Config's order (names only: values may be secrets)."""
    return [f.name for f in dataclasses.fields(Config) if getattr(running, f.name) != getattr(new, f.name)]


class Reloader:
    """Loads and applies a new config; ``running`` is the config applied last (None: not known)."""

    def __init__(
        self,
        load: Callable[[], Config],
        apply: Callable[[Config], None],
        clock: Callable[[], float] = time.time,
        running: Config | None = None,
    ) -> None:
        self.load = load
        self.apply = apply
        self.clock = clock
        self.running = running
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
            different = changed(self.running, config) if self.running is not None else []
            kept = [key for key in different if key in NOT_RELOADABLE]
            if self.running is not None and kept:
                config = dataclasses.replace(config, **{key: getattr(self.running, key) for key in kept})
            try:
                self.apply(config)
            except Exception as exc:
                log.error("applying the reloaded config failed", exc_info=True)
                return self._failed(trigger, f"cannot apply the config: {type(exc).__name__}")
            self.running = config
            self.successful, self.last_success = True, self.clock()
            fields = {"trigger": trigger, "changed": ", ".join(different) or "nothing"}
            if kept:
                fields["not_applied"] = ", ".join(kept)
                log.warning("configuration reloaded; not_applied needs a restart", extra={"fields": fields})
            else:
                log.info("configuration reloaded", extra={"fields": fields})
            return True, "configuration reloaded"

    def _failed(self, trigger: str, message: str) -> tuple[bool, str]:
        self.successful = False
        log.error(
            "configuration reload failed, keeping the running one",
            extra={"fields": {"trigger": trigger, "err": message}},
        )
        return False, message
