"""One account's poll: request, decode, snapshot, render, publish — and never a lie.

Whatever goes wrong between sending the request and publishing the snapshot
ends as a published *failed* poll with a reason and one log line: the API's
faults as classified by the client, data that cannot be exported as
``invalid_response``, and the exporter's own bugs as ``internal``. An
exception that escaped would leave ``whatsgate_up`` at its last value while
nothing is polled, the worst thing an exporter can do.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from itertools import chain
from operator import attrgetter
from typing import Protocol

from ..config import redaction
from ..config.settings import Config
from ..model import INTERNAL, INVALID_RESPONSE, Account
from ..snapshot.state import AccountState, ChatData
from ..snapshot.statefile import Entry, SavedReplies
from ..snapshot.waiting import Waits
from ..whatsgate.client import PollError, WhatsGateClient
from .events import ChatIndex

log = logging.getLogger(__name__)

# Each chat's id and name, checked for an echoed API key in one join (C-level, no generator).
CHAT_ID, CHAT_NAME = attrgetter("id"), attrgetter("name")
MAX_BACKOFF_FACTOR = 4


class Sink(Protocol):
    """Where snapshots go (the store): rendering is split out so the poll's duration covers it."""

    def prepare(self, state: AccountState) -> object:
        """This poll's chat data rendered (None: nothing renders it), published with the data
        (``ChatData.rendered``), which may then drop its chats (``ChatData.released``)."""

    def publish(self, state: AccountState) -> None: ...


def next_delay(interval: float, consecutive_failures: int) -> float:
    """Seconds to wait before the next poll: the interval, doubled per failure, capped."""
    if consecutive_failures <= 1:
        return interval
    return float(min(interval * 2 ** (consecutive_failures - 1), interval * MAX_BACKOFF_FACTOR))


def phase(whatsapp_id: str, interval: float) -> float:
    """A stable offset within the interval, so accounts' polls spread evenly instead of in lockstep."""
    return zlib.crc32(whatsapp_id.encode("utf-8", "replace")) / 2**32 * interval


class AccountPoller:
    # Slots: one poller per account, for as long as it is polled.
    __slots__ = (
        "account", "chat_index", "client", "clock", "last_answer_chats", "lock",
        "restored", "restored_replies", "settings", "sink", "state",
    )  # fmt: skip

    def __init__(
        self,
        account: Account,
        client: WhatsGateClient,
        settings: Callable[[], Config],
        sink: Sink,
        clock: Callable[[], float] = time.time,
        restored: Entry | None = None,
    ) -> None:
        self.account = account
        self.client = client
        self.settings = settings  # read at every poll: a reloaded config applies from the next one
        self.sink = sink
        self.clock = clock
        self.state = AccountState(account=account)
        # Open waits read from the state file (or a renamed account's), continued by the first good
        # poll and then dropped: what it does not see unread is not kept, and is never used again.
        self.restored = restored
        # The size of the last answer, in chats: this poll's weight in the scheduler's budget.
        self.last_answer_chats = 0
        # The account's events job (poller/events.py) updates ``state.replies`` on another worker:
        # "take the current state, replace, prepare, publish, store" is done under this lock by
        # both jobs (their requests outside it), so neither publish loses the other's update.
        self.lock = threading.Lock()
        # Which chats count, from the last good get-chats, for the events job (replies.enabled only).
        self.chat_index: ChatIndex | None = None
        # The reply state read from the state file, until the first good events poll replaces it.
        self.restored_replies = restored.replies if restored is not None else None

    def rename(self, account: Account) -> None:
        """The same account (same labels) with other settings, e.g. another schedule, after a reload."""
        self.account = account
        self.state = dataclasses.replace(self.state, account=account)

    def saved(self, now: float, stale_after: float) -> Entry | None:
        """What the state file keeps for this account: its last good poll's open waits, or before
        one, what was restored (until ``stale_after`` says the account is gone)."""
        data, replies = self.state.data, self.saved_replies()
        if data is not None:
            return Entry.of(data, replies)
        restored = self.restored
        if restored is None or restored.expired(now, stale_after):
            # No waits to keep, but the event log's cursor and spans outlive stale_after: after a
            # long downtime the log is read on from where it was, not started afresh.
            return None if replies is None else Entry({}, now, replies)
        return dataclasses.replace(restored, replies=replies)

    def _unanswered(self) -> frozenset[str]:
        """The chats waiting for an answer now (the events job's latest), kept first under the cap."""
        replies = self.state.replies
        return frozenset(w.chat_id for w in replies.unanswered) if replies is not None else frozenset()

    def _knows(self) -> Callable[[str], bool] | None:
        """Which chats the reply tracker knows now (they need no get-history); None: none yet."""
        replies = self.state.replies
        return replies.tracker.knows if replies is not None else None

    def saved_replies(self) -> SavedReplies | None:
        """The reply state the state file keeps: the events poll's, or before one, what was restored."""
        replies = self.state.replies
        if replies is not None and replies.last_success is not None:
            return SavedReplies(replies.cursor, replies.tracker)
        return self.restored_replies

    def _fields(self) -> dict[str, object]:
        return {"account": self.account.name, "whatsapp_id": self.account.whatsapp_id}

    def poll_once(self, lag: float = 0.0) -> AccountState:
        """Poll the account once and publish the new snapshot, failed or not; returns it."""
        started = time.monotonic()
        config = self.settings()
        previous = self.state
        if self.restored is not None and self.restored.expired(self.clock(), config.stale_after):
            self.restored = None  # the account has been gone for longer than stale_after
        restored = None
        if self.restored is not None:
            restored = Waits(self.restored.since, Waits.empty(config.waiting.buckets).histograms)
        chats = 0
        try:
            # The request outside any lock; then the account's lock and HEAVY_WORK, in the order
            # the render below takes them, kept from the decode to the publish: one account's
            # chats decoded, built and rendered at a time (memory.HEAVY_WORK, bench/RESULTS.md).
            # Both are released when anything raises: the failure below takes the lock again.
            with self.client.chats(self.account.whatsapp_id, self.lock) as found:
                chats = self.last_answer_chats = len(found)
                if redaction.mentions_secret(chain(map(CHAT_ID, found), map(CHAT_NAME, found))):
                    # A server echoing the API key into a chat: it must not reach a label value.
                    found = [c.shown_as(redaction.scrub(c.id), redaction.scrub(c.name)) for c in found]
                    if len({chat.id for chat in found}) < len(found):
                        raise PollError(INVALID_RESPONSE, "get-chats: chat ids hold the API key")
                polled_at = self.clock()
                # Only while replies are read: it holds an entry per counted chat between polls. Its
                # table lists every chat: the snapshot keeps its selected chats and open waits as views
                # of it (a byte, a position each), not as ids of their own.
                index = (
                    ChatIndex.build(found, config, polled_at, self._knows())
                    if config.replies.enabled
                    else None
                )
                data = ChatData.build(
                    found,
                    config.chats,
                    polled_at=polled_at,
                    waiting=config.waiting,
                    schedule=config.schedule_for(self.account),
                    previous=previous.data.waits if previous.data is not None else restored,
                    privacy=config.privacy,
                    unanswered=self._unanswered(),
                    table=index.table if index is not None else None,
                )
                self.chat_index = index
                del found
                return self._succeed(data, config, started, lag, chats)
        except PollError as exc:
            reason, detail = exc.reason, exc.detail
        except (UnicodeError, OverflowError, ValueError) as exc:
            # The parser let through something that cannot be written as exposition text.
            reason, detail = INVALID_RESPONSE, f"get-chats: data cannot be exported ({type(exc).__name__})"
        except Exception as exc:  # MemoryError and the exporter's own bugs: still a failed poll, never up
            reason, detail = INTERNAL, f"get-chats: {type(exc).__name__} in the exporter"
            log.debug("internal error while polling", exc_info=True, extra={"fields": self._fields()})
        # The one place a failed poll's detail is made fit to show: the parser names a broken
        # chat by its real id, which privacy mode must not let reach a log line, / or a metric.
        detail = config.privacy.scrub(detail)
        with self.lock:
            return self._fail(reason, detail, started, lag)

    def _fail(self, reason: str, detail: str, started: float, lag: float) -> AccountState:
        state = self.state.failed(reason, detail, time.monotonic() - started, lag)
        log.warning(
            "poll failed",
            extra={
                "fields": {
                    **self._fields(),
                    "reason": reason,
                    "err": detail,
                    "failures": state.consecutive_failures,
                }
            },
        )
        return self._publish(state)

    def _succeed(
        self, data: ChatData, config: Config, started: float, lag: float, chats: int
    ) -> AccountState:
        """Publish a good poll on the current state (its replies as the events job left them)."""
        previous = self.state
        prepared = self.sink.prepare(previous.succeeded(data, 0.0, lag))
        if prepared is not None:
            data = dataclasses.replace(data, rendered=prepared)
            if not config.alerts_read_chats:
                data = data.released()  # rendered: nothing downstream reads the chats one by one
        state = previous.succeeded(data, time.monotonic() - started, lag)
        if previous.consecutive_failures:
            log.info(
                "poll recovered",
                extra={"fields": {**self._fields(), "after_failures": previous.consecutive_failures}},
            )
        log.debug(
            "poll ok",
            extra={
                "fields": {
                    **self._fields(),
                    "chats": chats,
                    "duration": round(state.last_poll_duration or 0, 3),
                }
            },
        )
        published = self._publish(state)
        if published.data is not None:
            self.restored = None  # consumed: the state file now keeps this poll's waits
        return published

    def _publish(self, state: AccountState) -> AccountState:
        try:
            self.sink.publish(state)
        except Exception as exc:
            # Even the health series could not be published: count it as a failed poll on the
            # state kept here, so the next successful publish tells the truth about it.
            state = self.state.failed(INTERNAL, f"publishing failed ({type(exc).__name__})", 0.0)
            log.error("publishing a poll failed", exc_info=True, extra={"fields": self._fields()})
        self.state = state
        return state

    def run(self, lag: float) -> float:
        """The scheduler's job: poll once, return the delay until the next poll."""
        first = self.state.polls == 0
        state = self.poll_once(lag)
        interval = self.settings().poll_interval
        delay = next_delay(interval, state.consecutive_failures)
        if first:
            delay += phase(self.account.whatsapp_id, interval)
        # A little jitter keeps accounts that share a phase from staying in lockstep.
        return delay + random.uniform(-0.01, 0.01) * min(interval, 60.0)

    # The scheduler's job is the poller itself, not a bound method kept beside it for every
    # account between polls.
    __call__ = run
