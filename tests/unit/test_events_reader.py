"""Reading WhatsGate's event log (poller/eventlog.py read_log): the cursor, the page order, max_pages.

The source is a small in-memory event log, paged as events-get documents it (an inclusive
``date`` bound, 100 a page, either page order); no HTTP: the simulator tests cover that."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from exporter.config.settings import Config, parse_config
from exporter.poller.eventlog import read_log
from exporter.poller.events import ChatIndex, EventsPoller
from exporter.snapshot.chatids import ChatTable
from exporter.snapshot.replies import Cursor, Message, Tracker
from exporter.snapshot.waiting import Wait
from exporter.whatsgate.client import PollError


@dataclass(frozen=True)
class Ev:
    id: int
    date: str
    action: str = "message"
    message: Message | None = None


@dataclass(frozen=True)
class Page:
    events: tuple[Ev, ...]
    page: int
    pages: int
    skipped: int = 0


@dataclass
class Log:
    events: list[Ev]
    newest_first: bool = False
    inclusive: bool = True
    requests: list[tuple[str | None, int]] = field(default_factory=list)
    arriving: list[Ev] = field(default_factory=list)  # logged right after the first request

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> Page:
        assert whatsapp_id == "W1" and page_cnt == 100
        self.requests.append((date, page))
        if len(self.requests) == 2:
            self.events += self.arriving
        chosen = sorted(
            (e for e in self.events if date is None or e.date > date or (self.inclusive and e.date == date)),
            key=lambda e: (e.date, e.id),
            reverse=self.newest_first,
        )
        pages = -(-len(chosen) // page_cnt)
        return Page(tuple(chosen[(page - 1) * page_cnt : page * page_cnt]), page, pages)

    def history(self, whatsapp_id: str, chat_id: str) -> tuple[tuple[Message, ...], int]:
        raise AssertionError("read_log never asks for history")


def date(second: int) -> str:
    return f"2026-01-01 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"


def events(n: int, start_id: int = 1, start_second: int = 0, per_second: int = 1) -> list[Ev]:
    return [Ev(start_id + i, date(start_second + i // per_second)) for i in range(n)]


@pytest.mark.parametrize("newest_first", [False, True])
def test_first_start_finds_the_newest_event_and_replays_nothing(newest_first: bool) -> None:
    log = Log(events(250, per_second=2), newest_first)
    read = read_log(log, "W1", None, 20, None)
    assert read.events == ()
    assert read.cursor == Cursor(date(124), (249, 250))
    assert log.requests == [(None, 1), (None, 3)]  # page 1 and the last: which end is newest
    assert read.newest_first is newest_first


def test_first_start_on_an_empty_log_reads_everything_from_then_on() -> None:
    log = Log([])
    read = read_log(log, "W1", None, 20, None)
    assert (read.events, read.cursor) == ((), Cursor(""))
    log.events = events(3, start_id=7)
    read = read_log(log, "W1", read.cursor, 20, read.newest_first)
    assert [e.id for e in read.events] == [7, 8, 9] and log.requests[-1] == (None, 1)
    assert read.cursor == Cursor(date(2), (9,))


def test_the_event_at_the_cursor_is_processed_once_and_its_date_sent_back_exactly() -> None:
    log = Log(events(3, per_second=3))  # ids 1..3, all at second 0
    cursor = Cursor(date(0), (1, 2))
    read = read_log(log, "W1", cursor, 20, None)
    assert [e.id for e in read.events] == [3]  # 1 and 2 come back (inclusive bound): not again
    assert read.cursor == Cursor(date(0), (1, 2, 3)) and log.requests == [(date(0), 1)]
    again = read_log(log, "W1", read.cursor, 20, None)
    assert (again.events, again.cursor) == ((), read.cursor)
    log.events.append(Ev(4, date(1)))
    later = read_log(log, "W1", again.cursor, 20, None)
    assert [e.id for e in later.events] == [4] and later.cursor == Cursor(date(1), (4,))


def test_an_exclusive_bound_loses_nothing_either() -> None:
    log = Log(events(5), inclusive=False)
    read = read_log(log, "W1", Cursor(date(1), (2,)), 20, None)
    assert [e.id for e in read.events] == [3, 4, 5]


@pytest.mark.parametrize("newest_first", [False, True])
def test_every_page_is_read_and_sorted(newest_first: bool) -> None:
    log = Log(events(450, start_id=1001), newest_first)
    read = read_log(log, "W1", Cursor(date(0), (1001,)), 20, None)
    assert [e.id for e in read.events] == list(range(1002, 1451))
    assert sorted(p for _, p in log.requests) == [1, 2, 3, 4, 5] and not read.truncated
    assert read.cursor == Cursor(date(449), (1450,)) and read.newest_first is newest_first


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("known", [False, True])
def test_max_pages_reads_the_oldest_end_then_catches_up(newest_first: bool, known: bool) -> None:
    log = Log(events(1000), newest_first)  # 10 pages, one event a second
    cursor = Cursor(date(0), (1,))
    order = newest_first if known else None
    seen: list[int] = []
    polls = 0
    while True:
        log.requests.clear()
        read = read_log(log, "W1", cursor, 3, order)
        polls += 1
        assert len(log.requests) <= 3 and (read.events or not read.truncated)
        seen += [e.id for e in read.events]
        cursor, order = read.cursor, read.newest_first
        if not read.truncated:
            break
        assert read.events and read.events[0].id == seen[len(seen) - len(read.events)]
        # A truncated read takes the oldest end: nothing between the cursor and it is skipped.
        assert seen == list(range(2, 2 + len(seen)))
    assert seen == list(range(2, 1001)) and cursor == Cursor(date(999), (1000,))
    assert polls > 3 and order is newest_first


def test_max_pages_one_still_advances_on_a_newest_first_server() -> None:
    log = Log(events(301), newest_first=True)  # the last page: only the event at the cursor
    read = read_log(log, "W1", Cursor(date(0), (1,)), 1, True)
    assert read.truncated and [e.id for e in read.events] == list(range(2, 102))
    # Page 1 tells the count; the last is the oldest, and the one before it moves the cursor on.
    assert [p for _, p in log.requests] == [1, 4, 3]


def test_an_event_read_twice_across_pages_counts_once() -> None:
    log = Log(events(150))
    log.events.append(log.events[0])  # the server lists one event twice
    read = read_log(log, "W1", Cursor(date(0), ()), 20, None)
    assert [e.id for e in read.events] == list(range(1, 151))


@pytest.mark.parametrize("max_pages", [20, 2])
@pytest.mark.parametrize("newest_first", [False, True])
def test_events_arriving_while_pages_are_read_leave_no_gap(max_pages: int, newest_first: bool) -> None:
    """Newest first, new events push the oldest onto a new last page in the middle of a read."""
    log = Log(events(250), newest_first, arriving=events(60, start_id=251, start_second=250))
    cursor, seen = Cursor(date(0), (1,)), []
    for _ in range(10):
        read = read_log(log, "W1", cursor, max_pages, newest_first)
        seen += [e.id for e in read.events]
        cursor = read.cursor
        assert seen == list(range(2, 2 + len(seen)))  # never a gap after the cursor
        if not read.truncated and cursor.ids == (310,):
            break
    assert seen == list(range(2, 311))


def test_chat_index_keeps_the_unknown_chats_two_events_polls_can_ask_for_most_urgent_first() -> None:
    from exporter.config.settings import parse_config
    from exporter.model import Chat
    from exporter.poller.events import ChatIndex

    config = parse_config(
        {
            "whatsgate": {"url": "http://gw.test", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
            "replies": {"history_per_poll": 2},
        }
    )

    def chat(n: int, unread: int, ts: int, muted: bool = False) -> Chat:
        return Chat(f"{n}@c.us", f"C{n}", False, False, unread, ts, False, muted)

    found = [
        chat(1, 0, 900),
        chat(2, 3, 100),
        chat(3, 0, 950),
        chat(4, 1, 200),
        chat(5, 0, 10),
        chat(6, 2, 5, True),
    ]
    index = ChatIndex.build(found, config, 1000.0, known=lambda cid: cid == "4@c.us")
    # Unread first (newest activity first among them), known chats skipped, muted not counted: 2 x 2.
    assert index.urgency == (
        ("2@c.us", "2@c.us"),
        ("3@c.us", "3@c.us"),
        ("1@c.us", "1@c.us"),
        ("5@c.us", "5@c.us"),
    )
    assert set(index.counted) == {"1@c.us", "2@c.us", "3@c.us", "4@c.us", "5@c.us"}
    assert index.excluded == {"6@c.us"}
    assert len(ChatIndex.build(found, config, 1000.0).urgency) == 4
    # Every account keeps its index until its next poll: the urgent chats as positions in its
    # table of ids, not as id strings (privacy plain: the real ids are the shown ones).
    from helpers import strings_held

    held = strings_held(index)
    assert len(held) == 1 and sorted(held[0]) == sorted("".join(index.table))


@dataclass
class Inflating(Log):
    """A newest-first server whose later pages announce ever more pages (broken or hostile)."""

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> Page:
        got = super().events_page(whatsapp_id, date, page, page_cnt)
        return Page(got.events, page, got.pages if page == 1 else 1_000_000)


@pytest.mark.parametrize("max_pages", [20, 2])
def test_pages_announced_by_later_answers_are_read_within_max_pages(max_pages: int) -> None:
    log = Inflating(events(250), newest_first=True)
    read = read_log(log, "W1", None, max_pages, None)
    assert read.newest_first is True
    log.events += events(250, start_id=251, start_second=250)
    log.requests.clear()
    with pytest.raises(PollError) as failed:  # a failed events poll (events_up 0), said why
        read_log(log, "W1", read.cursor, max_pages, True)
    assert failed.value.reason == "invalid_response" and "1000000" in failed.value.detail
    assert len(log.requests) <= max(max_pages, 3) + 3  # not a million requests in one poll


@dataclass
class Announcing(Log):
    """A newest-first server whose answers after page 1 announce ``more`` pages past the page asked
    for (``growing``) or past the true last page: events arriving, or a broken count."""

    more: int = 0
    growing: bool = False

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> Page:
        got = super().events_page(whatsapp_id, date, page, page_cnt)
        return Page(
            got.events, page, got.pages if page == 1 else (page if self.growing else got.pages) + self.more
        )


@pytest.mark.parametrize(
    ("max_pages", "more", "asked"),
    [
        (20, 20, [1, 2, 3, *range(4, 24)]),  # max_pages new pages: read, each once
        (20, 21, None),  # more: a broken count
        (2, 3, [1, 3, 2, 4, 5, 6]),  # truncated: the oldest end read, then at most 3 new pages
        (2, 4, None),
    ],
)
def test_pages_announced_after_page_1_are_read_once_up_to_max_pages(
    max_pages: int, more: int, asked: list[int] | None
) -> None:
    log = Announcing(events(250), newest_first=True, more=more)  # 3 pages after the cursor
    cursor = Cursor(date(0), (1,))
    if asked is None:
        with pytest.raises(PollError) as failed:
            read_log(log, "W1", cursor, max_pages, True)
        assert failed.value.reason == "invalid_response" and "announced" in failed.value.detail
        return
    read = read_log(log, "W1", cursor, max_pages, True)
    assert [page for _, page in log.requests] == asked
    if max_pages == 20:
        assert [e.id for e in read.events] == list(range(2, 251))


def test_announced_pages_are_caught_up_three_times_at_most() -> None:
    log = Announcing(events(250), newest_first=True, more=1, growing=True)  # each page: one more
    read_log(log, "W1", Cursor(date(0), (1,)), 20, True)
    assert [page for _, page in log.requests] == [1, 2, 3, 4, 5, 6]  # 3 pages, then 3 rounds of one


@dataclass
class IgnoringDate(Log):
    """A server that answers the whole log whatever ``date`` says (broken, or a renamed field)."""

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> Page:
        self.requests.append((date, page))
        return super().events_page(whatsapp_id, None, page, page_cnt)


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_server_ignoring_the_date_bound_fails_the_poll_instead_of_stalling(newest_first: bool) -> None:
    log = IgnoringDate(events(3000), newest_first)  # 30 pages; what is new lies past max_pages
    cursor = Cursor(date(2900), (2901,))
    with pytest.raises(PollError) as failed:  # events_up 0, said why: not a silent stall
        read_log(log, "W1", cursor, 20, newest_first)
    assert failed.value.reason == "invalid_response" and "date" in failed.value.detail
    small = IgnoringDate(events(300), newest_first)  # within max_pages: every page read, no harm
    read = read_log(small, "W1", Cursor(date(250), (251,)), 20, newest_first)
    assert [e.id for e in read.events] == list(range(252, 301))


@dataclass
class IgnoringPage(Log):
    """A server that answers page 1 whatever ``page`` asks for (broken, or a renamed field)."""

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> Page:
        got = super().events_page(whatsapp_id, date, 1, page_cnt)
        self.requests[-1] = (date, page)
        return got


@pytest.mark.parametrize("n", [450, 150])  # 150: page 2 is the one that repeats page 1
@pytest.mark.parametrize("newest_first", [False, True])
def test_a_server_ignoring_the_page_number_fails_the_poll_instead_of_losing_events(
    newest_first: bool, n: int
) -> None:
    log = IgnoringPage(events(n, start_id=1001), newest_first)
    with pytest.raises(PollError) as failed:  # events_up 0, said why: not 350 events lost
        read_log(log, "W1", Cursor(date(0), (1001,)), 20, None)
    assert failed.value.reason == "invalid_response" and "page" in failed.value.detail


# The events poll's get-history side (poller/events.py): which unknown chats are asked for, and
# what a backfill spends, drops and logs. A stub account and source; no HTTP.


def _config() -> Config:
    return parse_config(
        {
            "whatsgate": {"url": "http://gw.test", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}],
            "replies": {"history_per_poll": 2},
        }
    )


@dataclass
class Histories:
    answers: dict[str, tuple[tuple[Message, ...], int]]
    failing: PollError | None = None
    asked: list[str] = field(default_factory=list)

    def history(self, whatsapp_id: str, chat_id: str) -> tuple[tuple[Message, ...], int]:
        assert whatsapp_id == "W1"
        self.asked.append(chat_id)
        if self.failing is not None:
            raise self.failing
        return self.answers.get(chat_id, ((), 0))


def _events_poller(source: Histories) -> EventsPoller:
    job = SimpleNamespace(account=SimpleNamespace(name="support", whatsapp_id="W1"))
    return EventsPoller(job, source)  # type: ignore[arg-type]


CA, CB, CK, CG = "79990000001@c.us", "79990000002@c.us", "79990000003@c.us", "120363000000000001@g.us"
T = 1_800_000_000.0


def test_unknown_writing_asks_only_for_unknown_chats_whose_earliest_message_is_the_customers() -> None:
    known = Tracker.empty().advance([Message(CK, True, T, 1)], {}, _config().replies, None)
    messages = [
        Message(CK, False, T + 10, 2),  # known already: its past is in the tracker
        Message(CA, False, T + 30, 3),
        Message(CA, False, T + 20, 4),  # the earliest of A, though logged after
        Message(CB, True, T + 5, 5),  # our message first, then theirs in the same second:
        Message(CB, False, T + 5, 6),  # advance takes ours first (log order), so B becomes known
        Message(CG, False, T + 40, 7),
    ]
    reals = {c: c for c in (CA, CB, CK, CG)}
    index = ChatIndex(T, ChatTable({CA: "group", CK: "contact"}))
    assert EventsPoller._unknown_writing(messages, reals, known, index) == [
        (CA, CA, "group", T + 20),  # get-chats' type wins over the id's
        (CG, CG, "group", T + 40),  # not listed yet: typed by its real id
    ]
    assert EventsPoller._unknown_writing(messages[2:3], reals, known, None) == [(CA, CA, "contact", T + 20)]


def test_backfill_skips_known_chats_counts_what_it_drops_and_keeps_only_messages_before_the_poll() -> None:
    config = _config()
    known = Tracker.empty().advance([Message(CK, True, T, 1)], {}, config.replies, None)
    source = Histories(
        {
            # A: one unusable message dropped by the client, one of another chat; our answer, then the
            # customer's message this poll's events bring (at `before`): advanced after, not here.
            CA: (
                (
                    Message(CA, True, T + 10, None),
                    Message(CB, False, T, None),
                    Message(CA, False, T + 50, None),
                ),
                1,
            ),
            CB: ((Message(CB, False, T + 20, None),), 2),
        }
    )
    wanted = [
        (CK, CK, "contact", None),
        (CA, CA, "contact", T + 50),
        (CB, CB, "contact", None),
        (CG, CG, "group", None),
    ]
    tracker, skipped, budget = _events_poller(source)._backfill(known, wanted, 2, config)
    assert source.asked == [CA, CB]  # K known: no call spent on it; G beyond the budget
    assert (skipped, budget) == (1 + 1 + 2, 0)
    assert tracker.knows(CA) and tracker.knows(CB) and not tracker.knows(CG)
    assert tracker.unanswered(T + 100, None) == [Wait(CB, "contact", T + 20, 80.0)]  # A answered


def test_a_backfill_failure_spends_the_budget_and_is_logged_once_then_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.poller.events")
    config = _config()
    source = Histories({}, failing=PollError("unauthorized", "HTTP 401: who are you"))
    poller = _events_poller(source)
    wanted = [(CA, CA, "contact", None), (CB, CB, "contact", None)]
    tracker, skipped, budget = poller._backfill(Tracker.empty(), wanted, 2, config)
    assert (source.asked, skipped, budget, tracker.chats) == ([CA], 0, 0, {})  # the poll's urgent ones wait
    fields = {"account": "support", "whatsapp_id": "W1"}
    failed = (
        "WARNING",
        "get-history failed",
        {**fields, "reason": "unauthorized", "err": "HTTP 401: who are you"},
    )
    assert records(caplog) == [failed]  # at the first failure
    poller._backfill(Tracker.empty(), wanted, 2, config)
    source.failing = None
    poller._backfill(Tracker.empty(), wanted, 2, config)
    poller._backfill(Tracker.empty(), wanted, 2, config)
    assert records(caplog) == [failed, ("INFO", "get-history recovered", fields)]  # one line per change


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, object]]:
    return [(r.levelname, r.getMessage(), getattr(r, "fields", None)) for r in caplog.records]
