"""Unit tests for exporter.snapshot.waiting: the wait rules, driven through scripted polls."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.schedules import parse_schedules
from exporter.config.schema import ConfigError
from exporter.config.waiting import parse_waiting
from exporter.metrics.collectors import AggregateCollector
from exporter.metrics.render import render_plain
from exporter.model import CONTACT, GROUP, Account, Chat, ChatsConfig
from exporter.snapshot.schedule import Schedule
from exporter.snapshot.state import ChatData
from exporter.snapshot.waiting import (
    DEFAULT_BUCKETS,
    Histogram,
    Wait,
    WaitingConfig,
    WaitList,
    Waits,
    longer_than_counts,
    oldest_by_type,
)

T = 1_780_000_000.0  # a Unix time; polls below are T + offsets
ALL = WaitingConfig()
OFFICE = {
    "office": {
        "timezone": "Europe/Moscow",
        "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    }
}


def chat(
    cid: str,
    unread: int = 0,
    ts: float = T,
    *,
    name: str = "",
    group: bool = False,
    muted: bool = False,
    read_only: bool = False,
) -> Chat:
    return Chat(
        id=cid,
        name=name or f"name of {cid}",
        is_group=group,
        read_only=read_only,
        unread=unread,
        last_activity=int(ts),
        pinned=False,
        muted=muted,
    )


def polls(
    *rounds: tuple[float, list[Chat]], config: WaitingConfig = ALL, schedule: Schedule | None = None
) -> Waits:
    waits = Waits.empty(config.buckets)
    for now, chats in rounds:
        waits = waits.advance(chats, now, config, schedule)
    return waits


def restored(**starts: float) -> Waits:
    """Open waits as the state file restores them: no histogram counts."""
    return Waits({cid: (CONTACT, start) for cid, start in starts.items()}, Waits.empty().histograms)


def observed(waits: Waits, chat_type: str = CONTACT) -> tuple[int, float, tuple[int, ...]]:
    h = waits.histograms[chat_type]
    return h.count, h.sum, h.counts


NONE_OBSERVED = (0, 0.0, (0,) * len(DEFAULT_BUCKETS))


# --- the rules ----------------------------------------------------------------------


def test_a_wait_starts_at_the_timestamp_and_does_not_move_while_unread() -> None:
    waits = polls(
        (T + 60, [chat("a", 1, ts=T)]),  # unread at the first poll: starts at its timestamp
        (T + 120, [chat("a", 3, ts=T + 100)]),  # more messages: the start stays
    )
    assert dict(waits.since) == {"a": (CONTACT, T)}
    assert waits.waiting(T + 120, None) == [Wait("a", CONTACT, T, 120.0)]
    assert observed(waits) == NONE_OBSERVED


def test_a_read_is_observed_once_with_its_duration() -> None:
    waits = polls(
        (T + 10, [chat("a", 0, ts=T - 500)]),
        (T + 70, [chat("a", 2, ts=T + 40)]),  # seen with 0, then unread: starts at the timestamp then
        (T + 130, [chat("a", 2, ts=T + 100)]),
        (T + 940, [chat("a", 0, ts=T + 900)]),  # read: waited 940 - 40 = 900 s
        (T + 1000, [chat("a", 0, ts=T + 900)]),  # still read: no second observation
    )
    assert dict(waits.since) == {}
    # Cumulative counts: 900 s is in le=900 and every bucket above it, not in le=300.
    assert observed(waits) == (1, 900.0, (0, 1, 1, 1, 1, 1, 1, 1))
    assert observed(waits, GROUP) == NONE_OBSERVED


def test_a_second_episode_starts_at_its_own_timestamp_and_adds_a_second_observation() -> None:
    waits = polls(
        (T, [chat("a", 1, ts=T)]),
        (T + 100, [chat("a", 0, ts=T)]),  # 100 s
        (T + 200, [chat("a", 1, ts=T + 150)]),
        (T + 100_000, [chat("a", 0, ts=T + 150)]),  # 99,850 s: above every bucket, only in +Inf
    )
    assert observed(waits) == (2, 100.0 + 99_850.0, (1, 1, 1, 1, 1, 1, 1, 1))


def test_a_timestamp_in_the_future_is_clamped_to_now() -> None:
    waits = polls((T, [chat("a", 1, ts=T + 3600)]))
    assert dict(waits.since) == {"a": (CONTACT, T)}
    assert waits.waiting(T, None) == [Wait("a", CONTACT, T, 0.0)]


def test_a_restored_wait_keeps_its_start_and_ends_with_an_observation() -> None:
    waits = restored(a=T - 7200, b=T - 60).advance(
        [chat("a", 5, ts=T), chat("b", 0, ts=T - 60)], T + 30, ALL, None
    )
    assert dict(waits.since) == {"a": (CONTACT, T - 7200)}  # not its newer timestamp
    assert observed(waits) == (1, 90.0, (1, 1, 1, 1, 1, 1, 1, 1))  # b was read: 60 + 30 s


def test_a_chat_that_disappears_ends_without_an_observation_and_restarts_when_back() -> None:
    waits = polls(
        (T, [chat("a", 1, ts=T - 50), chat("b", 1, ts=T - 10)]),
        (T + 60, [chat("b", 1, ts=T - 10)]),  # a vanished
        (T + 120, [chat("a", 0), chat("b", 1, ts=T - 10)]),  # a is back, read: nothing to observe
        (T + 180, [chat("a", 1, ts=T + 170), chat("b", 1, ts=T - 10)]),
    )
    assert dict(waits.since) == {"a": (CONTACT, T + 170), "b": (CONTACT, T - 10)}
    assert observed(waits) == NONE_OBSERVED


@pytest.mark.parametrize(
    "change",
    [
        {"muted": True},
        {"read_only": True},
        {"name": "spam bot"},  # now matches waiting.exclude
    ],
)
def test_a_chat_that_stops_counting_ends_without_an_observation(change: dict[str, Any]) -> None:
    config = WaitingConfig(exclude=(re.compile("bot"),))
    waits = polls(
        (T, [chat("a", 1, ts=T, name="Alice")]),
        (T + 60, [chat("a", 1, ts=T, **{"name": "Alice", **change})]),
        (T + 120, [chat("a", 0, ts=T, **{"name": "Alice", **change})]),
        config=config,
    )
    assert dict(waits.since) == {}
    assert observed(waits) == NONE_OBSERVED


def test_which_chats_count() -> None:
    chats = [
        chat("c1", 1),
        chat("c2", 1, muted=True),
        chat("c3", 1, read_only=True),
        chat("g1", 1, group=True),
        chat("g2", 1, group=True, muted=True, name="VIP customers"),
        chat("c4", 1, name="Shop bot"),
    ]
    assert set(polls((T, chats)).since) == {"c1", "g1", "c4"}
    muted_too = WaitingConfig(count_muted=True)
    assert set(polls((T, chats), config=muted_too).since) == {"c1", "c2", "g1", "g2", "c4"}
    contacts = WaitingConfig(chat_types=(CONTACT,), exclude=(re.compile("bot$"),))
    assert set(polls((T, chats), config=contacts).since) == {"c1"}
    included = WaitingConfig(include=(re.compile("VIP"), re.compile("^c1$")), count_muted=True)
    assert set(polls((T, chats), config=included).since) == {"c1", "g2"}


def test_group_waits_go_to_the_group_histogram() -> None:
    waits = polls((T, [chat("g", 1, group=True)]), (T + 4000, [chat("g", 0, group=True)]))
    assert observed(waits, GROUP) == (1, 4000.0, (0, 0, 0, 0, 1, 1, 1, 1))
    assert observed(waits, CONTACT) == NONE_OBSERVED


def test_a_chat_listed_twice_is_observed_once() -> None:
    waits = polls((T, [chat("a", 1)]), (T + 60, [chat("a", 0), chat("a", 0)]))
    assert observed(waits)[0] == 1


# --- business hours -------------------------------------------------------------------


def moscow(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()


def test_durations_count_open_hours_only() -> None:
    office = parse_schedules(OFFICE)["office"]
    monday_1755, tuesday_0905, tuesday_0910 = (
        moscow(2026, 3, 2, 17, 55),
        moscow(2026, 3, 3, 9, 5),
        moscow(2026, 3, 3, 9, 10),
    )
    night = moscow(2026, 3, 2, 23)
    waits = polls(
        (monday_1755 + 30, [chat("a", 1, ts=monday_1755)]),
        (night, [chat("a", 1, ts=monday_1755), chat("b", 1, ts=night - 60)]),
        schedule=office,
    )
    # At 09:05 a has waited 5 + 5 minutes of office time, b (written at night) 5 minutes.
    assert waits.waiting(tuesday_0905, office) == [
        Wait("a", CONTACT, monday_1755, 600.0),
        Wait("b", CONTACT, night - 60, 300.0),
    ]
    # Without the schedule the same waits are wall-clock.
    assert [w.seconds for w in waits.waiting(tuesday_0905, None)] == [
        tuesday_0905 - monday_1755,
        tuesday_0905 - night + 60,
    ]
    read = waits.advance(
        [chat("a", 0, ts=monday_1755), chat("b", 1, ts=night - 60)], tuesday_0910, ALL, office
    )
    assert observed(read) == (1, 900.0, (0, 1, 1, 1, 1, 1, 1, 1))  # the 15 minutes


def test_waits_that_started_while_closed_tie_and_are_ordered_by_start() -> None:
    office = parse_schedules(OFFICE)["office"]
    sat, sun = moscow(2026, 3, 7, 12), moscow(2026, 3, 8, 12)
    waits = polls((sun + 60, [chat("late", 1, ts=sun), chat("early", 1, ts=sat)]), schedule=office)
    monday_0930 = moscow(2026, 3, 9, 9, 30)
    assert [(w.chat_id, w.seconds) for w in waits.waiting(monday_0930, office)] == [
        ("early", 1800.0),
        ("late", 1800.0),
    ]


def test_seconds_are_never_negative() -> None:
    ahead = restored(a=T + 500)  # e.g. the clock went back (the state file refuses such a start)
    assert ahead.waiting(T, None) == [Wait("a", CONTACT, T + 500, 0.0)]
    waits = ahead.advance([chat("a", 0)], T, ALL, None)
    assert observed(waits) == (1, 0.0, (1, 1, 1, 1, 1, 1, 1, 1))


# --- what the collectors read ------------------------------------------------------------


def test_oldest_per_type_and_counts_longer_than_each_bucket() -> None:
    waits = polls(
        (
            T,
            [
                chat("c300", 1, ts=T - 300),  # exactly 300 s: not *longer* than 300
                chat("c301", 1, ts=T - 301),
                chat("c2h", 1, ts=T - 7200.0),
                chat("g1", 1, ts=T - 1000, group=True),
                chat("read", 0, ts=T - 9999),
            ],
        )
    )
    current = waits.waiting(T, None)
    assert [w.chat_id for w in current] == ["c2h", "g1", "c301", "c300"]
    assert oldest_by_type(current) == {
        CONTACT: Wait("c2h", CONTACT, T - 7200, 7200.0),
        GROUP: Wait("g1", GROUP, T - 1000, 1000.0),
    }
    assert longer_than_counts(current, DEFAULT_BUCKETS) == {
        CONTACT: (2, 1, 1, 1, 0, 0, 0, 0),
        GROUP: (1, 1, 0, 0, 0, 0, 0, 0),
    }
    assert oldest_by_type([]) == {}
    assert longer_than_counts([], (60.0,)) == {CONTACT: (0,), GROUP: (0,)}


WAITS = st.dictionaries(
    st.sampled_from([f"{n}@c.us" for n in range(12)]),
    # Few distinct starts, some in closed hours: ties in start and in seconds both occur.
    st.tuples(st.sampled_from([CONTACT, GROUP]), st.sampled_from([-7200.0, -3600.0, -300.0, 0.0, 60.0])),
)
MONDAY_10 = moscow(2026, 3, 2, 10)  # the office opened at 9: a start at 8 or 9 has waited 3600 s


@settings(max_examples=200, deadline=None)
@given(WAITS, st.booleans(), st.lists(st.sampled_from([0.0, 300.0, 3599.0, 3600.0, 7200.0]), max_size=3))
def test_a_wait_lists_oldest_and_counts_are_those_of_its_waits_one_by_one(
    since: dict[str, tuple[str, float]], office: bool, buckets: list[float]
) -> None:
    """The aggregates read a WaitList by its columns (no Wait per wait): equal to reading its waits."""
    schedule = parse_schedules(OFFICE)["office"] if office else None
    starts = {chat_id: (kind, MONDAY_10 + offset) for chat_id, (kind, offset) in since.items()}
    current = Waits(starts, Waits.empty().histograms).waiting(MONDAY_10, schedule)
    one_by_one = list(current)
    assert oldest_by_type(current) == oldest_by_type(one_by_one)
    buckets.sort()
    assert longer_than_counts(current, buckets) == longer_than_counts(one_by_one, buckets)


def test_the_aggregates_read_the_waits_without_a_wait_object_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A render reads thousands of waits per account: the oldest and the counts longer than each
    bucket come from the list's columns, not from a Wait made per wait and dropped."""
    chats = [chat(f"c{i}", 1, ts=T - 60 * i, group=i % 3 == 0) for i in range(30)]
    data = ChatData.build(chats, ChatsConfig(), polled_at=T, waiting=ALL)
    expected = list(render_plain(AggregateCollector(Account("7999", "support"), data)))

    def one_by_one(self: WaitList) -> None:
        raise AssertionError("a Wait made per wait")

    monkeypatch.setattr(WaitList, "__iter__", one_by_one)
    assert list(render_plain(AggregateCollector(Account("7999", "support"), data))) == expected


def test_histogram_counts_are_cumulative_with_inf_as_count() -> None:
    h = Histogram.empty((1.0, 2.0)).observe(0.5).observe(1.0).observe(1.5).observe(3.0)
    assert (h.counts, h.count, h.sum) == ((2, 3), 4, 6.0)


def test_an_empty_tracker_has_both_histograms() -> None:
    waits = Waits.empty((60.0, 120.0))
    assert set(waits.histograms) == {CONTACT, GROUP}
    assert waits.histograms[GROUP] == Histogram((60.0, 120.0), (0, 0), 0.0, 0)


# --- a model of the rules, for random poll sequences -------------------------------------------------

POLL = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 2), st.booleans(), st.integers(-30, 30)),
    max_size=3,
    unique_by=lambda x: x[0],
)


@settings(max_examples=100, deadline=None)
@given(st.lists(POLL, min_size=1, max_size=8))
def test_random_polls_follow_the_rules(rounds: list[list[tuple[str, int, bool, int]]]) -> None:
    """Per chat, walk its own history: episodes of consecutive polls where it is present, counted, unread."""
    config = WaitingConfig()
    waits = Waits.empty()
    history: dict[str, list[tuple[float, Chat | None]]] = {cid: [] for cid in "abc"}
    for i, poll in enumerate(rounds):
        now = T + 60 * i
        chats = [chat(cid, unread, ts=now + skew, muted=muted) for cid, unread, muted, skew in poll]
        waits = waits.advance(chats, now, config, None)
        seen = {c.id: c for c in chats}
        for cid in history:
            history[cid].append((now, seen.get(cid)))
    expected_since, durations = {}, []
    for cid, steps in history.items():
        start = None
        for now, c in steps:
            waiting = c is not None and not c.muted and c.unread > 0
            if waiting and start is None:
                start = min(float(c.last_activity), now)  # type: ignore[union-attr]
            elif not waiting and start is not None:
                if c is not None and not c.muted:  # read, not vanished or muted
                    durations.append(now - start)
                start = None
        if start is not None:
            expected_since[cid] = (CONTACT, start)
    assert dict(waits.since) == expected_since
    h = waits.histograms[CONTACT]
    assert (h.count, h.sum) == (len(durations), pytest.approx(sum(durations)))


# --- the waiting: section -------------------------------------------------------------------


def test_parse_waiting_defaults_and_a_full_section() -> None:
    schedules = parse_schedules(OFFICE)
    assert parse_waiting(None, schedules) == WaitingConfig()
    assert parse_waiting({}, schedules) == WaitingConfig()
    config = parse_waiting(
        {
            "include": ["^7999"],
            "exclude": ["bot"],
            "chat_types": ["contact"],
            "count_muted": True,
            "buckets": ["1m", "1h30m", "1d"],
            "schedule": "office",
        },
        schedules,
    )
    assert [p.pattern for p in config.include] == ["^7999"] and [p.pattern for p in config.exclude] == ["bot"]
    assert (config.chat_types, config.count_muted, config.buckets, config.schedule) == (
        (CONTACT,),
        True,
        (60.0, 5400.0, 86400.0),
        "office",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "waiting: expected a mapping, got a list"),
        ({"schedule": "ofice"}, "waiting.schedule: unknown schedule 'ofice' (defined: office)"),
        ({"buckets": ["5m", "5m"]}, "waiting.buckets[1]: '5m' is not longer than '5m'"),
        ({"buckets": ["1h", "30m"]}, "waiting.buckets[1]: '30m' is not longer than '1h'"),
        ({"buckets": []}, "waiting.buckets: must list at least one duration"),
        ({"buckets": [300]}, "waiting.buckets[0]: expected a duration"),
        ({"buckets": "5m"}, "waiting.buckets: expected a list"),
        (
            {"chat_types": ["contacts"]},
            "waiting.chat_types[0]: expected one of contact, group, got 'contacts'",
        ),
        ({"chat_types": ["group", "group"]}, "waiting.chat_types[1]: 'group' is listed twice"),
        ({"chat_types": []}, "waiting.chat_types: must list at least one of contact, group"),
        ({"count_muted": "yes"}, "waiting.count_muted: expected true or false"),
        ({"include": ["("]}, "waiting.include[0]: invalid regular expression"),
        ({"treshold": 1}, "waiting.treshold: unknown key"),
    ],
)
def test_bad_waiting_sections_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_waiting(raw, parse_schedules(OFFICE))
    assert str(err.value).startswith(message), str(err.value)


def test_an_unknown_schedule_without_any_defined_says_so() -> None:
    with pytest.raises(
        ConfigError, match=r"^waiting.schedule: unknown schedule 'office' \(no schedules are defined\)"
    ):
        parse_waiting({"schedule": "office"}, {})
