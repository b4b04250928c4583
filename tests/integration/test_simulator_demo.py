"""The demo's support line, watched over HTTP the way the exporter watches it, on a fake clock.

Waits are measured here as the exporter estimates them (start: the chat's ``timestamp`` when
first seen unread; end: the poll that sees it read), so these tests check what a demo user
will see on the dashboard, not the simulator's internals.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from exporter.simulator import DEMO_ACCOUNT_SCHEDULES, DEMO_ACCOUNTS, DEMO_SCHEDULES, Simulator

MOSCOW = ZoneInfo("Europe/Moscow")
IDS = [wid for wid, _ in DEMO_ACCOUNTS]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=MOSCOW).timestamp()


def office_open(t: float) -> bool:
    """The office schedule evaluated independently of the simulator's own code."""
    spec = DEMO_SCHEDULES["office"]
    local = datetime.fromtimestamp(t, ZoneInfo(spec["timezone"]))
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    now = f"{local:%H:%M}"
    return local.date().isoformat() not in spec["holidays"] and any(
        r[:5] <= now < r[6:] for r in spec["hours"].get(day, [])
    )


@dataclass
class Watch:
    """What an exporter polling the demo would record."""

    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reads: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    waiting_per_poll: list[int] = field(default_factory=list)
    max_unread: int = 0
    arrivals_while_closed: int = 0
    bad_timestamps: int = 0


def watch(sim: Simulator, clock: Clock, step: float, polls: int) -> Watch:
    seen = Watch()
    started: dict[tuple[str, str], int] = {}
    last: dict[tuple[str, str], int] = {}
    with requests.Session() as session:
        for _ in range(polls):
            before = clock.now
            clock.now += step
            waiting = 0
            for wid in IDS:
                chats = session.post(
                    f"{sim.url}/get-chats", json={"WhatsappID": wid}, headers={"X-Api-Key": "demo"}, timeout=5
                ).json()["data"]
                for chat in chats:
                    key, unread = (wid, chat["id"]), chat["unreadCount"]
                    seen.max_unread = max(seen.max_unread, unread)
                    if unread > last.get(key, unread):  # a customer wrote since the last poll
                        seen.bad_timestamps += not before < chat["timestamp"] <= clock.now
                        if wid == "demo-support" and not office_open(clock.now):
                            seen.arrivals_while_closed += 1
                    last[key] = unread
                    if unread and not chat["isReadOnly"]:
                        waiting += 1
                        started.setdefault(key, chat["timestamp"])
                    elif key in started:
                        seen.waits[wid].append(clock.now - started.pop(key))
                        seen.reads[wid].append((before, clock.now))
            seen.waiting_per_poll.append(waiting)
    return seen


@pytest.fixture
def night() -> Iterator[tuple[Simulator, Clock]]:
    clock = Clock(at(2026, 3, 2, 0, 5))  # a Monday, just after midnight in Moscow
    sim = Simulator.demo(seed=11, clock=clock)
    sim.start()
    yield sim, clock
    sim.stop()


def test_a_night_and_a_morning_of_support(night: tuple[Simulator, Clock]) -> None:
    sim, clock = night
    seen = watch(sim, clock, step=60, polls=9 * 60)
    every = [w for wid in IDS for w in seen.waits[wid]]
    assert all(seen.waits[wid] for wid in IDS)  # every account reads
    assert sum(w <= 180 for w in every) >= 50  # fast: answered within about two minutes
    assert sum(600 <= w <= 3600 for w in every) >= 20  # slow: tens of minutes
    overnight = [w for wid in ("demo-sales", "demo-community") for w in seen.waits[wid] if w > 4 * 3600]
    assert overnight  # written in the night, read in the morning
    assert min(seen.waiting_per_poll) >= 1  # at any time someone is waiting
    assert seen.max_unread <= 500
    assert seen.bad_timestamps == 0  # a new message dates its chat between the polls around it


def test_office_account_reads_only_while_open(night: tuple[Simulator, Clock]) -> None:
    sim, clock = night
    seen = watch(sim, clock, step=60, polls=4 * 60)
    assert DEMO_ACCOUNT_SCHEDULES == {"demo-support": "office"}
    reads = seen.reads["demo-support"]
    assert reads
    for before, after in reads:  # the read happened in (before, after]: some of it open
        assert any(office_open(t) for t in range(int(before) + 5, int(after) + 1, 5)), (before, after)
    assert seen.arrivals_while_closed > 10  # customers still write: the backlog builds up
    # an open account reads in those hours too, so the closed ones are not simply quiet
    closed_reads = [r for r in seen.reads["demo-sales"] if not office_open(r[1]) and not office_open(r[0])]
    assert closed_reads


def test_demo_starts_with_customers_already_waiting() -> None:
    start = at(2026, 3, 2, 15, 0)
    sim = Simulator.demo(seed=5, clock=Clock(start))
    waits = [
        start - c["timestamp"]
        for wid in IDS
        for c in sim.chats(wid)
        if c["unreadCount"] and not c["isReadOnly"]
    ]
    assert len(waits) >= 3
    assert all(60 <= w <= 3 * 3600 for w in waits)  # recent: a demo starts mid-day, not a month late
    assert any(w >= 30 * 60 for w in waits)  # a waiting alert has something to fire on at once


def bodies(seed: int, step: int, polls: int, compare_every: int) -> list[bytes]:
    clock = Clock(at(2026, 3, 4, 9, 0))
    sim = Simulator.demo(seed=seed, clock=clock)
    sim.start()
    out = []
    try:
        for i in range(1, polls + 1):
            clock.now += step
            answer = requests.post(
                f"{sim.url}/get-chats",
                json={"WhatsappID": "demo-sales"},
                headers={"X-Api-Key": "demo"},
                timeout=5,
            )
            if i * step % compare_every == 0:
                out.append(answer.content)
    finally:
        sim.stop()
    return out


def test_same_seed_same_traffic_however_often_polled() -> None:
    often = bodies(seed=3, step=5, polls=360, compare_every=65)
    rarely = bodies(seed=3, step=65, polls=27, compare_every=65)
    assert len(often) == len(rarely) == 27
    assert often == rarely
    assert len(set(often)) > 10  # and it does move
    assert bodies(seed=4, step=65, polls=27, compare_every=65) != rarely


def test_chats_made_unread_from_outside_are_read_too() -> None:
    clock = Clock(at(2026, 3, 2, 12, 0))
    sim = Simulator.demo(seed=1, clock=clock)
    chat = next(c for c in sim.chats("demo-sales") if not c["unreadCount"] and not c["isReadOnly"])
    sim.set_chat("demo-sales", chat["id"], unreadCount=3, timestamp=int(clock.now))
    sim.start()
    try:
        for _ in range(24 * 60):  # a day, a minute at a time; overnight reads come by then
            clock.now += 60
            data = requests.post(
                f"{sim.url}/get-chats",
                json={"WhatsappID": "demo-sales"},
                headers={"X-Api-Key": "demo"},
                timeout=5,
            ).json()["data"]
            if next(c for c in data if c["id"] == chat["id"])["unreadCount"] == 0:
                break
        else:
            pytest.fail("the chat was never read")
    finally:
        sim.stop()


def test_demo_schedule_is_plain_config_data() -> None:
    assert set(DEMO_ACCOUNT_SCHEDULES) <= set(IDS)
    assert set(DEMO_ACCOUNT_SCHEDULES.values()) <= set(DEMO_SCHEDULES)
    office = DEMO_SCHEDULES["office"]
    assert set(office) == {"timezone", "hours", "holidays"}
    ZoneInfo(office["timezone"])
    assert set(office["hours"]) <= {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    for ranges in office["hours"].values():
        assert all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", r) for r in ranges)
    # whenever the demo starts, within an hour the office is seen both open and closed
    for hour in range(24 * 7):
        start = at(2026, 3, 2, 0, 0) + hour * 3600 + 17 * 60
        states = {office_open(start + minute * 60) for minute in range(60)}
        assert states == {True, False}
