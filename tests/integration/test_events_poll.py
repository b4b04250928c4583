"""The events poll (poller/events.py) against the simulator on loopback: exact expectations.

The simulator is the fake WhatsGate (events-get with an inclusive date bound, either page
order, get-history, faults); the exporter's client, tracker and state file are the real ones.
Each test drives the get-chats poll and the events poll by hand, on one clock shared with
the simulator, so every duration is exact.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import answering, chat_obj, rendering, wait_until

from exporter.config import redaction
from exporter.config.settings import Config, parse_config
from exporter.model import CONTACT
from exporter.poller import AccountPoller, Supervisor
from exporter.poller.events import EVENTS_JOB, EventsPoller
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot import statefile
from exporter.snapshot.replies import FIRST, Cursor, ReplyData
from exporter.snapshot.state import AccountState
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC
A, B, C, MUTED = "79990000001@c.us", "79990000002@c.us", "79990000003@c.us", "79990000009@c.us"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Setup:
    """One account polled by both jobs, as the supervisor runs them."""

    def __init__(self, sim: Simulator, clock: Clock, config: Config, restored: Any = None) -> None:
        self.sim, self.clock, self.config = sim, clock, config
        self.store = rendering(Store(stale_after=config.stale_after))
        self.store.expect("W1")
        self.client = WhatsGateClient(config.whatsgate.url, sim.api_key, timeout=2)
        self.chats = AccountPoller(
            config.accounts[0], self.client, lambda: self.config, self.store, clock, restored
        )
        self.events = EventsPoller(self.chats, self.client, clock)

    def poll(self) -> AccountState:
        """A get-chats poll, then an events poll."""
        self.chats.poll_once()
        return self.events.poll_once()

    @property
    def replies(self) -> ReplyData:
        replies = self.chats.state.replies
        assert replies is not None
        return replies


def make_config(sim: Simulator, **replies: Any) -> Config:
    return parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "2s"},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}],
            "poll_interval": "1m",
            "replies": {"history_per_poll": 2, **replies},
        }
    )


def hashed_config(sim: Simulator, tmp_path: Path, **sections: Any) -> Config:
    """Chat ids hashed under a key in ``tmp_path``, then ``sections``; poll_interval the default."""
    key = tmp_path / "key"
    key.write_text("a secret key of enough length\n")
    return parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "2s"},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}],
            "privacy": {"chat_ids": "hash", "key_file": str(key)},
            **sections,
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 3600)


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    chats = [chat_obj(cid, 0, ts=T0 - 86400) for cid in (A, B, C)]
    chats.append(chat_obj(MUTED, 0, ts=T0 - 86400, muted=True))
    simulator = Simulator([SimAccount("W1", "one", chats=chats)], clock=clock)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def setup(sim: Simulator, clock: Clock) -> Iterator[Setup]:
    made = Setup(sim, clock, make_config(sim))
    yield made
    made.client.close()


def history_calls(sim: Simulator) -> int:
    return sim.request_count("get-history", "W1")


def spans(replies: ReplyData) -> dict[str, float]:
    return {w.chat_id: w.since for w in replies.unanswered}


def test_first_start_sets_the_cursor_at_the_newest_event_and_backfills_capped(
    setup: Setup, sim: Simulator
) -> None:
    sim.receive("W1", A, T0)
    sim.reply("W1", A, T0 + 60)  # A: answered
    sim.receive("W1", B, T0 + 100)  # B: unread, waiting since T0+100
    sim.receive("W1", C, T0 + 200)
    sim.read("W1", C)  # C: read but never answered
    sim.receive("W1", MUTED, T0 + 300)  # muted: does not count
    state = setup.poll()
    replies = setup.replies
    assert replies.up and replies.last_success == T0 + 3600 and state.up
    assert replies.cursor == Cursor("2026-01-01 00:05:00", (sim.events("W1")[-1]["id"],))
    assert sum(replies.tracker.received.values()) == 0  # the log is not replayed
    # Two get-history calls (history_per_poll), most urgent first: B is unread, C the newest activity.
    assert history_calls(sim) == 2
    assert spans(replies) == {B: T0 + 100, C: T0 + 200}
    assert not replies.tracker.knows(A) and not replies.tracker.knows(MUTED)
    setup.clock.now += 60
    setup.poll()
    assert history_calls(sim) == 3 and setup.replies.tracker.knows(A)  # the rest at the next poll
    assert spans(setup.replies) == {B: T0 + 100, C: T0 + 200}
    setup.poll()
    assert history_calls(sim) == 3  # every counted chat known: get-history is not asked again


def test_a_duplicate_event_at_the_cursor_is_processed_once(setup: Setup, sim: Simulator) -> None:
    sim.receive("W1", A, T0)
    setup.poll()  # cursor at T0 (the inclusive bound sends this event back every time)
    sim.receive("W1", B, T0)  # another event in the same second as the cursor
    setup.poll()
    sim.reply("W1", B, T0 + 600)
    setup.clock.now = T0 + 700
    setup.poll()
    setup.poll()
    tracker = setup.replies.tracker
    assert tracker.received[CONTACT] == 1 and tracker.sent[CONTACT] == 1
    histogram = tracker.histograms[(CONTACT, FIRST)]
    assert (histogram.count, histogram.sum) == (1, 600.0)
    assert sim.request_count("events-get", "W1") == 4


@pytest.mark.parametrize("newest_first", [False, True])
def test_max_pages_truncates_then_catches_up(sim: Simulator, clock: Clock, newest_first: bool) -> None:
    sim.set_options(newest_first=newest_first)
    made = Setup(sim, clock, make_config(sim, max_pages=2, history_per_poll=0))
    try:
        sim.receive("W1", A, T0)
        made.poll()
        for i in range(1, 451):  # 450 messages: 5 pages (and the one at the cursor)
            sim.receive("W1", B, T0 + i)
        clock.now = T0 + 7200
        polls = 0
        while True:
            made.poll()
            polls += 1
            if made.replies.tracker.received[CONTACT] == 450:
                break
            assert polls < 10
        replies = made.replies
        # Each truncated poll counted once; a newest-first server needs a page more a poll (page 1
        # only tells how many there are), so it takes longer to catch up.
        assert replies.truncated == polls - 1 and polls >= 3
        assert spans(replies) == {B: T0 + 1}  # the oldest first: the span opens at the true first message
        made.poll()
        assert made.replies.truncated == polls - 1 and made.replies.tracker.received[CONTACT] == 450
    finally:
        made.client.close()


def test_a_restart_with_the_state_file_observes_a_reply_of_the_downtime_once(
    sim: Simulator, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    before = Setup(sim, clock, make_config(sim))
    sim.receive("W1", B, T0 + 10)
    before.poll()
    sim.receive("W1", A, T0 + 4000)
    clock.now = T0 + 4100
    before.poll()
    assert spans(before.replies) == {A: T0 + 4000, B: T0 + 10}
    assert history_calls(sim) == 3  # B, C and A, two a poll
    statefile.save(path, {"W1": before.chats.saved(clock.now, 300)})
    before.client.close()
    assert "Where is my" not in path.read_text()  # never a message body
    sim.reply("W1", A, T0 + 4150)  # answered while the exporter was down
    clock.now = T0 + 4200
    after = Setup(sim, clock, make_config(sim), statefile.load(path)["W1"])
    try:
        after.poll()
        replies = after.replies
        histogram = replies.tracker.histograms[(CONTACT, FIRST)]
        assert (histogram.count, histogram.sum) == (1, 150.0)
        assert spans(replies) == {B: T0 + 10}
        assert history_calls(sim) == 3  # every chat known from the state file: none asked again
        after.poll()
        assert after.replies.tracker.histograms[(CONTACT, FIRST)].count == 1
    finally:
        after.client.close()


def test_a_restart_without_the_state_file_backfills(sim: Simulator, clock: Clock) -> None:
    sim.receive("W1", B, T0 + 10)
    sim.receive("W1", A, T0 + 4000)
    sim.reply("W1", A, T0 + 4150)
    clock.now = T0 + 4200
    made = Setup(sim, clock, make_config(sim, history_per_poll=10))
    try:
        made.poll()
        replies = made.replies
        assert spans(replies) == {B: T0 + 10}  # from get-history: the true start
        assert replies.tracker.histograms[(CONTACT, FIRST)].count == 0  # nothing replayed
        assert history_calls(sim) == 3
    finally:
        made.client.close()


def events_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "exporter.poller.events"]


def test_events_down_while_get_chats_is_up(
    setup: Setup, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.poller.events")
    sim.receive("W1", B, T0)
    setup.poll()
    good = setup.replies.last_success
    sim.set_fault("W1", "unauthorized", command="events-get")
    setup.clock.now += 60
    for _ in range(3):
        state = setup.poll()
    replies = setup.replies
    assert state.up and state.errors["unauthorized"] == 0  # whatsgate_up is get-chats' alone
    assert not replies.up and replies.errors["unauthorized"] == 3 and replies.last_success == good
    assert replies.last_error and "Traceback" not in replies.last_error
    assert events_log(caplog) == ["events-get failed"]
    assert replies.is_stale(setup.clock.now + 300, 300)
    sim.set_fault("W1", None, command="events-get")
    setup.poll()
    assert setup.replies.up and setup.replies.last_error is None
    assert events_log(caplog) == ["events-get failed", "events-get recovered"]


def test_get_history_failing_does_not_fail_the_events_poll(setup: Setup, sim: Simulator) -> None:
    sim.receive("W1", B, T0)
    sim.set_fault("W1", "unauthorized", command="get-history")
    setup.poll()
    replies = setup.replies
    assert replies.up and not replies.tracker.knows(B) and spans(replies) == {}  # absent, never guessed
    assert history_calls(sim) == 1  # the first failure ends this poll's backfill
    sim.set_fault("W1", None, command="get-history")
    setup.poll()
    assert spans(setup.replies) == {B: T0}


def test_disabled_never_calls_the_event_log(sim: Simulator, clock: Clock) -> None:
    made = Setup(sim, clock, make_config(sim, enabled=False))
    try:
        sim.receive("W1", B, T0)
        assert made.events.run(0.0) > 0
        made.chats.poll_once()
        assert made.events.run(0.0) > 0
        assert made.chats.state.replies is None and made.chats.chat_index is None
        assert sim.request_count("events-get", "W1") == 0 and history_calls(sim) == 0
    finally:
        made.client.close()


def test_messages_of_chats_that_do_not_count_change_nothing(setup: Setup, sim: Simulator) -> None:
    setup.poll()
    sim.receive("W1", MUTED, T0 + 10)
    sim.receive("W1", "status@broadcast", T0 + 20)
    sim.receive("W1", B, T0 + 30)
    setup.poll()
    tracker = setup.replies.tracker
    assert tracker.received[CONTACT] == 1 and not tracker.knows(MUTED)
    assert not tracker.knows("status@broadcast")


def test_privacy_keys_the_tracker_as_the_chats(sim: Simulator, clock: Clock, tmp_path: Path) -> None:
    made = Setup(sim, clock, hashed_config(sim, tmp_path, replies={"history_per_poll": 2}))
    try:
        sim.receive("W1", B, T0)
        state = made.poll()
        sim.receive("W1", A, T0 + 5)
        made.poll()
        assert state.data is not None
        shown = {w.chat_id for w in made.chats.state.data.waiting} if made.chats.state.data else set()
        assert set(spans(made.replies)) == shown and len(shown) == 2
        assert A not in spans(made.replies) and B not in spans(made.replies)
    finally:
        made.client.close()


def test_both_jobs_at_once_lose_neither_update(setup: Setup, sim: Simulator) -> None:
    """The events poll publishing while a get-chats poll is rendering: both updates are kept."""
    sim.receive("W1", B, T0)
    done = threading.Event()
    prepare = setup.store.prepare

    def slow_prepare(state: AccountState) -> object:
        thread = threading.Thread(target=lambda: (setup.events.poll_once(), done.set()))
        thread.start()
        done.wait(0.5)  # the events poll waits for the account's lock: it cannot finish now
        return prepare(state)

    setup.store.prepare = slow_prepare  # type: ignore[method-assign]
    state = setup.chats.poll_once()
    assert done.wait(5)
    assert state.up and setup.chats.state.data is state.data and setup.chats.state.replies is not None
    assert setup.store.states()[0].replies is setup.chats.state.replies


def test_an_events_poll_during_the_get_chats_request_is_kept(setup: Setup, sim: Simulator) -> None:
    """The get-chats poll publishes on the state as it is when its answer is in, not as it was sent."""
    sim.receive("W1", B, T0)
    get_chats = setup.client.get_chats

    def answer_after_an_events_poll(whatsapp_id: str) -> Any:
        found = get_chats(whatsapp_id)
        setup.events.poll_once()  # the other job, on another worker, while this request is out
        return found

    answering(setup.client, answer_after_an_events_poll)
    state = setup.chats.poll_once()
    assert state.up and state.replies is not None and state.replies.up
    assert setup.store.states()[0].replies is state.replies


def test_the_first_events_poll_waits_for_the_first_get_chats_poll(setup: Setup, sim: Simulator) -> None:
    sim.receive("W1", B, T0)
    assert setup.events.run(0.0) == 1.0 and sim.request_count("events-get", "W1") == 0
    setup.chats.poll_once()
    assert setup.events.run(0.0) > 60
    assert spans(setup.replies) == {B: T0}  # backfilled at the first events poll


def test_bad_events_and_disconnects_are_counted_never_logged(
    setup: Setup, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.set_options(body_marker="BODY-MARKER-19")
    setup.poll()
    sim.disconnect("W1", T0 + 5)
    sim.receive("W1", B, T0 + 10)
    sim.set_fault("W1", "bad_events", command="events-get")
    with caplog.at_level(logging.DEBUG):
        setup.poll()
    replies = setup.replies
    assert replies.up and replies.disconnects == 1 and replies.skipped == 6  # every kind of bad event
    assert replies.tracker.received[CONTACT] == 1
    assert events_log(caplog) == ["events skipped"]
    assert "BODY-MARKER-19" not in caplog.text
    # The bad events at the cursor's date come back (inclusive bound). Those with an id (no usable
    # message, unknown action) are remembered at the cursor and not counted again; the two without
    # one (no id, not an object) reach the poller as a count only, so they are counted each time
    # they are served, until the cursor moves past their date.
    setup.poll()
    assert setup.replies.skipped == 6 + 2
    sim.set_fault("W1", None, command="events-get")
    skipped = setup.replies.skipped
    setup.poll()
    assert setup.replies.skipped == skipped and len(events_log(caplog)) == 2


def test_the_supervisor_runs_the_events_job_next_to_get_chats(sim: Simulator) -> None:
    """Wiring: one events job per account in the shared scheduler, removed with the account."""
    sim.receive("W1", B)
    config = make_config(sim)
    store = rendering(Store(stale_after=config.stale_after))
    client = WhatsGateClient(config.whatsgate.url, sim.api_key, timeout=2)
    supervisor = Supervisor(config, client, store)
    supervisor.start()
    try:
        assert supervisor.scheduler.keys() == {"W1", "W1" + EVENTS_JOB}
        wait_until(lambda: (s := store.states()) and s[0].replies is not None and s[0].replies.up, 10)
        state = store.states()[0]
        assert state.up and state.replies is not None and spans(state.replies) == {B: T0 + 3600}
        supervisor.apply(dataclasses.replace(config, accounts=()))
        assert supervisor.scheduler.keys() == set()
    finally:
        supervisor.stop()
        client.close()


class RecordingClient(WhatsGateClient):
    """The real client, noting each command as it is sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def held(self, command: str, body: dict[str, Any], parse: Any, *first: Any) -> Any:
        self.sent.append(command)  # every command goes through held, call's too
        return super().held(command, body, parse, *first)


def test_every_account_is_polled_before_an_event_log_is_read(clock: Clock) -> None:
    """Issue 18: with one worker, the first account's events poll (an events-get and a
    get-history per chat) must not go before the other accounts' first get-chats polls:
    /ready waits for those, and at 10,000 accounts the events work came first."""
    chats = [chat_obj(cid, 1, ts=T0 - 86400) for cid in (A, B, C)]
    ids = [f"W{i}" for i in range(1, 6)]
    sim = Simulator([SimAccount(wid, wid, chats=[dict(c) for c in chats]) for wid in ids], clock=clock)
    sim.start()
    config = parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "2s"},
            "accounts": [{"whatsapp_id": wid} for wid in ids],
            "poll_interval": "1m",
            "poll_concurrency": 1,
        }
    )
    store = Store(stale_after=config.stale_after)
    client = RecordingClient(config.whatsgate.url, sim.api_key, timeout=2)
    supervisor = Supervisor(config, client, store)
    supervisor.start()
    try:
        wait_until(lambda: store.ready()[0], 10)
        wait_until(lambda: all(s.replies is not None and s.replies.up for s in store.states()), 10)
        # Then, once no get-chats poll is due, each account's log is read and its chats backfilled.
        assert client.sent[: len(ids)] == ["get-chats"] * len(ids), client.sent
        assert client.sent.count("events-get") >= len(ids) and "get-history" in client.sent
    finally:
        supervisor.stop()
        client.close()
        sim.stop()


def test_a_chat_gone_from_get_chats_ends_its_span_unobserved(setup: Setup, sim: Simulator) -> None:
    sim.receive("W1", B, T0)
    setup.poll()
    assert spans(setup.replies) == {B: T0}
    sim.remove_chat("W1", B)
    setup.clock.now += 60
    setup.poll()
    tracker = setup.replies.tracker
    assert spans(setup.replies) == {} and not tracker.knows(B)
    assert sum(h.count for h in tracker.histograms.values()) == 0


def test_a_new_message_of_a_chat_not_backfilled_yet_keeps_the_earlier_wait(
    sim: Simulator, clock: Clock
) -> None:
    # A first start without a state file: C's customer wrote, the chat was read, never answered.
    # B is unread, so it takes the one get-history call of the first poll; C stays unknown.
    sim.receive("W1", B, T0 + 100)
    sim.receive("W1", C, T0 + 200)
    sim.read("W1", C)
    made = Setup(sim, clock, make_config(sim, history_per_poll=1))
    try:
        made.poll()
        assert spans(made.replies) == {B: T0 + 100} and not made.replies.tracker.knows(C)
        # C's customer writes again before C was backfilled: they have waited since T0+200.
        clock.now += 60
        sim.receive("W1", C, clock.now - 10)
        made.poll()
        assert spans(made.replies)[C] == T0 + 200  # not the new message's time: never guessed
        clock.now += 60
        sim.reply("W1", C, clock.now - 5)
        made.poll()
        histogram = made.replies.tracker.histograms[(CONTACT, FIRST)]
        assert (histogram.count, histogram.sum) == (1, clock.now - 5 - (T0 + 200))
    finally:
        made.client.close()


def test_without_get_history_a_new_message_of_an_unknown_chat_opens_the_wait(
    sim: Simulator, clock: Clock
) -> None:
    sim.receive("W1", C, T0 + 200)
    sim.read("W1", C)
    made = Setup(sim, clock, make_config(sim, history_per_poll=0))
    try:
        made.poll()
        clock.now += 60
        sim.receive("W1", C, clock.now - 10)
        made.poll()
        assert spans(made.replies) == {C: clock.now - 10}  # nothing can tell more: the best known
        assert history_calls(sim) == 0
    finally:
        made.client.close()


def test_unknown_chats_writing_beyond_the_history_budget_stay_absent(sim: Simulator, clock: Clock) -> None:
    made = Setup(sim, clock, make_config(sim, history_per_poll=1))
    try:
        made.poll()
        known = made.replies.tracker.chats.keys()
        clock.now += 60
        for chat in (A, B, C):
            if chat not in known:
                sim.receive("W1", chat, clock.now - 10)
        made.poll()
        waiting = spans(made.replies)
        assert len([c for c in waiting if c not in known]) == 1  # the one get-history call
        clock.now += 60
        made.poll()
        clock.now += 60
        made.poll()
        assert {c: t for c, t in spans(made.replies).items() if c not in known} == {
            c: clock.now - 130 for c in (A, B, C) if c not in known
        }
    finally:
        made.client.close()


def test_a_chat_id_holding_the_api_key_is_scrubbed_in_the_event_log_as_in_get_chats(
    setup: Setup, sim: Simulator
) -> None:
    redaction.redact(sim.api_key)  # as the exporter does with its key at start-up
    keyed = f"{sim.api_key}@c.us"  # a server echoing the key into a chat id
    setup.poll()
    setup.clock.now += 60
    setup.chats.poll_once()
    sim.receive("W1", keyed, setup.clock.now)  # after get-chats: the events poll sees it first
    setup.events.poll_once()
    replies = setup.replies
    shown = [*replies.tracker.chats, *(w.chat_id for w in replies.unanswered)]
    assert shown and not [c for c in shown if sim.api_key in c]
    assert "<secret>@c.us" in spans(replies)  # counted, under the id get-chats shows it by


def test_one_event_dated_far_ahead_does_not_stop_the_log(setup: Setup, sim: Simulator) -> None:
    setup.poll()
    setup.clock.now += 60
    sim.receive("W1", B, setup.clock.now - 30)
    sim.add_event("W1", "error", {}, at=setup.clock.now + 10 * 365 * 86400)  # a broken clock's date
    setup.poll()
    assert spans(setup.replies) == {B: setup.clock.now - 30}
    setup.clock.now += 60
    sim.reply("W1", B, setup.clock.now - 10)
    setup.poll()
    replies = setup.replies
    assert spans(replies) == {}  # the answer was read: the cursor did not jump ten years ahead
    assert replies.tracker.histograms[(CONTACT, FIRST)].count == 1
    assert replies.cursor is not None and replies.cursor.date < "2027"


def test_an_answer_logged_after_the_customers_next_message_still_answers(
    setup: Setup, sim: Simulator
) -> None:
    setup.poll()
    now = setup.clock.now
    sim.receive("W1", B, now + 10)
    setup.clock.now += 60
    setup.poll()
    # Our answer at +70 is logged 30 s late, after the customer's next message at +80.
    sim.reply("W1", B, now + 70, logged_at=now + 100)
    sim.receive("W1", B, now + 80)
    setup.clock.now += 60
    setup.poll()
    replies = setup.replies
    assert spans(replies) == {B: now + 80}  # waiting since the message after our answer
    histogram = replies.tracker.histograms[(CONTACT, FIRST)]
    assert (histogram.count, histogram.sum) == (1, 60.0)


def test_an_answer_logged_after_a_poll_saw_the_customers_next_message_still_answers(
    setup: Setup, sim: Simulator
) -> None:
    setup.poll()
    now = setup.clock.now
    sim.receive("W1", B, now + 10)
    setup.clock.now += 60
    setup.poll()
    sim.receive("W1", B, now + 80)  # after our answer at +70, which is not logged yet
    setup.clock.now += 60
    setup.poll()
    assert spans(setup.replies) == {B: now + 10}
    sim.reply("W1", B, now + 70, logged_at=now + 125)
    setup.clock.now += 60
    setup.poll()
    replies = setup.replies
    histogram = replies.tracker.histograms[(CONTACT, FIRST)]
    assert (histogram.count, histogram.sum) == (1, 60.0)  # the answer answered
    assert B not in spans(replies)  # since when the customer waits again: not guessed
    setup.clock.now += 60
    setup.poll()
    assert spans(setup.replies) == {B: now + 80}  # from get-history


def test_while_get_history_fails_a_customer_writing_in_an_unknown_chat_is_still_counted(
    setup: Setup, sim: Simulator
) -> None:
    sim.set_fault("W1", "unauthorized", command="get-history")  # e.g. a key without the right
    setup.poll()
    setup.clock.now += 60
    sim.receive("W1", C, setup.clock.now - 10)
    setup.poll()
    # Nothing can tell more: waiting since the message seen, not absent until our answer.
    assert spans(setup.replies) == {C: setup.clock.now - 10}


TRUTH_CHATS = [f"7999000{i:04d}@c.us" for i in range(12)]


def true_start(sim: Simulator, chat: str) -> float | None:
    msgs = sorted(sim.history("W1", chat), key=lambda m: (m["timestamp"], m["id"].startswith("true_")))
    last_out = max((i for i, m in enumerate(msgs) if m["id"].startswith("true_")), default=-1)
    return next((m["timestamp"] for m in msgs[last_out + 1 :] if not m["id"].startswith("true_")), None)


@pytest.mark.parametrize("seed", range(24))
def test_every_span_shown_is_the_true_one(seed: int) -> None:
    """At random, against the simulator's own message log: every unanswered span shown is the
    true one (the first customer message after our last, by the messages' own timestamps), and
    the chats not shown are the ones not known yet (absent, never guessed). A first start without
    a state file, a small get-history budget, new chats, reads, either page order, and events
    logged up to 30 s after their message."""
    rng = random.Random(seed)
    clock = Clock(T0)
    sim = Simulator(
        [SimAccount("W1", "one", chats=[chat_obj(c, 0, ts=T0 - 86400) for c in TRUTH_CHATS[:6]])], clock=clock
    )
    sim.start()
    try:
        # A past before the exporter starts: customers who wrote, were read, answered or not.
        for _ in range(30):
            clock.now += rng.randint(1, 600)
            chat = rng.choice(TRUTH_CHATS[:6])
            (sim.reply if rng.random() < 0.4 else sim.receive)("W1", chat, clock.now)
            if rng.random() < 0.3:
                sim.read("W1", chat)
        config = parse_config(
            {
                "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "2s"},
                "accounts": [{"whatsapp_id": "W1"}],
                "replies": {"history_per_poll": rng.choice([1, 2, 3])},
            }
        )
        sim.set_options(newest_first=rng.random() < 0.5)
        made = Setup(sim, clock, config)
        try:
            for _ in range(12):
                for _ in range(rng.randint(0, 5)):
                    clock.now += rng.randint(1, 50)
                    chat = rng.choice(TRUTH_CHATS)  # new chats too
                    late = clock.now + rng.choice([0, 0, 0, 5, 30])  # logged late, at times
                    (sim.reply if rng.random() < 0.4 else sim.receive)("W1", chat, clock.now, logged_at=late)
                    if rng.random() < 0.3:
                        sim.read("W1", chat)
                clock.now += 60
                made.poll()
                tracker = made.replies.tracker
                shown = {w.chat_id: w.since for w in made.replies.unanswered}
                for chat in TRUTH_CHATS:
                    if tracker.knows(chat):
                        assert shown.get(chat) == true_start(sim, chat), (seed, chat)
                    else:
                        assert chat not in shown
        finally:
            made.client.close()
    finally:
        sim.stop()


def test_messages_dropped_by_both_get_history_passes_are_counted_as_skipped(
    setup: Setup, sim: Simulator
) -> None:
    # A message dated twenty years ahead (a broken phone clock): its event carries no usable
    # message, and get-history drops it, in the pass for a customer writing (B) as in the pass
    # for the most urgent chats (C): every one is counted once in skipped.
    setup.config = make_config(sim, history_per_poll=0)
    setup.poll()
    setup.config = make_config(sim, history_per_poll=2)
    setup.clock.now += 60
    ahead = T0 + 20 * 365 * 86400
    sim.receive("W1", C, ahead, logged_at=setup.clock.now - 50)
    sim.receive("W1", B, ahead, logged_at=setup.clock.now - 40)
    sim.receive("W1", B, setup.clock.now - 10)
    setup.poll()
    replies = setup.replies
    assert spans(replies) == {B: setup.clock.now - 10}
    assert replies.tracker.knows(C) and not replies.tracker.knows(A)  # the budget spent on B and C
    assert replies.skipped == 2 + 2  # the two events, then one message in each history


def test_the_accounts_schedule_counts_open_time_only_in_waits_and_answers(
    sim: Simulator, clock: Clock
) -> None:
    config = parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "2s"},
            "accounts": [{"whatsapp_id": "W1", "name": "support", "schedule": "night"}],
            "schedules": {"night": {"timezone": "UTC", "hours": {"thu": ["00:00-01:02"]}}},  # T0: a Thursday
            "replies": {"history_per_poll": 2},
        }
    )
    made = Setup(sim, clock, config)
    try:
        made.poll()
        sim.receive("W1", B, T0 + 3610)  # 01:00:10: open for 110 s more
        clock.now = T0 + 3800
        made.poll()
        assert [(w.chat_id, w.seconds) for w in made.replies.unanswered] == [(B, 110.0)]
        sim.reply("W1", B, T0 + 3850)
        clock.now = T0 + 3860
        made.poll()
        histogram = made.replies.tracker.histograms[(CONTACT, FIRST)]
        assert (histogram.count, histogram.sum) == (1, 110.0)
    finally:
        made.client.close()


def test_under_hashed_ids_a_group_writing_is_typed_and_counted_by_get_chats(
    sim: Simulator, clock: Clock, tmp_path: Path
) -> None:
    # A hashed id no longer ends in @g.us: only get-chats can tell the new span is a group's.
    config = hashed_config(
        sim, tmp_path, waiting={"chat_types": ["contact", "group"]}, replies={"history_per_poll": 0}
    )
    made = Setup(sim, clock, config)
    try:
        group = "120363000000000001@g.us"
        sim.receive("W1", group, T0)
        made.poll()
        sim.receive("W1", group, T0 + 5)
        made.poll()
        assert [w.chat_type for w in made.replies.unanswered] == ["group"]
        assert made.replies.tracker.received == {"contact": 0, "group": 1}  # counted as a group's too
    finally:
        made.client.close()
