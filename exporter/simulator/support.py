"""The demo's support line: customers write, agents read and answer after realistic delays.

The demo exists to show waiting times, so its traffic is shaped for them. Customers write at a
steady rate (a new message in a read chat starts a wait; a follow-up in a waiting chat only
adds unread and moves ``timestamp``). When a wait starts its read time is drawn from the
account's ``Profile``: most are fast (seconds to two minutes), some slow (tens of minutes) and
a few wait overnight (read the next morning, 08:00-10:00 Moscow time, at least an hour on).
Agents read one chat per tick, oldest due first.

Reading is not answering. A read chat is usually answered (``REPLY``), mostly within minutes
(``QUICK``) but, for the account's ``Profile.late`` share, much later (``LATE``); the rest are
read and never answered, until the customer writes again. An answer also reads anything the
customer added meanwhile. Customers read some answers (``ack`` events) and sessions drop now
and then (``disconnect`` events). Every message goes through the account's log (log.py).

``demo-support`` keeps office hours (``DEMO_SCHEDULES["office"]``) and reads and answers only
while open. Real office hours would show a demo started in the evening nothing but a closed
office, so the demo's office opens for the first 40 minutes of every hour, every day: whenever
it is started, within 20 minutes it shows both messages piling up while closed and the backlog
being worked off at opening. Waits are counted in open hours by the exporter, so a message at
:35 read at :05 waited 10 minutes.

At start, the chats unread are recent waits (``INITIAL_AGE``) and a few read chats have been
waiting for an answer for a while (``INITIAL_UNANSWERED``; one per account is never answered),
so alerts on both kinds of wait have something to fire on at once. Every chat gets a past
(traffic.prehistory) that ends in its state.

Time is the clock's at each request, advanced in fixed ticks of absolute time, so one seed
and one start time give the same traffic however often the account is polled. Answers, acks
and disconnects draw from a second random stream, so reads draw as they did before answers.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .log import AccountLog
from .traffic import prehistory

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The exporter's config shape (``schedules:`` and ``accounts[].schedule``), as plain data.
DEMO_SCHEDULES: dict[str, dict[str, Any]] = {
    "office": {
        "timezone": "Europe/Moscow",
        "hours": {day: [f"{hour:02d}:00-{hour:02d}:40" for hour in range(24)] for day in DAYS},
        "holidays": [],
    }
}
DEMO_ACCOUNT_SCHEDULES = {"demo-support": "office"}

TICK = 5.0  # seconds of simulated time per step: the demo's poll interval
MAX_CATCH_UP = int(86400 / TICK)  # after a longer pause, only the last day is simulated
FAST = (5.0, 150.0)
SLOW = (10 * 60.0, 45 * 60.0)
MORNING_ZONE = ZoneInfo("Europe/Moscow")
OVERNIGHT_AFTER = 3600.0  # an overnight wait is read the first 08:00-10:00 at least this far on
FOLLOW_UP = 0.3  # share of messages that go to a chat already waiting
REPLY = 0.8  # share of reads the agent answers
QUICK = (10.0, 180.0)  # an answer typed right after reading
LATE = (10 * 60.0, 45 * 60.0)  # read at once, answered much later
MAX_UNREAD = 500
INITIAL_AGE = (2 * 60.0, 3 * 3600.0)  # how long chats unread at start have waited already
INITIAL_UNANSWERED = (40 * 60.0, 2 * 3600.0)  # read chats waiting for an answer at start, since
ACK = 0.5  # share of answers the customer reads, which logs an ack event
ACK_AFTER = (20.0, 15 * 60.0)
DISCONNECT_EVERY = 3 * 3600.0  # a session drops and reconnects about this often


@dataclass(frozen=True)
class Profile:
    """How an account's customers write and its agents read."""

    rate: float  # customer messages per minute
    fast: float  # share of waits read within FAST
    slow: float  # share read within SLOW; the rest wait overnight
    max_overnight: int  # overnight waits at once, so that they stay a few
    late: float  # share of answers sent LATE rather than QUICK
    unanswered: int  # read chats waiting for an answer at start


PROFILES = {
    "demo-support": Profile(rate=0.8, fast=0.75, slow=0.25, max_overnight=0, late=0.15, unanswered=1),
    "demo-sales": Profile(rate=0.6, fast=0.55, slow=0.35, max_overnight=2, late=0.3, unanswered=2),
    "demo-community": Profile(rate=0.7, fast=0.3, slow=0.5, max_overnight=3, late=0.45, unanswered=2),
}


class OfficeHours:
    """Whether a schedule in the exporter's config shape is open at an instant."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._zone = ZoneInfo(spec["timezone"])
        hours = spec["hours"].items()
        self._ranges = {DAYS.index(day): [_minutes(r) for r in ranges] for day, ranges in hours}
        self._holidays = frozenset(spec.get("holidays", ()))

    def is_open(self, t: float) -> bool:
        local = datetime.fromtimestamp(t, self._zone)
        if local.date().isoformat() in self._holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._ranges.get(local.weekday(), ()))


def _minutes(hours_range: str) -> tuple[int, int]:
    start, end = (int(part[:2]) * 60 + int(part[3:]) for part in hours_range.split("-"))
    if not 0 <= start < end <= 24 * 60:
        raise ValueError(f"bad hours range {hours_range!r}")
    return start, end


class SupportLine:
    """One account's customers and agents, acting on its chats (raw API dicts) through its log."""

    def __init__(
        self,
        rng: random.Random,
        profile: Profile,
        hours: OfficeHours | None,
        start: float,
        log: AccountLog,
        answers: random.Random,
    ) -> None:
        self._rng = rng
        self._profile = profile
        self._hours = hours
        self._tick = math.floor(start / TICK)
        self._start = start
        self._log = log
        self._answers = answers  # the second stream: answers, acks, disconnects, group authors
        self._due: dict[str, float] = {}  # chat id -> when an agent reads it
        self._overnight: set[str] = set()
        self._replies: dict[str, float] = {}  # chat id -> when an agent answers it
        self._acks: list[tuple[float, str]] = []  # (when, message id) the customer reads our answer

    def begin(self, chats: list[dict[str, Any]]) -> None:
        """Dates the chats unread at start as recent waits, so the demo starts mid-day."""
        eligible = _eligible(chats)
        for chat in eligible:
            if chat["unreadCount"] > 0:
                chat["timestamp"] = int(self._start - self._rng.uniform(*INITIAL_AGE))
                self._due[chat["id"]] = self._read_time(chat["id"], self._start)
        idle = [c for c in eligible if c["unreadCount"] == 0]
        unanswered = self._answers.sample(idle, k=min(len(idle), self._profile.unanswered))
        for i, chat in enumerate(unanswered):
            chat["timestamp"] = int(self._start - self._answers.uniform(*INITIAL_UNANSWERED))
            if i:  # the first is never answered
                self._replies[chat["id"]] = self._start + self._answers.uniform(*LATE)
        prehistory(self._answers, chats, self._log, {c["id"] for c in unanswered})

    def advance(self, chats: list[dict[str, Any]], now: float) -> bool:
        """Plays the ticks up to ``now``; True if the chats may have changed."""
        tick = math.floor(now / TICK)
        if tick <= self._tick:
            return False
        eligible = _eligible(chats)
        by_id = {c["id"]: c for c in eligible}
        for chat_id in [c for c in self._due if c not in by_id or by_id[c]["unreadCount"] == 0]:
            del self._due[chat_id]  # read or removed by a test in the meantime
            self._overnight.discard(chat_id)
        for chat_id in [c for c in self._replies if c not in by_id]:
            del self._replies[chat_id]
        first = max(self._tick + 1, tick - MAX_CATCH_UP)
        for chat in eligible:  # chats made unread from outside (tests, control API) wait too
            if chat["unreadCount"] > 0 and chat["id"] not in self._due:
                self._due[chat["id"]] = self._read_time(chat["id"], first * TICK)
        for k in range(first, tick + 1):
            self._step(eligible, by_id, k * TICK)
        self._tick = tick
        return True

    def waiting(self) -> dict[str, float]:
        """Chat id -> due read time, for tests and curious users."""
        return dict(self._due)

    def answering(self) -> dict[str, float]:
        """Chat id -> due answer time (chats read and never to be answered are absent)."""
        return dict(self._replies)

    def _step(self, eligible: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], t: float) -> None:
        if eligible and self._rng.random() < self._profile.rate * TICK / 60:
            self._message(eligible, t)
        is_open = self._hours is None or self._hours.is_open(t)
        due = [(when, chat_id) for chat_id, when in self._due.items() if when <= t]
        if due and is_open:
            _, chat_id = min(due)
            self._forget(chat_id)
            self._log.read(by_id[chat_id])
            if self._rng.random() < REPLY:
                late = self._answers.random() < self._profile.late
                when = t + self._answers.uniform(*(LATE if late else QUICK))
                self._replies[chat_id] = min(when, self._replies.get(chat_id, when))
        for chat_id in [c for c, when in self._replies.items() if when <= t and is_open and c in by_id]:
            del self._replies[chat_id]
            self._forget(chat_id)  # answering reads what came meanwhile
            message = self._log.outgoing(by_id[chat_id], t)
            if self._answers.random() < ACK:
                self._acks.append((t + self._answers.uniform(*ACK_AFTER), message["id"]))
        for ack in [a for a in self._acks if a[0] <= t]:
            self._acks.remove(ack)
            with contextlib.suppress(KeyError):  # pushed out of the history by newer messages
                self._log.ack(ack[1], 3, t)
        if self._answers.random() < TICK / DISCONNECT_EVERY:
            self._log.event("disconnect", {"reason": "NAVIGATION"}, t)

    def _forget(self, chat_id: str) -> None:
        self._due.pop(chat_id, None)
        self._overnight.discard(chat_id)

    def _message(self, eligible: list[dict[str, Any]], t: float) -> None:
        waiting = [c for c in eligible if c["unreadCount"] > 0]
        idle = [c for c in eligible if c["unreadCount"] == 0]
        if waiting and (not idle or self._rng.random() < FOLLOW_UP):
            chat = self._rng.choice(waiting)
            count = min(max(0, MAX_UNREAD - chat["unreadCount"]), self._rng.randint(1, 3))
        else:
            chat = self._rng.choice(idle)
            count = self._rng.randint(1, 3)
            self._due[chat["id"]] = self._read_time(chat["id"], t)
        members = [p["id"] for p in chat.get("groupMetadata", {}).get("participants", []) if "id" in p]
        for _ in range(count):
            author = self._answers.choice(members) if members else None
            self._log.incoming(chat, t, author=author)

    def _read_time(self, chat_id: str, t: float) -> float:
        r = self._rng.random()
        if r < self._profile.fast:
            return t + self._rng.uniform(*FAST)
        if r < self._profile.fast + self._profile.slow or len(self._overnight) >= self._profile.max_overnight:
            return t + self._rng.uniform(*SLOW)
        self._overnight.add(chat_id)
        local = datetime.fromtimestamp(t + OVERNIGHT_AFTER, MORNING_ZONE)
        morning = local.replace(hour=8, minute=0, second=0, microsecond=0)
        if morning < local:
            morning += timedelta(days=1)
        return morning.timestamp() + self._rng.uniform(0, 2 * 3600)


def _eligible(chats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chats customers can write in: well-formed, and not read-only."""
    return [
        c
        for c in chats
        if type(c.get("unreadCount")) is int and isinstance(c.get("id"), str) and not c.get("isReadOnly")
    ]


def support_lines(
    logs: Mapping[str, AccountLog],
    seed: int | None,
    start: float,
    chats: Callable[[str], list[dict[str, Any]]],
) -> dict[str, SupportLine]:
    """A support line per demo account, each with its own two random streams derived from ``seed``."""
    lines = {}
    for wid, log in logs.items():
        rng = random.Random(f"{seed}:{wid}") if seed is not None else random.Random()
        answers = random.Random(f"{seed}:{wid}:answers") if seed is not None else random.Random()
        schedule = DEMO_ACCOUNT_SCHEDULES.get(wid)
        hours = OfficeHours(DEMO_SCHEDULES[schedule]) if schedule else None
        lines[wid] = SupportLine(rng, PROFILES[wid], hours, start, log, answers)
        lines[wid].begin(chats(wid))
    return lines
