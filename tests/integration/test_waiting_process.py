"""Waiting time end to end: the exporter as a process, a scripted fake WhatsGate, waits of known length.

The simulator runs in this process; the test sets each chat's ``unreadCount`` and
``timestamp`` itself, so every wait's start is exact (a wait starts at the chat's
``timestamp`` when it is first seen unread). Durations of current waits are checked
exactly against the poll's own time (``whatsgate_last_success_timestamp_seconds`` is the
``now`` the waits were computed at); a wait that ended by a read is bounded by when the
test made the read and when it saw the read polled, since the read poll's ``now`` lies
between them (the estimate's one-poll-interval tolerance, no more).
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import (
    Exporter,
    chat_obj,
    config_for,
    get,
    group_obj,
    simulating,
    start_exporter,
    stop,
    wait_until,
)

from exporter.simulator import SimAccount, Simulator

BUCKETS = "waiting:\n  buckets: [60s, 600s, 3600s]\n"
LES = ("60.0", "600.0", "3600.0", "+Inf")
LONGER = ("60", "600", "3600")

SINCE = "whatsgate_chat_waiting_since_timestamp_seconds"
SECONDS = "whatsgate_chat_waiting_seconds"
OLDEST_SINCE = "whatsgate_oldest_waiting_since_timestamp_seconds"
OLDEST = "whatsgate_oldest_waiting_seconds"
COUNT = "whatsgate_chats_waiting"
HIST = "whatsgate_wait_duration_seconds"
OPEN = "whatsgate_business_hours_open"

Metrics = dict[str, dict[frozenset, float]]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulating(
        [
            SimAccount(
                "wa-1",
                "one",
                chats=[
                    *(chat_obj(f"{i}@c.us", 0) for i in (1, 2, 3, 4, 7)),
                    chat_obj("5@c.us", 0, muted=True),
                    chat_obj("6@c.us", 0, ro=True),
                    group_obj("9@g.us", 0),
                ],
            ),
            SimAccount("wa-2", "two", chats=[chat_obj("21@c.us", 0)]),
        ]
    ) as simulator:
        yield simulator


def polled(m: Metrics, wid: str = "wa-1") -> float:
    value = get(m, "whatsgate_last_success_timestamp_seconds", whatsapp_id=wid)
    assert value is not None, f"{wid} has not been polled"
    return value


def poll_after(exporter: Exporter, t: float, *wids: str, timeout: float = 15) -> Metrics:
    """A scrape whose polls of ``wids`` (default wa-1) all requested get-chats after ``t``.

    ``now`` of a poll is taken when get-chats has answered, a few milliseconds after the
    request: half a second later is safely a poll that saw what the test set before ``t``.
    """
    found: dict[str, Metrics] = {}
    if (ahead := t + 0.5 - time.time()) > 0:
        time.sleep(ahead)  # no poll qualifies before then: scraping and parsing meanwhile only costs CPU

    def fresh() -> bool:
        m = exporter.scrape()
        found["m"] = m
        return all(
            (v := get(m, "whatsgate_last_success_timestamp_seconds", whatsapp_id=w)) is not None
            and v > t + 0.5
            for w in wids or ("wa-1",)
        )

    wait_until(fresh, timeout=max(timeout, t - time.time() + 15), what=f"a poll after {t}")
    return found["m"]


def waiting_chats(m: Metrics, wid: str = "wa-1") -> set[str]:
    return {dict(k)["chat_id"] for k in m.get(SINCE, {}) if dict(k)["whatsapp_id"] == wid}


def histogram(m: Metrics, chat_type: str, wid: str = "wa-1") -> tuple[list[float], float, float]:
    """(cumulative bucket counts in LES order, sum, count)."""
    buckets = [get(m, f"{HIST}_bucket", whatsapp_id=wid, chat_type=chat_type, le=le) for le in LES]
    total = get(m, f"{HIST}_sum", whatsapp_id=wid, chat_type=chat_type)
    count = get(m, f"{HIST}_count", whatsapp_id=wid, chat_type=chat_type)
    assert None not in buckets and total is not None and count is not None
    return [float(b) for b in buckets if b is not None], total, count


def longer_than(m: Metrics, chat_type: str, wid: str = "wa-1") -> list[float | None]:
    return [get(m, COUNT, whatsapp_id=wid, chat_type=chat_type, longer_than=b) for b in LONGER]


def check_wait(m: Metrics, chat_id: str, since: float, seconds: float, chat_type: str = "contact") -> None:
    labels = {"whatsapp_id": "wa-1", "chat_id": chat_id, "chat_type": chat_type}
    assert get(m, SINCE, **labels) == since, chat_id
    assert get(m, SECONDS, **labels) == pytest.approx(seconds, abs=1e-6), chat_id


# --- 1: no schedule ------------------------------------------------------------------------------


def test_waits_without_a_schedule(sim: Simulator, exporters: list[Exporter], tmp_path: Path):
    exporter = start_exporter(tmp_path, config_for(sim, BUCKETS))
    exporters.append(exporter)
    m = poll_after(exporter, time.time(), "wa-1", "wa-2")
    # Nothing unread: no waits, no oldest at all (no sample, not 0), zero counts and histograms.
    assert waiting_chats(m) == set() and OLDEST not in m and OLDEST_SINCE not in m
    for wid in ("wa-1", "wa-2"):
        for kind in ("contact", "group"):
            assert longer_than(m, kind, wid) == [0, 0, 0]
            assert histogram(m, kind, wid) == ([0, 0, 0, 0], 0, 0)
    assert OPEN not in m  # no schedule anywhere

    now = int(time.time())
    starts = {"1@c.us": now - 30, "2@c.us": now - 300, "3@c.us": now - 10000, "4@c.us": now - 100}
    starts |= {"7@c.us": now - 200, "9@g.us": now - 2000}
    for cid, ts in starts.items():
        sim.set_chat("wa-1", cid, unreadCount=2, timestamp=ts)
    sim.set_chat("wa-1", "5@c.us", unreadCount=3, timestamp=now - 9000)  # muted: not a customer
    sim.set_chat("wa-1", "6@c.us", unreadCount=3, timestamp=now - 9000)  # read-only: never counts
    m = poll_after(exporter, time.time())
    at = polled(m)
    assert waiting_chats(m) == set(starts)
    for cid, ts in starts.items():
        check_wait(m, cid, ts, at - ts, "group" if cid.endswith("@g.us") else "contact")
    labels = {"whatsapp_id": "wa-1", "account": "support"}
    assert get(m, OLDEST_SINCE, **labels, chat_type="contact") == now - 10000
    assert get(m, OLDEST, **labels, chat_type="contact") == pytest.approx(at - (now - 10000), abs=1e-6)
    assert get(m, OLDEST_SINCE, **labels, chat_type="group") == now - 2000
    assert get(m, OLDEST, **labels, chat_type="group") == pytest.approx(at - (now - 2000), abs=1e-6)
    # Contacts waited ~30, ~100, ~200, ~300, ~5000 s; the group ~2000 s.
    assert longer_than(m, "contact") == [4, 1, 1]
    assert longer_than(m, "group") == [1, 1, 0]
    assert longer_than(m, "contact", "wa-2") == [0, 0, 0]
    assert get(m, OLDEST, whatsapp_id="wa-2") is None

    # A follow-up message in a waiting chat: more unread, a newer timestamp, the same start.
    sim.set_chat("wa-1", "2@c.us", unreadCount=4, timestamp=now)
    # Reads: 1 (~30 s: le 60), 3 (~5000 s: only +Inf), the group (~2000 s: le 3600).
    t_read = time.time()
    for cid in ("1@c.us", "3@c.us", "9@g.us"):
        sim.set_chat("wa-1", cid, unreadCount=0)
    sim.remove_chat("wa-1", "4@c.us")  # disappears: its wait ends, nobody answered it
    sim.set_chat("wa-1", "7@c.us", isMuted=True)  # muted: stops counting, not answered either
    m = poll_after(exporter, time.time())
    # The last poll's time on the exporter's own clock: no read is observed later. Not the test's
    # clock after the scrape: that bound failed once in CI, by 0.6 s (a wall-clock step, likely).
    at = t_seen = polled(m)
    assert waiting_chats(m) == {"2@c.us"}
    check_wait(m, "2@c.us", now - 300, at - (now - 300))
    assert get(m, OLDEST_SINCE, whatsapp_id="wa-1", chat_type="contact") == now - 300
    assert get(m, OLDEST_SINCE, whatsapp_id="wa-1", chat_type="group") is None
    buckets, read_before, count = histogram(m, "contact")
    assert (buckets, count) == ([1, 1, 1, 2], 2), "only the two reads count, not 4 (gone) or 7 (muted)"
    low = 2 * t_read - (now - 30) - (now - 10000) - 1
    assert low <= read_before <= 2 * t_seen - (now - 30) - (now - 10000)
    buckets, total, count = histogram(m, "group")
    assert (buckets, count) == ([0, 0, 1, 1], 1)
    assert t_read - (now - 2000) - 1 <= total <= t_seen - (now - 2000)
    assert longer_than(m, "contact") == [1, 0, 0] and longer_than(m, "group") == [0, 0, 0]

    t_read = time.time()
    sim.set_chat("wa-1", "2@c.us", unreadCount=0)
    m = poll_after(exporter, time.time())
    t_seen = polled(m)
    assert waiting_chats(m) == set() and OLDEST not in m and OLDEST_SINCE not in m
    buckets, total, count = histogram(m, "contact")
    assert (buckets, count) == ([1, 2, 2, 3], 3)  # ~300 s: le 600
    # Read 2's own duration, what the sum grew by, bounded by the poll that saw it, as the two reads
    # before it were by theirs. A bound on all three from this poll's time alone was looser (a read 2
    # observed too long passed it) and still failed in CI, as if the wall clock had stepped back
    # between the polls (bench/RESULTS.md, fourteenth session).
    assert t_read - (now - 300) - 1 <= total - read_before <= t_seen - (now - 300)
    # Each read is observed once: later polls of the same (read) chats add nothing.
    later = poll_after(exporter, time.time() + 1)
    assert histogram(later, "contact") == histogram(m, "contact")
    assert histogram(later, "group")[2] == 1
    assert longer_than(later, "contact") == [0, 0, 0]


# --- 2: business hours ---------------------------------------------------------------------------


def pick_zone(now: float) -> ZoneInfo:
    """A zone where the next ~10 minutes and the last ~10 stay within one local day."""
    for name in ("UTC", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "Asia/Tokyo"):
        local = datetime.fromtimestamp(now, ZoneInfo(name))
        since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
        if timedelta(minutes=10) <= since_midnight <= timedelta(hours=23, minutes=45):
            return ZoneInfo(name)
    raise AssertionError("no zone far enough from midnight")  # impossible: the offsets differ by hours


def test_waits_count_open_hours_only(sim: Simulator, exporters: list[Exporter], tmp_path: Path):
    """Open from 5-6 minutes ago until the next minute boundary at least 12 s ahead, today only (a
    zone chosen so that this stays one local day); a wait that began an hour before opening has
    waited only since opening, and stops growing at closing."""
    now = time.time()
    zone = pick_zone(now)
    local = datetime.fromtimestamp(now, zone).replace(second=0, microsecond=0)
    opens = local - timedelta(minutes=5)
    closes = datetime.fromtimestamp(now + 12, zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    opens_at, closes_at = opens.timestamp(), closes.timestamp()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    schedule = (
        f"schedules:\n  office:\n    timezone: {zone.key}\n"
        f"    hours: {{{day}: ['{opens:%H:%M}-{closes:%H:%M}']}}\n"
    )
    config = config_for(sim, BUCKETS + schedule).replace(
        "name: support\n", "name: support\n    schedule: office\n"
    )
    exporter = start_exporter(tmp_path, config)
    exporters.append(exporter)

    early = int(opens_at) - 3600  # an hour before opening: only the open part counts
    recent = int(now) - 20
    sim.set_chat("wa-1", "1@c.us", unreadCount=1, timestamp=early)
    sim.set_chat("wa-1", "2@c.us", unreadCount=1, timestamp=recent)
    sim.set_chat("wa-2", "21@c.us", unreadCount=1, timestamp=early)  # wa-2 has no schedule: 24/7
    m = poll_after(exporter, time.time(), "wa-1", "wa-2")
    at = polled(m)
    assert at < closes_at - 1, "too slow to see the office open"
    assert get(m, OPEN, whatsapp_id="wa-1") == 1
    assert get(m, OPEN, whatsapp_id="wa-2") is None
    check_wait(m, "1@c.us", early, at - opens_at)  # since stays wall-clock; seconds are open time
    check_wait(m, "2@c.us", recent, at - recent)
    assert get(m, OLDEST_SINCE, whatsapp_id="wa-1") == early
    assert get(m, OLDEST, whatsapp_id="wa-1") == pytest.approx(at - opens_at, abs=1e-6)
    assert get(m, SECONDS, whatsapp_id="wa-2") == pytest.approx(polled(m, "wa-2") - early, abs=1e-6)
    assert longer_than(m, "contact") == [1, 0, 0]  # 300-360 s open, 20 s
    assert longer_than(m, "contact", "wa-2") == [1, 1, 1]  # 3900-3960 s

    t_read = time.time()  # read while open: ~20 s
    sim.set_chat("wa-1", "2@c.us", unreadCount=0)
    m = poll_after(exporter, time.time())
    t_seen = polled(m)
    buckets, first, count = histogram(m, "contact")
    assert (buckets, count) == ([1, 1, 1, 1], 1)
    assert t_read - recent - 1 <= first <= t_seen - recent

    # Closing time: the flag flips, the wait stops growing at exactly closes - opens.
    m = poll_after(exporter, closes_at)
    assert get(m, OPEN, whatsapp_id="wa-1") == 0
    closed_wait = closes_at - opens_at
    check_wait(m, "1@c.us", early, closed_wait)
    assert get(m, OLDEST, whatsapp_id="wa-1") == closed_wait
    later = poll_after(exporter, polled(m))
    assert polled(later) > polled(m)
    check_wait(later, "1@c.us", early, closed_wait)
    assert get(later, SECONDS, whatsapp_id="wa-2") == pytest.approx(polled(later, "wa-2") - early, abs=1e-6)

    # Read after closing: observed with its open-hours duration, exactly (312-432 s: le 600).
    sim.set_chat("wa-1", "1@c.us", unreadCount=0)
    m = poll_after(exporter, time.time())
    buckets, total, count = histogram(m, "contact")
    assert (buckets, count) == ([1, 2, 2, 2], 2)
    assert total == pytest.approx(first + closed_wait, abs=1e-6)
    assert get(m, OPEN, whatsapp_id="wa-1") == 0
    assert get(m, OLDEST, whatsapp_id="wa-1") is None


# --- 3: restarts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("with_state", [True, False], ids=["state_file", "no_state_file"])
def test_waits_across_a_restart(sim: Simulator, exporters: list[Exporter], tmp_path: Path, with_state: bool):
    state = tmp_path / "state" / "waits.json"
    state.parent.mkdir()
    config = config_for(sim, BUCKETS + (f"state_file: {state}\n" if with_state else ""))
    exporter = start_exporter(tmp_path, config)
    exporters.append(exporter)
    now = int(time.time())
    sim.set_chat("wa-1", "1@c.us", unreadCount=1, timestamp=now - 400)
    sim.set_chat("wa-1", "2@c.us", unreadCount=1, timestamp=now - 100)
    sim.set_chat("wa-1", "3@c.us", unreadCount=1, timestamp=now - 20)
    m = poll_after(exporter, time.time())
    assert waiting_chats(m) == {"1@c.us", "2@c.us", "3@c.us"}
    sim.set_chat("wa-1", "1@c.us", unreadCount=3, timestamp=now - 10)  # a follow-up: start unchanged
    sim.set_chat("wa-1", "3@c.us", unreadCount=0)  # read before the restart
    m = poll_after(exporter, time.time())
    assert get(m, SINCE, chat_id="1@c.us") == now - 400
    assert histogram(m, "contact")[2] == 1

    stop(exporter.proc)  # SIGTERM: a clean stop writes the state file one last time
    assert exporter.proc.returncode == 0, exporter.logs()
    if with_state:
        saved = json.loads(state.read_bytes())
        assert saved["accounts"]["wa-1"]["waits"]["since"] == {
            "1@c.us": ["contact", now - 400],
            "2@c.us": ["contact", now - 100],
        }
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o600  # chat ids are phone numbers
    else:
        assert not state.exists()
    sim.set_chat("wa-1", "2@c.us", unreadCount=0)  # read while the exporter was down

    t_start = time.time()
    exporter = start_exporter(tmp_path, config)
    exporters.append(exporter)
    m = poll_after(exporter, t_start)
    at = t_seen = polled(m)
    assert waiting_chats(m) == {"1@c.us"}
    buckets, total, count = histogram(m, "contact")
    if with_state:
        check_wait(m, "1@c.us", now - 400, at - (now - 400))  # continued from its original start
        # The read during the restart is observed once, at the first poll; the histogram itself
        # restarted at zero (chat 3's read before the restart is not in it).
        assert (buckets, count) == ([0, 1, 1, 1], 1)  # 100 s + the restart's few seconds: le 600
        assert t_start - (now - 100) - 1 <= total <= t_seen - (now - 100)
        assert get(m, OLDEST_SINCE, whatsapp_id="wa-1") == now - 400
    else:
        check_wait(m, "1@c.us", now - 10, at - (now - 10))  # starts again at the chat's timestamp
        assert (buckets, total, count) == ([0, 0, 0, 0], 0, 0)
        assert get(m, OLDEST_SINCE, whatsapp_id="wa-1") == now - 10
    later = poll_after(exporter, polled(m))
    assert histogram(later, "contact")[2] == count
    assert math.isclose(get(later, SINCE, chat_id="1@c.us") or 0, now - 400 if with_state else now - 10)
