"""The state file: open waits survive a restart (``state_file:``).

Only the open waits are kept (chat id, chat type, start), per account: after a
restart every wait continues where it was, instead of starting again at the
chat's last activity. Histogram counters restart at zero, as Prometheus
expects of counters. The file is written atomically (a temporary file in the
same directory, then a rename) by a thread of its own, woken by publishes, at
most once per ``min_interval``; a missing file starts fresh, a corrupt or
unreadable one starts fresh with one log line, never a crash. It holds chat
ids, which are phone numbers: it is created readable by its owner only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..config.files import write_atomically
from .state import AccountState
from .waiting import Waits, from_json, to_json

log = logging.getLogger(__name__)

VERSION = 1


def load(path: Path, buckets: tuple[float, ...]) -> dict[str, Waits]:
    """The open waits per WhatsappID; empty when the file is missing or unusable."""
    try:
        raw = json.loads(path.read_bytes())
        if (
            not isinstance(raw, dict)
            or raw.get("version") != VERSION
            or not isinstance(raw.get("accounts"), dict)
        ):
            raise ValueError("not a whatsgate-exporter state file of version 1")
        restored = {}
        for whatsapp_id, account in raw["accounts"].items():
            if not isinstance(account, dict):
                raise ValueError(f"account {whatsapp_id!r}: expected an object")
            restored[whatsapp_id] = from_json(account.get("waits"), buckets)
        return restored
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        log.warning(
            "state file unusable, starting fresh", extra={"fields": {"path": str(path), "err": reason}}
        )
        return {}


def dump(states: Iterable[AccountState]) -> bytes:
    accounts = {
        state.account.whatsapp_id: {"waits": to_json(state.data.waits)}
        for state in states
        if state.data is not None
    }
    return json.dumps({"version": VERSION, "written_at": time.time(), "accounts": accounts}).encode()


def save(path: Path, states: Iterable[AccountState]) -> None:
    """Write the state file in one step, readable by its owner only: it holds phone numbers."""
    write_atomically(path, dump(states), mode=0o600)


class StateWriter:
    """Writes the state file after polls, on its own thread (publishing only wakes it)."""

    def __init__(
        self,
        path: Path,
        states: Callable[[], Iterable[AccountState]],
        min_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.states = states
        self.min_interval = min_interval
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self._failing = False
        self._thread: threading.Thread | None = None

    def write_once(self) -> None:
        try:
            save(self.path, self.states())
        except OSError as exc:
            if not self._failing:  # one line per episode, not one per poll
                log.warning(
                    "cannot write state file", extra={"fields": {"path": str(self.path), "err": exc.strerror}}
                )
            self._failing = True
        else:
            if self._failing:
                log.info("state file written again", extra={"fields": {"path": str(self.path)}})
            self._failing = False

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.wake.wait()
            self.wake.clear()
            if self.stop_event.is_set():
                break
            self.write_once()
            self.stop_event.wait(self.min_interval)  # coalesce a burst of polls into one write

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="state-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, writing the latest state one last time."""
        self.stop_event.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self.write_once()
