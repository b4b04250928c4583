"""Every threshold kind's Python side, pinned from its definition (README, config.example.yaml,
the kind's docstring and its PromQL), not from its code.

Each kind's ``measure`` is what the agent compares with the limit; its PromQL says what it must
be: ``sum without (chat_type)`` is a sum over the kept chat types, ``max without (chat_type)`` a
maximum, a per-chat series exists only while the exporter exports it (not after ``stale_after``),
a series Prometheus has no sample for is no instance at all (not a 0). The cases are built so
that the obvious wrong readings (``>=`` for ``>``, ``min`` for ``max``, the first wait for the
longest, a skipped staleness check, an ignored chat type) give another answer.
"""

from __future__ import annotations

import dataclasses

import pytest
from helpers import chat_obj, chats_of, group_obj

from exporter.alerting.evaluator import Evaluator
from exporter.alerting.kinds import KINDS
from exporter.alerting.kinds.base import Kind
from exporter.alerting.kinds.history import History, increase
from exporter.alerting.thresholds import Threshold, breached
from exporter.config.settings import parse_config
from exporter.model import Account, Session
from exporter.snapshot.privacy import Privacy
from exporter.snapshot.replies import ReplyData, Tracker
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState
from exporter.snapshot.waiting import Wait

NOW = 1_000_000.0
STALE_AFTER = 300.0
BASE = {
    "whatsgate": {"api_key": "k"},
    "accounts": [{"whatsapp_id": "W1", "name": "support"}, {"whatsapp_id": "W2", "name": "sales"}],
}
# Every aggregate differs from every other on these chats, and per chat type: a kind summing the
# wrong field or the wrong chat types gives another number.
CHATS = [
    chat_obj("1@c.us", 4, ts=1, name="VIP Anna", pinned=True),
    chat_obj("2@c.us", 0, ts=1, name="Boris", muted=True),
    chat_obj("4@c.us", 2, ts=1, name="", ro=True, muted=True),
    group_obj("3@g.us", 7, name="Team", members=5, admins=2, size=5),
    group_obj("5@g.us", 0, name="Big", size=9, listed=False),
]
ACCOUNT = {"whatsapp_id": "W1", "account": "support"}


def threshold(**fields) -> Threshold:
    t = {"name": "T", **{k: v for k, v in fields.items() if v is not None}}
    if "above" not in fields and "below" not in fields:
        t["above"] = "1m" if KINDS[fields["metric"]].value == "duration" else 1
    cfg = parse_config({**BASE, "thresholds": [t]})
    (out,) = cfg.thresholds
    return out


def snapshot(
    chats: list[dict] | None = None,
    polled_at: float = NOW,
    waiting: tuple[Wait, ...] = (),
    unanswered: tuple[Wait, ...] | None = None,
    replies_at: float | None = NOW,
    privacy: Privacy | None = None,
) -> AccountState:
    """Account "support" polled at ``polled_at``; its events poll last succeeded at ``replies_at``."""
    parsed = chats_of(CHATS if chats is None else chats)
    cfg = parse_config(BASE)
    extra = {"privacy": privacy} if privacy is not None else {}
    data = ChatData.build(parsed, cfg.chats, polled_at, **extra)
    data = dataclasses.replace(data, waiting=waiting)
    state = AccountState(cfg.accounts[0]).succeeded(data, 0.1)
    if unanswered is not None:
        replies = ReplyData(
            Tracker.empty(cfg.replies.buckets),
            up=replies_at is not None,
            last_success=replies_at,
            unanswered=unanswered,
        )
        state = dataclasses.replace(state, replies=replies)
    return state


def measure(t: Threshold, state: AccountState, now: float = NOW) -> list[tuple[dict, float, dict]]:
    return [
        (dict(labels), value, dict(extra))
        for labels, value, extra in t.spec.measure(t, state, now, STALE_AFTER)
    ]


def values(t: Threshold, state: AccountState, now: float = NOW) -> dict[str, float]:
    """Per-chat kinds: value by chat id."""
    return {labels["chat_id"]: value for labels, value, _ in measure(t, state, now)}


def wait(chat_id: str, seconds: float, chat_type: str = "contact") -> Wait:
    return Wait(chat_id, chat_type, NOW - seconds, seconds)


# --- the comparison: strictly above, strictly below ------------------------------------------------


def test_above_and_below_are_strict():
    above = threshold(metric="chats", above=3).limit
    assert (breached(above, 3), breached(above, 3.5), breached(above, 2)) == (False, True, False)
    below = threshold(metric="responses_within", below=0.5, target="1m", window="1h").limit
    assert (breached(below, 0.5), breached(below, 0.49), breached(below, 0.9)) == (False, True, False)


def test_condition_kinds_fire_whenever_they_measure_something():
    assert breached(threshold(metric="account_down", above=None).limit, 0.0)


@pytest.mark.parametrize("value, fires", [(3, False), (4, True)])
def test_the_agent_fires_above_not_at_the_limit(value: int, fires: bool):
    cfg = parse_config({**BASE, "thresholds": [{"name": "T", "metric": "chats_pinned", "above": 3}]})
    pinned = [chat_obj(f"{i}@c.us", 0, ts=1, pinned=True) for i in range(value)]
    ev = Evaluator(cfg, clock=lambda: NOW)
    ev.evaluate_account(
        AccountState(cfg.accounts[0]).succeeded(ChatData.build(chats_of(pinned), cfg.chats, NOW), 0.1)
    )
    assert [a.label("alertname") for a in ev.alerts() if a.firing] == (["T"] if fires else [])


# --- the per-account aggregates: sum without (chat_type) --------------------------------------------


@pytest.mark.parametrize(
    "kind, both, contacts, groups",
    [
        ("unread_messages", 13, 6, 7),
        ("chats", 5, 3, 2),
        ("chats_unread", 3, 2, 1),
        ("chats_read_only", 1, 1, 0),
        ("chats_muted", 2, 2, 0),
        ("chats_pinned", 1, 1, 0),
    ],
)
def test_aggregates_sum_over_the_kept_chat_types(kind: str, both: int, contacts: int, groups: int):
    state = snapshot()
    assert measure(threshold(metric=kind), state) == [(ACCOUNT, both, {})]
    assert measure(threshold(metric=kind, chat_types=["contact"]), state)[0][1] == contacts
    assert measure(threshold(metric=kind, chat_types=["group"]), state)[0][1] == groups


def test_aggregates_are_kept_while_stale_and_absent_before_the_first_poll():
    """The account's counts are exported as of the last good poll, however old (stale only
    drops per-chat series); an account never polled has no such series."""
    t = threshold(metric="unread_messages")
    assert measure(t, snapshot(polled_at=NOW - 10 * STALE_AFTER)) == [(ACCOUNT, 13, {})]
    assert measure(t, AccountState(Account("W1", "support"))) == []


def test_aggregates_of_an_empty_account_are_zero_not_absent():
    assert measure(threshold(metric="chats"), snapshot(chats=[])) == [(ACCOUNT, 0, {})]


# --- per-chat kinds: one instance per exported chat, none while stale -------------------------------


def test_chat_unread_messages_gives_each_chat_its_count_with_its_labels():
    found = measure(threshold(metric="chat_unread_messages"), snapshot())
    assert {labels["chat_id"]: value for labels, value, _ in found} == {
        "1@c.us": 4,
        "2@c.us": 0,
        "4@c.us": 2,
        "3@g.us": 7,
        "5@g.us": 0,
    }
    by_id = {labels["chat_id"]: (labels, extra) for labels, _, extra in found}
    assert by_id["1@c.us"] == (
        {**ACCOUNT, "chat_id": "1@c.us", "chat_type": "contact", "name": "VIP Anna"},
        {"chat_name": "VIP Anna", "chat": '"VIP Anna"', "chat_with_id": '"VIP Anna" (1@c.us)'},
    )
    # An empty name is no label, as in Prometheus; the template field stays (empty), and the
    # fields that name the chat name it by its id.
    assert by_id["4@c.us"] == (
        {**ACCOUNT, "chat_id": "4@c.us", "chat_type": "contact"},
        {"chat_name": "", "chat": "4@c.us", "chat_with_id": "4@c.us"},
    )
    assert by_id["3@g.us"][0]["chat_type"] == "group"


@pytest.mark.parametrize(
    "polled_at, exported", [(NOW - STALE_AFTER, True), (NOW - STALE_AFTER - 1, False), (NOW, True)]
)
@pytest.mark.parametrize(
    "kind", ["chat_unread_messages", "group_participants", "group_admins", "chat_waiting"]
)
def test_per_chat_kinds_measure_nothing_once_stale(kind: str, polled_at: float, exported: bool):
    """Per-chat series are dropped when the data is older than stale_after (exactly stale_after:
    still exported)."""
    state = snapshot(polled_at=polled_at, waiting=(wait("1@c.us", 99), wait("3@g.us", 99, "group")))
    assert bool(measure(threshold(metric=kind), state)) is exported


def test_per_chat_kinds_measure_nothing_before_the_first_poll():
    for kind in ("chat_unread_messages", "group_participants", "chat_waiting", "chat_unanswered"):
        assert measure(threshold(metric=kind), AccountState(Account("W1", "support"))) == [], kind


def test_chat_regexes_search_the_id_or_the_name_unanchored():
    t = threshold(metric="chat_unread_messages", chats=["IP A", "^4@"])
    assert set(values(t, snapshot())) == {"1@c.us", "4@c.us"}  # a name match; an id match
    assert set(values(threshold(metric="chat_unread_messages", chats=["Team$"]), snapshot())) == {"3@g.us"}
    assert values(threshold(metric="chat_unread_messages", chats=["nobody"]), snapshot()) == {}


def test_chat_types_narrow_per_chat_kinds():
    assert set(values(threshold(metric="chat_unread_messages", chat_types=["group"]), snapshot())) == {
        "3@g.us",
        "5@g.us",
    }
    assert set(values(threshold(metric="chat_unread_messages", chat_types=["contact"]), snapshot())) == {
        "1@c.us",
        "2@c.us",
        "4@c.us",
    }


def test_group_participants_and_admins_are_of_groups_only_without_a_chat_type_label():
    members = measure(threshold(metric="group_participants"), snapshot())
    # An unlisted group counts its documented size instead.
    assert {labels["chat_id"]: value for labels, value, _ in members} == {"3@g.us": 5, "5@g.us": 9}
    assert all("chat_type" not in labels for labels, _, _ in members)
    # An unlisted group has no admins series (its participants are unknown), not a 0.
    assert values(threshold(metric="group_admins"), snapshot()) == {"3@g.us": 2}


def test_privacy_names_drop_leaves_no_name_label_and_the_regex_only_the_id():
    state = snapshot(privacy=Privacy(names="drop"))
    found = measure(threshold(metric="chat_unread_messages"), state)
    assert found and all("name" not in labels and extra["chat_name"] == "" for labels, _, extra in found)
    assert all(extra["chat"] == extra["chat_with_id"] == labels["chat_id"] for labels, _, extra in found)
    assert values(threshold(metric="chat_unread_messages", chats=["VIP"]), state) == {}


def test_chat_waiting_is_the_wait_of_each_waiting_chat_only():
    state = snapshot(waiting=(wait("1@c.us", 120), wait("3@g.us", 30, "group")))
    assert values(threshold(metric="chat_waiting", above="1m"), state) == {"1@c.us": 120, "3@g.us": 30}


# --- oldest_waiting / oldest_unanswered: max without (chat_type) ------------------------------------


@pytest.mark.parametrize("kind, field", [("oldest_waiting", "waiting"), ("oldest_unanswered", "unanswered")])
def test_oldest_is_the_longest_wait_over_the_kept_chat_types(kind: str, field: str):
    # The longest is neither first nor last, and a group waits longer still.
    waits = (wait("2@c.us", 50), wait("1@c.us", 200), wait("4@c.us", 10), wait("3@g.us", 500, "group"))
    state = snapshot(**{field: waits})
    assert measure(threshold(metric=kind, above="1m"), state) == [(ACCOUNT, 500, {})]
    assert measure(threshold(metric=kind, above="1m", chat_types=["contact"]), state) == [(ACCOUNT, 200, {})]
    assert measure(threshold(metric=kind, above="1m", chat_types=["group"]), state) == [(ACCOUNT, 500, {})]


@pytest.mark.parametrize("kind, field", [("oldest_waiting", "waiting"), ("oldest_unanswered", "unanswered")])
def test_oldest_is_absent_when_nothing_waits(kind: str, field: str):
    """No sample when nothing waits (README): no instance, not a 0."""
    t = threshold(metric=kind, above="1m", chat_types=["group"])
    assert measure(t, snapshot(**{field: ()})) == []
    assert measure(t, snapshot(**{field: (wait("1@c.us", 999),)})) == []


def test_oldest_waiting_straddling_the_limit_fires():
    """Two waits of one account on either side of the limit: the longer one decides."""
    cfg = parse_config({**BASE, "thresholds": [{"name": "O", "metric": "oldest_waiting", "above": "2m"}]})
    ev = Evaluator(cfg, clock=lambda: NOW)
    ev.evaluate_account(snapshot(waiting=(wait("1@c.us", 60), wait("2@c.us", 180))))
    assert [a.label("alertname") for a in ev.alerts() if a.firing] == ["O"]


def test_read_waits_are_measured_while_stale_but_not_before_the_first_poll():
    """Read-waits (get-chats) are exported as of the last good poll, stale or not."""
    old = snapshot(polled_at=NOW - 10 * STALE_AFTER, waiting=(wait("1@c.us", 400),))
    assert measure(threshold(metric="oldest_waiting", above="1m"), old) == [(ACCOUNT, 400, {})]
    t = threshold(metric="chats_waiting", longer_than="5m", above=0)
    assert measure(t, old) == [(ACCOUNT, 1, {})]
    never = AccountState(Account("W1", "support"))
    assert measure(threshold(metric="oldest_waiting", above="1m"), never) == []
    assert measure(t, never) == []


@pytest.mark.parametrize(
    "replies_at, measured", [(NOW - STALE_AFTER, True), (NOW - STALE_AFTER - 1, False), (None, False)]
)
@pytest.mark.parametrize("kind", ["oldest_unanswered", "chats_unanswered", "chat_unanswered"])
def test_unanswered_kinds_measure_nothing_while_the_event_log_is_stale(kind, replies_at, measured):
    """Exactly stale_after after the last good events poll: still measured; later, or never
    polled, nothing (a reply we cannot see must not page anyone)."""
    extra = {"longer_than": "1m", "above": 0} if kind == "chats_unanswered" else {"above": "1m"}
    state = snapshot(unanswered=(wait("1@c.us", 999),), replies_at=replies_at)
    assert bool(measure(threshold(metric=kind, **extra), state)) is measured


@pytest.mark.parametrize("kind", ["oldest_unanswered", "chats_unanswered", "chat_unanswered"])
def test_unanswered_kinds_measure_nothing_without_an_event_log(kind: str):
    extra = {"longer_than": "1m", "above": 0} if kind == "chats_unanswered" else {"above": "1m"}
    assert measure(threshold(metric=kind, **extra), snapshot()) == []


# --- chats_waiting / chats_unanswered: strictly longer than the bucket ------------------------------


@pytest.mark.parametrize("kind, field", [("chats_waiting", "waiting"), ("chats_unanswered", "unanswered")])
def test_chats_waiting_counts_waits_strictly_longer_than_the_bucket(kind: str, field: str):
    waits = (
        wait("1@c.us", 900),  # exactly longer_than: not longer
        wait("2@c.us", 901),
        wait("4@c.us", 5000),
        wait("3@g.us", 3000, "group"),
        wait("5@g.us", 10, "group"),
    )
    state = snapshot(**{field: waits})
    t = threshold(metric=kind, longer_than="15m", above=0)
    assert measure(t, state) == [(ACCOUNT, 3, {})]
    assert measure(threshold(metric=kind, longer_than="15m", above=0, chat_types=["contact"]), state) == [
        (ACCOUNT, 2, {})
    ]
    assert measure(threshold(metric=kind, longer_than="15m", above=0, chat_types=["group"]), state) == [
        (ACCOUNT, 1, {})
    ]


@pytest.mark.parametrize("kind, field", [("chats_waiting", "waiting"), ("chats_unanswered", "unanswered")])
def test_chats_waiting_is_zero_not_absent_when_nobody_waits(kind: str, field: str):
    """The bucket series is exported at 0 (so `below`-style readings and for: reset work)."""
    assert measure(threshold(metric=kind, longer_than="5m", above=0), snapshot(**{field: ()})) == [
        (ACCOUNT, 0, {})
    ]


def test_chats_waiting_promql_sums_one_bucket_and_drops_its_label():
    t = threshold(
        metric="chats_waiting", longer_than="15m", above=3, accounts=["support"], chat_types=["contact"]
    )
    assert t.promql(t.limit) == (
        "sum without (chat_type, longer_than) (whatsgate_chats_waiting"
        '{account=~"support", chat_type=~"contact", longer_than="900"}) > 3'
    )
    u = threshold(metric="chats_unanswered", longer_than="30m", above=0)
    assert u.promql(u.limit, exclude_accounts=("sales",)) == (
        "sum without (chat_type, longer_than) (whatsgate_chats_unanswered"
        '{account!~"sales", longer_than="1800"}) > 0'
    )


def test_oldest_promql_is_a_max_over_chat_types():
    t = threshold(metric="oldest_waiting", above="2h", chat_types=["group"])
    assert (
        t.promql(t.limit)
        == 'max without (chat_type) (whatsgate_oldest_waiting_seconds{chat_type=~"group"}) > 7200'
    )
    u = threshold(metric="oldest_unanswered", above="1h")
    assert u.promql(u.limit) == "max without (chat_type) (whatsgate_oldest_unanswered_seconds) > 3600"


# --- chat_unanswered: a selected chat's open span ----------------------------------------------------


def test_chat_unanswered_is_each_selected_chats_span():
    waits = (wait("1@c.us", 100), wait("3@g.us", 50, "group"), wait("9@c.us", 900))
    state = snapshot(unanswered=waits)
    t = threshold(metric="chat_unanswered", above="1m")
    # 9@c.us is not in get-chats' answer: no chat series, nothing to alert on.
    assert values(t, state) == {"1@c.us": 100, "3@g.us": 50}
    assert values(threshold(metric="chat_unanswered", above="1m", chats=["^Te"]), state) == {"3@g.us": 50}
    assert values(threshold(metric="chat_unanswered", above="1m", chat_types=["contact"]), state) == {
        "1@c.us": 100
    }
    # The get-chats data going stale drops the chat series the rule joins with.
    stale = snapshot(unanswered=waits, polled_at=NOW - STALE_AFTER - 1)
    assert values(t, stale) == {}


# --- account kinds --------------------------------------------------------------------------------------


def test_account_down_is_an_account_whose_last_poll_failed():
    t = threshold(metric="account_down", above=None)
    up = snapshot()
    assert measure(t, up) == []
    down = up.failed("timeout", "x", 0.1)
    assert measure(t, down) == [(ACCOUNT, 0, {})]
    assert measure(t, AccountState(Account("W1", "support"))) == [(ACCOUNT, 0, {})]


def test_stale_is_the_age_of_the_last_success_and_absent_before_one():
    t = threshold(metric="stale", above="15m")
    state = dataclasses.replace(snapshot(), last_success=NOW - 1000)
    assert measure(t, state) == [(ACCOUNT, 1000, {})]
    assert measure(t, AccountState(Account("W1", "support"))) == []
    assert t.promql(t.limit) == "time() - whatsgate_last_success_timestamp_seconds > 900"


def test_session_not_ready_is_every_session_whose_status_is_not_ready():
    kind: Kind = KINDS["session_not_ready"]
    sessions = (
        (Account("W1", "support"), Session("W1", "support", "READY")),
        (Account("W2", "sales"), Session("W2", "sales", "AUTH")),
        (Account("W3", "vip"), Session("W3", "vip", "STARTING")),
    )
    found = list(kind.measure_sessions(DiscoveryState(up=True, sessions=sessions)))
    assert found == [
        ({"whatsapp_id": "W2", "account": "sales", "status": "AUTH"}, 1.0, {}),
        ({"whatsapp_id": "W3", "account": "vip", "status": "STARTING"}, 1.0, {}),
    ]


# --- every kind's PromQL keeps the accounts an override took out ----------------------------------


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if k != "responses_within"))
def test_every_rule_leaves_out_the_accounts_of_its_overrides(kind: str):
    """The default rule of a threshold with an override for "sales" must not also cover sales
    (two alerts, or the default's limit applied to it)."""
    extra = {"longer_than": "5m"} if kind in ("chats_waiting", "chats_unanswered") else {}
    if KINDS[kind].value == "none":
        extra["above"] = None
    t = threshold(metric=kind, **extra)
    assert 'account!~"sales"' in t.promql(t.limit, exclude_accounts=("sales",))


def test_both_chat_types_are_an_alternation():
    t = threshold(metric="unread_messages", chat_types=["contact", "group"])
    assert 'chat_type=~"contact|group"' in t.promql(t.limit)


# --- kinds measured elsewhere find nothing on one snapshot ---------------------------------------


def test_sessions_and_windowed_kinds_measure_nothing_on_a_snapshot():
    """session_not_ready reads sessions-get, responses_within a window of past snapshots; a
    snapshot's measure finds nothing, and the account kinds find no session instances."""
    sessions = DiscoveryState(up=True, sessions=((Account("W1", "s"), Session("W1", "s", "AUTH")),))
    assert measure(threshold(metric="session_not_ready", above=None), snapshot()) == []
    window = threshold(metric="responses_within", below=0.5, target="1m", window="1h")
    assert measure(window, snapshot(unanswered=())) == []
    assert list(KINDS["chats"].measure_sessions(sessions)) == []
    assert list(KINDS["chats"].measure_over(window, snapshot(), NOW, None)) == []


# --- responses_within: Prometheus's increase() and the kept history --------------------------------


def _line(first: float, step: float, values: list[float]) -> list[tuple[float, float]]:
    return [(first + i * step, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "points, start, end, expected",
    [
        # Samples 10 s apart, 10 s in from both ends (under 1.1 intervals): extrapolated to both.
        (_line(1010, 10, [100, 110, 120, 130, 140]), 1000, 1060, 60.0),
        # ...but no further back than where the counter was 0 (5 s before its first sample).
        (_line(1010, 10, [5, 15, 25, 35, 45]), 1000, 1060, 55.0),
        # Exactly 1.1 intervals to the start or the end: too far, half an interval instead.
        (_line(1011, 10, [100, 110, 120, 130, 140]), 1000, 1051, 45.0),
        (_line(1000, 10, [100, 110, 120, 130, 140]), 1000, 1051, 45.0),
        # 1.5 intervals: half an interval.
        (_line(1015, 10, [100, 110, 120, 130, 140]), 1000, 1055, 45.0),
        # An increase of 1 from 0: not extrapolated before the 0.
        (_line(10, 10, [0, 1]), 0, 30, 2.0),
        # A reset right after the first sample: both sides counted (5 before, 6 after).
        (_line(0, 10, [5, 1, 6]), 0, 20, 6.0),
    ],
)
def test_increase_extrapolates_as_prometheus(points, start, end, expected):
    assert increase(points, start, end) == pytest.approx(expected, abs=1e-9)


def test_history_drops_old_samples_thins_close_ones_and_replaces_one_at_the_same_time():
    w = 1000.0  # window / MAX_SAMPLES = 1 s
    h = History().add(0, (1,), w).add(0.5, (2,), w).add(2, (3,), w)
    assert h.samples == ((0, (1,)), (2, (3,)))  # 0.5 was closer than 1 s to 0: replaced
    h = History().add(0, (1,), w).add(1, (2,), w).add(2, (3,), w)
    assert h.samples == ((0, (1,)), (1, (2,)), (2, (3,)))  # exactly 1 s apart: kept
    assert History().add(5, (1,), w).add(5, (2,), w).samples == ((5, (2,)),)
    assert History().add(0, (1,), w).add(1000, (2,), w).add(1001, (3,), w).samples == (
        (1000, (2,)),
        (1001, (3,)),
    )


def _replies_state(tracker: Tracker | None) -> AccountState:
    state = snapshot(unanswered=())
    return state if tracker is not None else dataclasses.replace(state, replies=None)


def test_responses_within_keeps_the_window_through_a_failed_events_poll():
    """No event log (no series exported): no new sample, the samples still in the window kept,
    those older dropped (the window's start included), as a failed scrape."""
    t = threshold(metric="responses_within", below=0.5, target="1m", window="1h")
    past = History(((NOW - 3601, (0, 0)), (NOW - 3600, (0, 1)), (NOW - 60, (1, 2))))
    kept = t.spec.record(t, _replies_state(None), NOW, past)
    assert kept == History(((NOW - 3600, (0, 1)), (NOW - 60, (1, 2))))
    assert t.spec.record(t, _replies_state(None), NOW, None) is None


def test_responses_within_with_exactly_one_response_in_the_window():
    """One response, not within the target, over exactly the window: 0 of 1, not 0/0."""
    t = threshold(
        metric="responses_within",
        below=0.5,
        target="1m",
        window="1h",
        response="first",
        chat_types=["contact"],
    )
    history = History(((NOW - 3600, (0, 0)), (NOW, (0, 1))))
    assert list(t.spec.measure_over(t, snapshot(), NOW, history)) == [(ACCOUNT, 0.0, {})]


def test_responses_within_adds_every_series_each_with_its_own_counts():
    """Without a response type or chat type: four series, (bucket, count) each, summed apart."""
    t = threshold(metric="responses_within", below=0.5, target="1m", window="1h")
    # contact/first 1 of 1, contact/next 0 of 3, group/first 0 of 0, group/next 2 of 4.
    before = (0, 0) * 4
    after = (1, 1, 0, 3, 0, 0, 2, 4)
    history = History(((NOW - 3600, before), (NOW, after)))
    assert list(t.spec.measure_over(t, snapshot(), NOW, history)) == [(ACCOUNT, 3 / 8, {})]
