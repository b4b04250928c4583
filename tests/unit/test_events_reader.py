"""Reading WhatsGate's event log (poller/eventlog.py read_log): the cursor, the page order, max_pages.

The source is a small in-memory event log, paged as events-get documents it (an inclusive
``date`` bound, 100 a page, either page order); no HTTP: the simulator tests cover that."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from exporter.poller.eventlog import read_log
from exporter.snapshot.replies import Cursor, Message
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


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_server_ignoring_the_page_number_fails_the_poll_instead_of_losing_events(
    newest_first: bool,
) -> None:
    log = IgnoringPage(events(450, start_id=1001), newest_first)
    with pytest.raises(PollError) as failed:  # events_up 0, said why: not 350 events lost
        read_log(log, "W1", Cursor(date(0), (1001,)), 20, None)
    assert failed.value.reason == "invalid_response" and "page" in failed.value.detail
