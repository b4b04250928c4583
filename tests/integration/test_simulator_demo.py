"""The demo's support line, watched over HTTP the way the exporter watches it, on a fake clock.

Waits are measured here as the exporter estimates them (start: the chat's ``timestamp`` when
first seen unread; end: the poll that sees it read), so these tests check what a demo user
will see on the dashboard, not the simulator's internals.
"""

from __future__ import annotations

import json
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
                    f"{sim.url}/get-chats",
                    json={"WhatsappID": wid},
                    headers={"X-Api-Key": sim.api_key},
                    timeout=5,
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
                headers={"X-Api-Key": sim.api_key},
                timeout=5,
            )
            if i * step % compare_every == 0:  # its chats and its whole event log, ids included
                out.append(answer.content + json.dumps(sim.events("demo-sales")).encode())
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
                headers={"X-Api-Key": sim.api_key},
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


def post(sim: Simulator, command: str, body: dict) -> dict:
    answer = requests.post(f"{sim.url}/{command}", json=body, headers={"X-Api-Key": sim.api_key}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def last_exchange(messages: list[dict]) -> tuple[float | None, bool]:
    """(start of the unanswered span, whether our message is the last) from one chat's messages."""
    ordered = sorted(messages, key=lambda m: m["timestamp"])
    since = None
    for message in ordered:
        if message["id"].startswith("true_"):
            since = None
        elif since is None:
            since = message["timestamp"]
    return since, bool(ordered) and ordered[-1]["id"].startswith("true_")


def test_demo_starts_with_customers_waiting_for_an_answer() -> None:
    """What the exporter's backfill (get-history) finds at start: an alert has something to fire on."""
    start = at(2026, 3, 2, 15, 0)
    sim = Simulator.demo(seed=5, clock=Clock(start))
    sim.start()
    try:
        read_unanswered, spans = [], []
        for wid in IDS:
            for chat in post(sim, "get-chats", {"WhatsappID": wid})["data"]:
                messages = post(sim, "get-history", {"WhatsappID": wid, "recipient": {"id": chat["id"]}})[
                    "data"
                ]
                assert messages, chat["id"]  # every chat has a past
                assert max(m["timestamp"] for m in messages) == chat["timestamp"]
                since, ours_last = last_exchange(messages)
                if ours_last:
                    assert chat["unreadCount"] == 0
                if chat["isReadOnly"]:
                    continue
                trailing = sum(1 for m in messages if since is not None and m["timestamp"] >= since)
                assert chat["unreadCount"] <= trailing or trailing == len(messages) == 100  # history's cap
                if since is not None:
                    spans.append(start - since)
                    if chat["unreadCount"] == 0:
                        read_unanswered.append(start - since)
    finally:
        sim.stop()
    assert len(read_unanswered) >= 3  # read, and still waiting for an answer
    assert all(40 * 60 <= s <= 2 * 3600 for s in read_unanswered)
    assert max(spans) >= 40 * 60  # a reply alert (e.g. above 30m) fires at the first poll
    assert all(s <= 3 * 3600 + 600 for s in spans)  # recent: the demo starts mid-day


@dataclass
class Replies:
    """What an exporter reading the event log and get-chats of the demo would record."""

    read_at: dict[tuple[str, str], float] = field(default_factory=dict)  # unread seen gone
    gaps: list[tuple[str, float]] = field(default_factory=list)  # (account, answer time - read time)
    answered: int = 0
    unanswered_after_read: dict[tuple[str, str], float] = field(default_factory=dict)
    mismatches: int = 0
    actions: set[str] = field(default_factory=set)


def watch_replies(sim: Simulator, clock: Clock, step: float, polls: int) -> Replies:
    seen = Replies()
    cursors: dict[str, tuple[str | None, set[int]]] = {wid: (None, set()) for wid in IDS}
    newest: dict[tuple[str, str], int] = {}
    ours: dict[tuple[str, str], bool] = {}
    unread: dict[tuple[str, str], int] = {}
    for _ in range(polls):
        clock.now += step
        for wid in IDS:
            date, ids = cursors[wid]
            body = {"WhatsappID": wid, "page_cnt": 100} | ({"date": date} if date else {})
            first = post(sim, "events-get", body)
            data = first["data"] + [
                e
                for page in range(2, first["pages"] + 1)
                for e in post(sim, "events-get", body | {"page": page})["data"]
            ]
            fresh = sorted((e for e in data if e["id"] not in ids), key=lambda e: (e["event_date"], e["id"]))
            for event in fresh:
                seen.actions.add(event["event_action"])
                if event["event_action"] not in ("message", "create"):
                    continue
                message = event["event_data"]["message"]
                key = (wid, message["id"].split("_")[1])
                newest[key] = max(newest.get(key, 0), message["timestamp"])
                out = event["event_action"] == "create"
                assert message["id"].startswith("true_" if out else "false_")
                ours[key] = out
                if out and date is not None:
                    seen.answered += 1
                    if key in seen.read_at:
                        seen.gaps.append((wid, message["timestamp"] - seen.read_at.pop(key)))
            if fresh:
                top = max(e["event_date"] for e in fresh)
                keep = ids if top == date else set()
                cursors[wid] = (top, keep | {e["id"] for e in fresh if e["event_date"] == top})
            for chat in post(sim, "get-chats", {"WhatsappID": wid})["data"]:
                key = (wid, chat["id"])
                seen.mismatches += key in newest and newest[key] != chat["timestamp"]
                if unread.get(key, 0) > 0 and chat["unreadCount"] == 0 and not ours.get(key):
                    seen.read_at[key] = clock.now  # read, not (yet) answered
                unread[key] = chat["unreadCount"]
        for key, when in seen.read_at.items():
            seen.unanswered_after_read[key] = max(seen.unanswered_after_read.get(key, 0), clock.now - when)
    return seen


def test_read_and_answered_diverge_within_minutes() -> None:
    clock = Clock(at(2026, 3, 4, 11, 0))
    sim = Simulator.demo(seed=7, clock=clock)
    sim.start()
    try:
        first = watch_replies(sim, clock, step=15, polls=40)  # the first ten minutes
        assert any(gap >= 5 * 60 for gap in first.unanswered_after_read.values())
        later = watch_replies(sim, clock, step=30, polls=160)  # the next 80 minutes
    finally:
        sim.stop()
    assert later.mismatches == first.mismatches == 0  # get-chats' last activity is the log's newest
    assert later.answered >= 20
    assert sum(gap <= 4 * 60 for _, gap in later.gaps) >= 10  # most answers follow the read at once
    always_open = [gap for wid, gap in later.gaps if wid not in DEMO_ACCOUNT_SCHEDULES]
    assert any(gap >= 10 * 60 for gap in always_open)  # read fast, answered much later
    never = [
        k for k, waited in later.unanswered_after_read.items() if waited >= 45 * 60 and k in later.read_at
    ]
    assert never  # read, and not answered for the rest of the run
    assert {"message", "create", "ack"} <= first.actions | later.actions
