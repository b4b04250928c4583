"""Reading WhatsGate's event log for the events poll (:mod:`exporter.poller.events`):
:func:`read_log`, pure but for the calls to the source.

* The cursor is the newest ``event_date`` read so far, sent back exactly as received, and
  the ids of the events at that date: the bound may be inclusive, and no id is processed twice.
* Every page of the answer is read (``page_cnt`` 100), at most ``replies.max_pages`` a poll; the
  rest is read at the next poll and the poll counted in ``truncated``. The order of the pages is
  not documented: page 1 and the last page tell which end is newest, and a truncated read takes
  the OLDEST end, so the cursor advances without skipping anything. (On a newest-first server
  page 1 is read only to learn how many pages there are, and the last page may hold a single
  event: a truncated poll there reads at least three pages, page 1, the last and the one before.)
* The first start without a cursor does not replay the log: the cursor is set at the newest
  event, and open waits come from get-history
  (:meth:`~exporter.poller.events.EventsPoller.poll_once`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from ..model import INVALID_RESPONSE
from ..snapshot.replies import Cursor, Message
from ..whatsgate.client import PollError

PAGE_CNT = 100  # events-get's documented maximum page size


class Event(Protocol):
    """What the poller reads of an event (:class:`exporter.whatsgate.events.Event`)."""

    @property
    def id(self) -> int: ...
    @property
    def date(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def message(self) -> Message | None: ...


class EventsPage(Protocol):
    """One answer of events-get (:class:`exporter.whatsgate.events.EventsPage`)."""

    @property
    def events(self) -> Sequence[Event]: ...
    @property
    def page(self) -> int: ...
    @property
    def pages(self) -> int: ...
    @property
    def skipped(self) -> int: ...


class EventSource(Protocol):
    """events-get and get-history (the WhatsGate client); failures raise ``PollError``."""

    def events_page(
        self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100
    ) -> EventsPage: ...
    def history(self, whatsapp_id: str, chat_id: str) -> tuple[tuple[Message, ...], int]: ...


def _key(event: Event) -> tuple[str, int]:
    return (event.date, event.id)


@dataclasses.dataclass(frozen=True)
class Read:
    """What one poll read of the log: the new events, sorted by (event_date, id)."""

    events: tuple[Event, ...]
    cursor: Cursor
    truncated: bool = False
    skipped: int = 0  # events the client could not decode at all
    newest_first: bool | None = None  # the server's page order, once two pages told it
    pages: int = 0  # pages requested


def _newest_first(first: EventsPage, last: EventsPage) -> bool | None:
    """Whether page 1 holds the newest events; None when a page is empty (nothing to compare)."""
    if not first.events or not last.events:
        return None
    return max(map(_key, first.events)) > max(map(_key, last.events))


def read_log(
    source: EventSource, whatsapp_id: str, cursor: Cursor | None, max_pages: int, newest_first: bool | None
) -> Read:
    """Read the log after ``cursor`` (None: the first start, which only finds the newest event).

    ``newest_first``: the page order learnt at an earlier poll (None: not known yet).
    """
    date = cursor.date if cursor is not None and cursor.date else None
    got: dict[int, EventsPage] = {}
    requests = 0

    def fetch(page: int) -> EventsPage:
        nonlocal requests
        requests += 1
        got[page] = source.events_page(whatsapp_id, date, page, PAGE_CNT)
        return got[page]

    first = fetch(1)
    total, truncated = first.pages, False
    if total > 1 and (cursor is None or total > max_pages) and (cursor is None or newest_first is None):
        # Page 1 and the last page: where the log ends, and which end is the oldest.
        newest_first = _newest_first(first, fetch(total))
    elif cursor is not None and 1 < total <= max_pages:
        for page in range(2, total + 1):
            fetch(page)
        newest_first = _newest_first(first, got[total]) if newest_first is None else newest_first
    if cursor is not None and total > max_pages:
        truncated = True
        if newest_first:  # the oldest end is the last page: page 1 only told how many there are
            del got[1]
            page = total if total not in got else total - 1
            # The last page may hold a single event (the one at the cursor, sent back by an
            # inclusive bound): one full page after it keeps every poll moving on.
            while requests < max(max_pages, 3) and page > 1:
                fetch(page)
                page -= 1
        else:  # oldest first, or not known (an empty page): read forward, as the documentation does
            got.pop(total, None)
            page = 2
            while requests < max_pages and page < total:
                fetch(page)
                page += 1
    if newest_first and cursor is not None:
        # Newest first, events that arrive while the pages are read push the oldest ones onto a new
        # last page: an answer that says there are more pages than were read asks for them too.
        # More new pages than max_pages is no such arrival but a broken count; reading them all
        # would flood the rate-limited API, and skipping them would lose the oldest events.
        for _ in range(3):
            latest = max(first.pages, *(p.pages for p in got.values()))
            if latest <= max(got):
                break
            if latest - max(got) > max(max_pages, 3):
                raise PollError(
                    INVALID_RESPONSE, f"events-get: pages: {latest} announced after {first.pages} at page 1"
                )
            for page in range(max(got) + 1, latest + 1):
                fetch(page)
    if 1 in got:
        # A server that answers page 1 whatever page is asked for: its order cannot be told (page 1
        # is also the last), and newest first the cursor would jump past every event between.
        on_first = {e.id for e in got[1].events}
        for number, answer in got.items():
            if number > 1 and answer.events and all(e.id in on_first for e in answer.events):
                raise PollError(
                    INVALID_RESPONSE, f"events-get: page {number} repeats page 1 (page not applied)"
                )
    pages = requests
    skipped = sum(p.skipped for p in got.values())
    read = {e.id: e for p in got.values() for e in p.events}
    if cursor is None:  # the first start: no replay, only where the log ends
        if not read:
            return Read((), Cursor(""), skipped=skipped, newest_first=newest_first, pages=pages)
        newest = max(read.values(), key=_key)
        at_end = tuple(sorted(e.id for e in read.values() if e.date == newest.date))
        return Read((), Cursor(newest.date, at_end), skipped=skipped, newest_first=newest_first, pages=pages)
    seen = frozenset(cursor.ids)
    new = sorted(
        (e for e in read.values() if e.date > cursor.date or (e.date == cursor.date and e.id not in seen)),
        key=_key,
    )
    if not new:
        if truncated:
            # Past max_pages of events after the cursor, a server applying the date bound always
            # has some on the oldest pages: one that ignores it would stall the log for ever.
            raise PollError(
                INVALID_RESPONSE,
                f"events-get: {total} pages, none after the date sent (date bound not applied)",
            )
        return Read((), cursor, truncated, skipped, newest_first, pages)
    top = new[-1].date
    ids = {e.id for e in new if e.date == top} | (seen if top == cursor.date else set())
    return Read(tuple(new), Cursor(top, tuple(sorted(ids))), truncated, skipped, newest_first, pages)
