"""The state file: open waits survive a restart (``state_file:``).

Only the open waits are kept (chat id, chat type, start), per account, with the time
of the poll that last saw them: after a restart every wait continues where it was,
instead of starting again at the chat's last activity. Histogram counters restart at
zero, as Prometheus expects of counters. The file is written atomically (a temporary
file in the same directory, then a rename) by a thread of its own, woken by publishes,
at most once per ``min_interval``. It holds chat ids, which are phone numbers: it is
created readable by its owner only.

Reading never crashes and never invents: a missing file starts fresh; a file that is
not a state file, or larger than :data:`MAX_BYTES`, starts fresh with one log line; a
bad entry (an account, a wait) is skipped on its own, and a start after now (a file
from the future, a clock set back) is refused, the wait then starting again at its
chat's last activity as without a file; what was skipped is counted in one log line.
What was read is a start, not a fact: each entry is handed to one poller only
(:class:`~exporter.poller.supervisor.Supervisor`), stays in the file until that
account's first good poll replaces it or ``stale_after`` says the account is gone, and
a wait that this first poll does not see unread ends there.

With reply times on, an account's entry also keeps its event-log cursor and open reply
spans (:class:`SavedReplies`; never a message's text), used by its first events poll
and kept until it is replaced (not bounded by ``stale_after``: after any downtime the log
is read on). An entry without them (replies off, an older file) still loads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..config.files import write_atomically
from ..model import CHAT_TYPES
from .replies import Cursor, Tracker
from .schedule import T_MAX
from .state import ChatData

log = logging.getLogger(__name__)

VERSION = 1
WAITS_VERSION = 1
# The largest state file read or written. A wait takes at most 64 bytes of it (a WhatsApp id of
# up to 30 characters, its type, its start and the punctuation), so this holds one million open
# waits: a hundred accounts of 10,000 chats, every chat unread. A bigger file is not one the
# exporter wrote: it is refused unread, so reading it costs no memory. Should the exporter ever
# hold more, the writer leaves whole accounts out (logged) rather than write what it cannot read.
MAX_BYTES = 64 * 2**20
MAX_CHAT_ID = 1024


class Unusable(ValueError):
    """The file is not a state file the exporter can read (the message says why, and quotes nothing)."""


# The most event ids kept at the cursor's date (events within one second): more is not a file
# the exporter wrote. The longest event_date kept: "YYYY-MM-DD HH:MM:SS" with room for a zone.
MAX_CURSOR_IDS = 100_000
MAX_CURSOR_DATE = 64


@dataclass(frozen=True)
class SavedReplies:
    """One account's event-log state: where the log was read up to, and the open reply spans.

    ``tracker`` is a live :class:`Tracker` (written with ``to_json``) or, as read from the file,
    its JSON, rebuilt by :meth:`restore` with the configured buckets (bad chats skipped there)."""

    cursor: Cursor | None
    tracker: Tracker | Any

    def restore(self, buckets: tuple[float, ...], now: float) -> tuple[Tracker, int]:
        """The tracker, and how many of its entries were skipped (bad, or from the future)."""
        if isinstance(self.tracker, Tracker):
            return self.tracker, 0
        return Tracker.read_json(self.tracker, buckets, now)

    def to_json(self) -> dict[str, Any]:
        cursor = None if self.cursor is None else {"date": self.cursor.date, "ids": list(self.cursor.ids)}
        tracker = self.tracker.to_json() if isinstance(self.tracker, Tracker) else self.tracker
        return {"cursor": cursor, "tracker": tracker}


def replies_from_json(obj: Any) -> SavedReplies:
    """The inverse of :meth:`SavedReplies.to_json` (the tracker checked later, by
    ``Tracker.read_json``); ValueError when it is not what the exporter writes (the caller skips
    it, keeping the waits)."""
    if not isinstance(obj, dict) or set(obj) != {"cursor", "tracker"}:
        raise ValueError("replies: expected an object with exactly 'cursor' and 'tracker'")
    raw, cursor = obj["cursor"], None
    if raw is not None:
        if not isinstance(raw, dict) or set(raw) != {"date", "ids"}:
            raise ValueError("replies: a cursor has exactly 'date' and 'ids'")
        date, ids = raw["date"], raw["ids"]
        if not isinstance(date, str) or len(date) > MAX_CURSOR_DATE or not _chat_id(date or "-"):
            raise ValueError("replies: the cursor's date must be a short string")
        if not isinstance(ids, list) or len(ids) > MAX_CURSOR_IDS:
            raise ValueError("replies: the cursor's ids must be a list")
        if not all(type(i) is int for i in ids):
            raise ValueError("replies: the cursor's ids must be integers")
        cursor = Cursor(date, tuple(ids))
    if not isinstance(obj["tracker"], dict):
        raise ValueError("replies: 'tracker' must be an object")
    return SavedReplies(cursor, obj["tracker"])


@dataclass(frozen=True)
class Entry:
    """One account in the state file: its open waits as of ``polled_at``, the poll that saw them,
    and its event-log state (None: replies disabled, or a file written before they were kept)."""

    since: Mapping[str, tuple[str, float]]  # chat id -> (chat type, start), as in Waits
    polled_at: float
    replies: SavedReplies | None = None

    @classmethod
    def of(cls, data: ChatData, replies: SavedReplies | None = None) -> Entry:
        """The open waits of a good poll (histograms are counters: they are not kept)."""
        return cls(data.waits.since, data.polled_at, replies)

    def expired(self, now: float, stale_after: float) -> bool:
        """Whether the account has gone unconfirmed for longer than ``stale_after``: forget it."""
        return now - self.polled_at > stale_after


class Reading:
    """One reading of the state file: what is skipped is counted, and told in one log line at the end.

    :meth:`start` is the guard for every time restored from the file (a wait's start,
    and any other span the file keeps): what it refuses is skipped, never clamped, so
    the poller estimates it afresh instead of trusting a time it cannot check.
    """

    def __init__(self, now: float) -> None:
        self.now = now
        self.skipped = 0  # entries that are not what the exporter writes
        self.future = 0  # starts after now

    def skip(self) -> None:
        self.skipped += 1

    def start(self, value: object) -> float | None:
        """``value`` as a restored start (Unix time), or None, counted, when it is not a time in
        range or lies after now: a start from the future would show a wait of 0 s until then,
        and no alert would fire."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.skipped += 1
            return None
        if not (0 <= value <= T_MAX) or (isinstance(value, float) and not math.isfinite(value)):
            self.skipped += 1
            return None
        if value > self.now:
            self.future += 1
            return None
        return float(value)

    def report(self, path: Path) -> None:
        if self.skipped or self.future:
            log.warning(
                "state file entries skipped",
                extra={"fields": {"path": str(path), "bad": self.skipped, "future": self.future}},
            )


def waits_to_json(since: Mapping[str, tuple[str, float]]) -> dict[str, Any]:
    """An account's open waits, as JSON-ready data."""
    return {"version": WAITS_VERSION, "since": {cid: [kind, start] for cid, (kind, start) in since.items()}}


def waits_from_json(obj: Any, reading: Reading) -> Mapping[str, tuple[str, float]]:
    """The inverse of :func:`waits_to_json`; each bad wait skipped and counted.

    ValueError when ``obj`` is not the waits of an account at all (the caller skips the account).
    A state file may be truncated, hand-edited or from another version: every field is checked.
    """
    if not isinstance(obj, dict) or set(obj) != {"version", "since"}:
        raise ValueError("waiting state: expected an object with exactly 'version' and 'since'")
    if obj["version"] != WAITS_VERSION or isinstance(obj["version"], bool):
        raise ValueError(f"waiting state: unsupported version (expected {WAITS_VERSION})")
    raw = obj["since"]
    if not isinstance(raw, dict):
        raise ValueError("waiting state: 'since' must be an object")
    since: dict[str, tuple[str, float]] = {}
    for cid, entry in raw.items():
        if not _chat_id(cid) or not isinstance(entry, list) or len(entry) != 2 or entry[0] not in CHAT_TYPES:
            reading.skip()
            continue
        start = reading.start(entry[1])
        if start is not None:
            since[cid] = (entry[0], start)
    return MappingProxyType(since)


def _chat_id(cid: object) -> bool:
    """Whether ``cid`` can be a chat id: non-empty text of bounded length, encodable (no lone surrogate)."""
    if not isinstance(cid, str) or not cid or len(cid) > MAX_CHAT_ID:
        return False
    try:
        cid.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read(path: Path) -> bytes:
    """The file's bytes; Unusable, before reading it, when it is larger than :data:`MAX_BYTES`."""
    with path.open("rb") as file:
        # fstat refuses a big regular file unread; the bounded read, anything else (a pipe).
        if os.fstat(file.fileno()).st_size > MAX_BYTES or len(data := file.read(MAX_BYTES + 1)) > MAX_BYTES:
            raise Unusable(f"larger than {MAX_BYTES // 2**20} MiB, more than the exporter writes")
    return data


def load(path: Path) -> dict[str, Entry]:
    """The entries per WhatsappID; empty when the file is missing or unusable (one log line)."""
    reading = Reading(time.time())
    try:
        raw = json.loads(_read(path))
        if (
            not isinstance(raw, dict)
            or raw.get("version") != VERSION
            or not isinstance(raw.get("accounts"), dict)
        ):
            raise Unusable("not a whatsgate-exporter state file of version 1")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        # Not the decoder's message: it may quote the file, and the file holds phone numbers.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        reason = str(exc) if isinstance(exc, Unusable) else reason
        log.warning(
            "state file unusable, starting fresh", extra={"fields": {"path": str(path), "err": reason}}
        )
        return {}
    written_at = raw.get("written_at")
    restored = {}
    for whatsapp_id, account in raw["accounts"].items():
        try:
            if not isinstance(account, dict):
                raise ValueError("an account must be an object")
            since = waits_from_json(account.get("waits"), reading)
        except ValueError:
            reading.skip()
            continue
        # Files written before polled_at was kept: the waits were current when the file was written.
        polled_at = account.get("polled_at", written_at)
        if isinstance(polled_at, bool) or not isinstance(polled_at, int | float) or not polled_at >= 0:
            polled_at = reading.now
        replies = None
        if account.get("replies") is not None:
            try:
                replies = replies_from_json(account["replies"])
            except ValueError:
                reading.skip()  # the waits stay: only the event log is read afresh (no replay)
        restored[whatsapp_id] = Entry(since, min(float(polled_at), reading.now), replies)
    reading.report(path)
    return restored


def dump(entries: Mapping[str, Entry]) -> tuple[bytes, int]:
    """The state file's bytes, and how many accounts were left out to stay within :data:`MAX_BYTES`."""
    head = f'{{"version":{VERSION},"written_at":{json.dumps(time.time())},"accounts":{{'
    parts: list[str] = []
    size, left_out = len(head) + 2, 0
    for whatsapp_id, entry in entries.items():
        account: dict[str, Any] = {"waits": waits_to_json(entry.since), "polled_at": entry.polled_at}
        if entry.replies is not None:
            account["replies"] = entry.replies.to_json()
        part = json.dumps(whatsapp_id) + ":" + json.dumps(account, separators=(",", ":"))
        if size + len(part) + 1 > MAX_BYTES:  # ASCII (json.dumps escapes the rest): characters are bytes
            left_out += 1
            continue
        parts.append(part)
        size += len(part) + 1
    return (head + ",".join(parts) + "}}").encode(), left_out


def save(path: Path, entries: Mapping[str, Entry]) -> int:
    """Write the state file in one step, readable by its owner only (it holds phone numbers);
    returns how many accounts did not fit."""
    data, left_out = dump(entries)
    write_atomically(path, data, mode=0o600)
    return left_out


class StateWriter:
    """Writes the state file after polls, on its own thread (publishing only wakes it)."""

    def __init__(
        self,
        path: Path,
        entries: Callable[[], Mapping[str, Entry]],
        min_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.entries = entries
        self.min_interval = min_interval
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self._failing = False
        self._left_out = 0
        self.errors = 0  # failed writes since start (the log tells only each episode's first)
        self._thread: threading.Thread | None = None

    def write_once(self) -> None:
        try:
            left_out = save(self.path, self.entries())
        except OSError as exc:
            self.errors += 1
            if not self._failing:  # one line per episode, not one per poll
                log.warning(
                    "cannot write state file", extra={"fields": {"path": str(self.path), "err": exc.strerror}}
                )
            self._failing = True
            return
        if self._failing:
            log.info("state file written again", extra={"fields": {"path": str(self.path)}})
        self._failing = False
        if left_out and not self._left_out:  # one line per episode, too
            log.warning(
                "state file full: the waits of some accounts are not kept",
                extra={"fields": {"path": str(self.path), "accounts": left_out, "max_bytes": MAX_BYTES}},
            )
        self._left_out = left_out

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


class WriteErrors(Collector):
    """The writer's failed writes as a counter, its family made by the metric's definition (passed in:
    this layer does not import the metrics). A counter, not the time of the last good write: writes
    follow polls, so the age that means trouble would depend on poll_interval, while a counter that
    moves means failing writes under any config. It is there at 0 from the start, so that the first
    failure is an increase Prometheus sees."""

    def __init__(
        self, writer: StateWriter, family: Callable[[], CounterMetricFamily | GaugeMetricFamily]
    ) -> None:
        self.writer = writer
        self.family = family

    def collect(self) -> Iterator[Metric]:
        errors = self.family()
        errors.add_metric([], float(self.writer.errors))
        yield errors
