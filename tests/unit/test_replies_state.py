"""The reply state machine (snapshot/replies.py), from its definition: who waits for an answer,
since when, and which answers were first or next responses."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.schedules import parse_schedules
from exporter.snapshot.replies import FIRST, NEXT, ChatTrack, Message, RepliesConfig, Tracker
from exporter.snapshot.waiting import Wait

BUCKETS = (60.0, 300.0, 3600.0)
CONFIG = RepliesConfig(conversation_gap=3600.0, buckets=BUCKETS)
A, B, G = "79990000001@c.us", "79990000002@c.us", "120363000000000001@g.us"
TYPES = {A: "contact", B: "contact", G: "group"}
T0 = 1_800_000_000.0

_ids = iter(range(1, 10**9))


def inc(chat: str, t: float, event_id: int | None = -1) -> Message:
    return Message(chat, False, t, next(_ids) if event_id == -1 else event_id)


def out(chat: str, t: float, event_id: int | None = -1) -> Message:
    return Message(chat, True, t, next(_ids) if event_id == -1 else event_id)


def run(*messages: Message, tracker: Tracker | None = None, schedule: object = None) -> Tracker:
    return (tracker or Tracker.empty(BUCKETS)).advance(list(messages), TYPES, CONFIG, schedule)  # type: ignore[arg-type]


def observed(
    tracker: Tracker, chat_type: str = "contact", response: str = FIRST
) -> tuple[int, float, tuple[int, ...]]:
    h = tracker.histograms[(chat_type, response)]
    return h.count, h.sum, h.counts


def test_an_incoming_message_opens_a_span_and_the_answer_closes_it_once() -> None:
    t = run(inc(A, T0), inc(A, T0 + 30), inc(A, T0 + 50))
    assert t.unanswered(T0 + 100, None) == [Wait(A, "contact", T0, 100.0)]  # from the FIRST message
    t = run(out(A, T0 + 120), out(A, T0 + 130), tracker=t)
    assert t.unanswered(T0 + 200, None) == []
    assert observed(t) == (1, 120.0, (0, 1, 1))  # one span, 120 s, le=60 no, le=300 yes
    assert observed(t, response=NEXT) == (0, 0.0, (0, 0, 0))
    assert t.received == {"contact": 3, "group": 0} and t.sent == {"contact": 2, "group": 0}


def test_an_answer_without_an_open_span_observes_nothing() -> None:
    t = run(out(A, T0), out(A, T0 + 10))
    assert all(h.count == 0 for h in t.histograms.values())
    assert t.sent["contact"] == 2 and t.knows(A)


@pytest.mark.parametrize(
    ("silence", "response"),
    [(3600.0, NEXT), (3600.5, FIRST), (10.0, NEXT)],  # a message exactly conversation_gap before: next
)
def test_first_or_next_by_the_conversation_gap(silence: float, response: str) -> None:
    t = run(inc(A, T0), out(A, T0 + 5))  # the conversation's first exchange
    t = run(inc(A, T0 + 5 + silence), out(A, T0 + 5 + silence + 30), tracker=t)
    other = NEXT if response == FIRST else FIRST
    assert observed(t, response=response)[0] == (2 if response == FIRST else 1)
    assert observed(t, response=other)[0] == (0 if response == FIRST else 1)


def test_the_gap_counts_from_our_last_message_too() -> None:
    t = run(inc(A, T0), out(A, T0 + 10), out(A, T0 + 7000))  # we wrote again much later
    t = run(inc(A, T0 + 7100), out(A, T0 + 7160), tracker=t)  # 100 s after our message: next
    assert observed(t, response=NEXT) == (1, 60.0, (1, 1, 1))


def test_chat_type_and_group_ids() -> None:
    t = run(inc(G, T0), out(G, T0 + 400), inc("new@g.us", T0), inc("770@c.us", T0 + 1))
    assert observed(t, "group") == (1, 400.0, (0, 0, 1))
    assert {w.chat_id: w.chat_type for w in t.unanswered(T0 + 10, None)} == {
        "new@g.us": "group",
        "770@c.us": "contact",
    }


def test_business_hours_count_open_time_only() -> None:
    office = parse_schedules(
        {
            "office": {
                "timezone": "UTC",
                "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            }
        }
    )["office"]
    evening = datetime(2027, 3, 1, 17, 55, tzinfo=timezone.utc).timestamp()  # a Monday
    morning = datetime(2027, 3, 2, 9, 10, tzinfo=timezone.utc).timestamp()
    t = run(inc(A, evening), schedule=office)
    assert t.unanswered(morning, office) == [Wait(A, "contact", evening, 900.0)]
    t = run(out(A, morning), tracker=t, schedule=office)
    assert observed(t) == (1, 900.0, (0, 0, 1))


def test_duplicate_event_id_in_one_call_changes_nothing() -> None:
    first = inc(A, T0, event_id=7)
    t = run(first, first, out(A, T0 + 60, event_id=8), out(A, T0 + 60, event_id=8))
    assert t.received["contact"] == 1 and t.sent["contact"] == 1
    assert observed(t)[0] == 1


def test_an_older_message_changes_nothing() -> None:
    t = run(inc(A, T0 + 100))
    t = run(out(A, T0 + 50), inc(A, T0 + 20), tracker=t)
    assert t.chats[A].newest == T0 + 100
    assert t.unanswered(T0 + 200, None) == [Wait(A, "contact", T0 + 100, 100.0)]
    assert t.received["contact"] == 1 and t.sent["contact"] == 0
    assert all(h.count == 0 for h in t.histograms.values())


def test_same_second_answer_and_new_message() -> None:
    t = run(inc(A, T0), out(A, T0 + 60), inc(A, T0 + 60))  # answered, and the customer wrote again
    assert t.unanswered(T0 + 90, None) == [Wait(A, "contact", T0 + 60, 30.0)]
    assert observed(t)[0] == 1


def test_ignored_chats_and_status_broadcast_change_nothing() -> None:
    t = Tracker.empty(BUCKETS).advance(
        [inc(B, T0), inc("status@broadcast", T0), out(B, T0 + 5)], TYPES, CONFIG, None, ignored={B}
    )
    assert t.chats == {} and t.received["contact"] == 0 and t.sent["contact"] == 0


def test_counted_type_wins_over_the_id() -> None:
    t = Tracker.empty(BUCKETS).advance([inc("odd-id", T0)], {"odd-id": "group"}, CONFIG, None)
    assert t.unanswered(T0, None)[0].chat_type == "group" and t.received["group"] == 1


def test_unanswered_longest_first_ties_by_start_then_id() -> None:
    t = run(inc(B, T0 + 10), inc(A, T0 + 10), inc(G, T0))
    assert [w.chat_id for w in t.unanswered(T0 + 100, None)] == [G, A, B]
    assert t.unanswered(T0 - 5, None)[0].seconds == 0.0  # never negative


def test_backfill_opens_at_the_first_customer_message_after_our_last() -> None:
    history = [inc(A, T0 + 300, None), out(A, T0 + 100, None), inc(A, T0, None), inc(A, T0 + 200, None)]
    t = Tracker.empty(BUCKETS).backfill(A, "contact", history, CONFIG)
    assert t.unanswered(T0 + 400, None) == [Wait(A, "contact", T0 + 200, 200.0)]
    assert t.chats[A] == ChatTrack("contact", T0 + 300, T0 + 300, T0 + 200, False)
    assert all(h.count == 0 for h in t.histograms.values()) and t.received["contact"] == 0
    # Answered: then the next message decides first/next against the gap.
    t = run(out(A, T0 + 500), tracker=t)
    assert observed(t, response=NEXT) == (1, 300.0, (0, 1, 1))


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], ChatTrack("contact", 0.0)),
        ([out(A, T0, None)], ChatTrack("contact", T0, T0)),
        ([inc(A, T0 + 9, None), inc(A, T0, None)], ChatTrack("contact", T0 + 9, T0 + 9, T0, True)),
        (
            [out(A, T0, None), inc(A, T0 + 3601, None)],
            ChatTrack("contact", T0 + 3601, T0 + 3601, T0 + 3601, True),
        ),
        (  # exactly conversation_gap after our answer: still the same conversation
            [out(A, T0, None), inc(A, T0 + 3600, None)],
            ChatTrack("contact", T0 + 3600, T0 + 3600, T0 + 3600, False),
        ),
        ([inc(A, T0, None), out(A, T0, None)], ChatTrack("contact", T0, T0)),  # same second: answered
    ],
)
def test_backfill_cases(history: list[Message], expected: ChatTrack) -> None:
    t = Tracker.empty(BUCKETS).backfill(A, "contact", history, CONFIG)
    assert t.chats[A] == expected


def test_backfill_leaves_a_known_chat_alone() -> None:
    t = run(inc(A, T0))
    assert t.backfill(A, "contact", [out(A, T0 + 5, None)], CONFIG) is t


def test_keep_only_forgets_unlisted_chats_older_than_the_poll() -> None:
    t = run(inc(A, T0), inc(B, T0 + 100), inc(G, T0))
    kept = t.keep_only({G: "contact"}, T0 + 50)  # A gone; B newer than the poll; G retyped
    assert set(kept.chats) == {B, G}
    assert kept.chats[G].chat_type == "contact"
    assert kept.histograms == t.histograms and kept.received == t.received


def test_json_round_trip() -> None:
    t = run(inc(A, T0), out(B, T0 + 3), inc(G, T0 + 4))
    again = Tracker.read_json(t.to_json(), BUCKETS, T0 + 10)[0]
    assert again.chats == t.chats
    assert all(h.count == 0 for h in again.histograms.values())


@pytest.mark.parametrize(
    "entry",
    [
        ["contact", T0 + 11, T0, None, False],  # newest message from the future
        ["contact", T0, T0, T0 + 11, True],  # a span from the future
        ["contact", T0, T0 + 11, None, False],
        ["robot", T0, T0, None, False],
        ["contact", "yesterday", None, None, False],
        ["contact", True, None, None, False],
        ["contact", float("nan"), None, None, False],
        ["contact", -1.0, None, None, False],
        ["contact", T0, None, None, "yes"],
        ["contact", T0, None, None],
        {"type": "contact"},
    ],
)
def test_bad_entries_are_skipped_one_by_one(entry: object) -> None:
    obj = {"chats": {A: ["contact", T0, T0, T0, True], B: entry}}
    tracker, skipped = Tracker.read_json(obj, BUCKETS, T0 + 10)
    assert set(tracker.chats) == {A} and skipped == 1


@pytest.mark.parametrize("obj", [None, [], {"chats": []}, {"chats": "x"}, "text"])
def test_unreadable_tracker_json_is_empty(obj: object) -> None:
    tracker, skipped = Tracker.read_json(obj, BUCKETS, T0)
    assert tracker.chats == {} and skipped == 0


messages = st.lists(
    st.builds(
        Message,
        st.sampled_from([A, B, G]),
        st.booleans(),
        st.integers(0, 20_000).map(lambda s: T0 + s),
        st.none(),
    ),
    max_size=40,
).map(lambda ms: sorted(ms, key=lambda m: m.timestamp))


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(0, 40))
def test_one_call_or_two_give_the_same_state(ms: list[Message], cut: int) -> None:
    whole = run(*ms)
    parts = run(*ms[cut:], tracker=run(*ms[:cut]))
    assert whole == parts
    # Every answered span is observed exactly once: spans opened = closed + still open.
    opened = closed = 0
    state: dict[str, bool] = {}
    for m in ms:
        if m.outgoing and state.get(m.chat_id):
            closed += 1
        elif not m.outgoing and not state.get(m.chat_id):
            opened += 1
        state[m.chat_id] = not m.outgoing
    assert sum(h.count for h in whole.histograms.values()) == closed
    assert len(whole.unanswered(T0 + 30_000, None)) == opened - closed


def test_without_guessing_a_customer_message_leaves_an_unknown_chat_unknown() -> None:
    known = run(out(B, T0))
    t = known.advance([inc(A, T0 + 10), inc(B, T0 + 20)], TYPES, CONFIG, None, guess=False)
    assert not t.knows(A) and t.unanswered(T0 + 30, None) == [Wait(B, "contact", T0 + 20, 10.0)]
    assert t.received == {"contact": 2, "group": 0}  # counted all the same
    t = t.advance([out(A, T0 + 40), inc(A, T0 + 50)], TYPES, CONFIG, None, guess=False)
    assert t.knows(A) and [w.since for w in t.unanswered(T0 + 60, None) if w.chat_id == A] == [T0 + 50]


@pytest.mark.parametrize("guess", [True, False])
def test_our_answer_processed_after_the_customers_next_message_answers_the_span(guess: bool) -> None:
    t = run(inc(A, T0), inc(A, T0 + 100))  # the second came after our answer at +60, logged late
    t = t.advance([out(A, T0 + 60)], TYPES, CONFIG, None, guess=guess)
    assert observed(t) == (1, 60.0, (1, 1, 1)) and t.sent["contact"] == 1
    assert t.unanswered(T0 + 200, None) == ([Wait(A, "contact", T0 + 100, 100.0)] if guess else [])
    assert t.knows(A) is guess  # without guessing, get-history tells since when
    before = run(inc(A, T0 + 100))
    assert before.advance([out(A, T0 + 60)], TYPES, CONFIG, None) == before  # before the span: nothing


def test_without_guessing_a_customer_message_of_an_unknown_chat_adds_to_received() -> None:
    t = run(inc(B, T0)).advance([inc(A, T0 + 10)], TYPES, CONFIG, None, guess=False)
    assert t.received == {"contact": 2, "group": 0} and not t.knows(A)


def test_a_message_older_than_the_chat_leaves_the_later_ones_of_the_call_processed() -> None:
    t = run(inc(A, T0 + 100))
    t = run(inc(A, T0 + 50), out(A, T0 + 200), tracker=t)
    assert observed(t)[:2] == (1, 100.0) and t.unanswered(T0 + 300, None) == []


def test_a_late_answer_in_the_second_its_span_opened_answers_it_and_adds_to_sent() -> None:
    t = run(out(B, T0 - 10), inc(A, T0), inc(A, T0 + 100))
    t = run(out(A, T0), tracker=t)
    assert observed(t)[:2] == (1, 0.0) and t.sent["contact"] == 2


def test_a_late_answer_to_a_next_span_is_observed_as_next() -> None:
    t = run(out(A, T0 - 100), inc(A, T0), inc(A, T0 + 100))  # within the gap of our message: next
    t = run(out(A, T0 + 60), tracker=t)
    assert observed(t, response=NEXT)[:2] == (1, 60.0) and observed(t)[0] == 0


def test_a_late_answer_counts_open_time_only() -> None:
    office = parse_schedules(
        {"office": {"timezone": "UTC", "hours": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}}}
    )["office"]
    evening = datetime(2027, 3, 1, 17, 55, tzinfo=timezone.utc).timestamp()  # a Monday
    morning = datetime(2027, 3, 2, 9, 10, tzinfo=timezone.utc).timestamp()
    t = run(inc(A, evening), inc(A, morning + 600), schedule=office)
    t = run(out(A, morning), tracker=t, schedule=office)  # logged after the customer's next message
    assert observed(t)[:2] == (1, 900.0)


@pytest.mark.parametrize(
    ("after", "response"),
    [(3601.0, FIRST), (3600.0, NEXT), (10.0, NEXT)],  # exactly the gap after our answer: next
)
def test_guessing_after_a_late_answer_the_customer_waits_from_their_newest_message(
    after: float, response: str
) -> None:
    answer = T0 + 60
    t = run(inc(A, T0), inc(A, answer + after))
    t = run(out(A, answer), tracker=t)
    newest = answer + after
    assert t.chats[A] == ChatTrack("contact", newest, newest, newest, response == FIRST)
    t = run(out(A, newest + 30), tracker=t)
    assert observed(t, response=response)[0] == (2 if response == FIRST else 1)
