"""The waiting and reply state machines, pinned where a mutation run found them loose: what a
chat's type becomes when it changes mid-wait, the documented tie-breaks, what a tracked chat
keeps between polls, which messages stop nothing, and the state file's round trip (issue 20).
Written from the docstrings of snapshot/waiting.py and snapshot/replies.py."""

from __future__ import annotations

import itertools

import pytest

from exporter.model import Chat, Group
from exporter.snapshot.replies import ChatTrack, Message, RepliesConfig, Tracker
from exporter.snapshot.waiting import Wait, WaitingConfig, Waits, oldest_by_type

T0 = 1_800_000_000.0
BUCKETS = (60.0, 300.0)
CONFIG = RepliesConfig(conversation_gap=3600.0, buckets=BUCKETS)
# A hashed id (privacy.chat_ids: hash) says nothing of the chat's type: get-chats does.
H = "5f3a9c0d1e2b4a67"


def chat(cid: str, unread: int, group: bool) -> Chat:
    g = Group(created=0, participants=3, admins=1, size=3) if group else None
    return Chat(cid, "x", group, False, unread, int(T0), False, False, g)


# --- waiting.py ----------------------------------------------------------------------------------


def test_a_wait_keeps_its_start_and_takes_the_new_type_when_the_chat_changes_type():
    waits = Waits.empty(BUCKETS).advance([chat(H, 1, False)], T0 + 10, WaitingConfig(), None)
    waits = waits.advance([chat(H, 2, True)], T0 + 70, WaitingConfig(), None)
    assert dict(waits.since) == {H: ("group", T0)}
    assert waits.waiting(T0 + 100, None) == [Wait(H, "group", T0, 100.0)]


def test_oldest_by_type_breaks_ties_by_longest_then_chat_id_in_any_order():
    """Earliest start; ties: longest, then chat id (the docstring), whatever the input order."""
    waits = [
        Wait("b", "contact", T0, 50.0),
        Wait("a", "contact", T0, 40.0),
        Wait("c", "contact", T0, 50.0),
        Wait("d", "contact", T0 + 1, 99.0),
    ]
    for order in itertools.permutations(waits):
        assert oldest_by_type(order) == {"contact": waits[0]}, order


# --- replies.py: advance -------------------------------------------------------------------------


def inc(cid: str, t: float, event_id: int | None = None) -> Message:
    return Message(cid, False, t, event_id)


def out(cid: str, t: float) -> Message:
    return Message(cid, True, t)


def test_messages_that_change_nothing_do_not_stop_the_ones_after_them():
    """An ignored chat's message, status@broadcast, and an event id seen twice are skipped one by
    one; the messages after them are processed."""
    a, b = "1@c.us", "2@c.us"
    messages = [inc(b, T0, 7), inc("status@broadcast", T0), inc(b, T0 + 1, 7), inc(a, T0 + 2, 8)]
    tracker = Tracker.empty(BUCKETS).advance(messages, {a: "contact"}, CONFIG, None, ignored={b})
    assert set(tracker.chats) == {a}
    tracker = Tracker.empty(BUCKETS).advance(messages[1:], {a: "contact", b: "contact"}, CONFIG, None)
    assert set(tracker.chats) == {a, b} and tracker.received["contact"] == 2


def test_a_tracked_chat_missing_from_get_chats_keeps_its_type():
    """Typed by get-chats when first seen; a later message while get-chats no longer lists it keeps
    that type (a hashed id has no @g.us to go by)."""
    tracker = Tracker.empty(BUCKETS).advance([inc(H, T0)], {H: "group"}, CONFIG, None)
    tracker = tracker.advance([inc(H, T0 + 10), out(H, T0 + 20)], {}, CONFIG, None)
    assert tracker.received == {"contact": 0, "group": 2} and tracker.sent == {"contact": 0, "group": 1}
    assert tracker.histograms[("group", "first")].count == 1


def test_an_open_span_follows_the_chat_type_get_chats_gives():
    tracker = Tracker.empty(BUCKETS).advance([inc(H, T0)], {H: "contact"}, CONFIG, None)
    tracker = tracker.advance([inc(H, T0 + 10)], {H: "group"}, CONFIG, None)
    assert tracker.chats[H].chat_type == "group"
    assert tracker.unanswered(T0 + 60, None) == [Wait(H, "group", T0, 60.0)]


def test_a_chat_track_holds_its_newest_message_its_last_message_and_its_span():
    """newest: the newest message processed; last_message: the newest either way (the
    conversation gap is measured from it; persisted in the state file); open_since: the first
    unanswered incoming message."""
    a = "1@c.us"
    tracker = Tracker.empty(BUCKETS).advance([inc(a, T0)], {a: "contact"}, CONFIG, None)
    assert tracker.chats[a] == ChatTrack("contact", T0, T0, T0, True)
    tracker = tracker.advance([inc(a, T0 + 100)], {a: "contact"}, CONFIG, None)
    assert tracker.chats[a] == ChatTrack("contact", T0 + 100, T0 + 100, T0, True)
    # Older than the newest processed message: out of order, changes nothing.
    later = tracker.advance([inc(a, T0 + 50)], {a: "contact"}, CONFIG, None)
    assert later.chats[a] == tracker.chats[a]


# --- replies.py: keep_only and the state file ------------------------------------------------------


def test_keep_only_keeps_an_unlisted_chat_with_a_message_since_the_poll_as_it_is():
    """Not in get-chats' counted chats: forgotten when its newest message is older than the poll;
    a message at the poll's very time or after it keeps it (get-chats may not list it yet)."""
    a, b, c = "1@c.us", "2@c.us", "3@c.us"
    tracker = Tracker.empty(BUCKETS).advance([inc(a, T0 - 1), inc(b, T0), inc(c, T0 + 1)], {}, CONFIG, None)
    kept = tracker.keep_only({}, T0)
    assert dict(kept.chats) == {b: tracker.chats[b], c: tracker.chats[c]}


@pytest.mark.parametrize(
    "track",
    [
        ChatTrack("group", 0.0),  # get-history gave nothing: known, no span, no message time
        ChatTrack("contact", T0, T0, T0, True),  # every time exactly now
        ChatTrack("contact", T0 - 5, T0 - 60, None, False),
    ],
)
def test_the_state_file_round_trip_keeps_every_valid_track(track: ChatTrack):
    saved = {
        "chats": {
            "1@c.us": [track.chat_type, track.newest, track.last_message, track.open_since, track.first]
        }
    }
    restored, skipped = Tracker.read_json(saved, BUCKETS, T0)
    assert (dict(restored.chats), skipped) == ({"1@c.us": track}, 0)


@pytest.mark.parametrize(
    "entry",
    [
        ["contact", None, None, None, False],  # no newest time
        ["contact", T0 + 1, None, None, False],  # from the future
        ["contact", -1, None, None, False],
        ["contact", T0, T0, T0 + 0.5, True],
    ],
)
def test_the_state_file_skips_a_track_without_valid_times(entry: list):
    restored, skipped = Tracker.read_json(
        {"chats": {"1@c.us": entry, "2@c.us": ["group", 0, None, None, False]}}, BUCKETS, T0
    )
    assert set(restored.chats) == {"2@c.us"} and skipped == 1
