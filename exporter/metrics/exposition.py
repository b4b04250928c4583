"""The /metrics body: the store's snapshots rendered as one text, and that text compressed
into one gzip member, rebuilt on the exposition's own thread after publishes.

Publishing only wakes this thread (it subscribes to the store); it rebuilds the body from
whatever the store holds then, so a burst of publishes costs one rebuild, and swaps it
in with one assignment. It renders only the snapshots it has not rendered yet, one account
at a time (:func:`.render.render_account`), and keeps each account's rendering until the
account's next snapshot. The text format wants each family's samples in one group, so
every account's samples of a family go together: a publish of one account changes the
text in many places, and the whole text is deflated again (ISA-L's level 1, see
:mod:`.render`), once per rebuild rather than once per scrape.

Why one gzip member: RFC 1952 lets a stream hold many, and Go's reader (Prometheus)
reads them all, but httpx and aiohttp keep only the first, and urllib3 2.6 to 2.8
(requests) truncates or repeats text when a member ends on one of its read boundaries.
So the member's deflate stream is left open (a sync flush) and each scrape ends it
with its own small part (alert state, reload, shard, process metrics), whose CRC-32
continues the snapshots' one.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.registry import Collector

from .. import memory
from ..snapshot.state import AccountState
from ..snapshot.store import Store
from .collectors import BuildInfoCollector, DiscoveryCollector
from .render import (
    DEFLATE,
    EMPTY,
    GZIP_LEVEL,
    INFLATE_PIECE,
    Rendered,
    RenderedAccount,
    RenderedData,
    inflated,
    render,
    render_account,
    render_data,
    samples,
)

log = logging.getLogger(__name__)

# Seconds between two renderings of the process metrics, made ahead of the scrapes (see _process_metrics).
PROCESS_METRICS_MAX_AGE = 1.0
# Seconds between two rebuilds at least (publishes in a burst cost one), and between two looks
# at whether data has turned stale (stale_after is minutes).
INTERVAL = 1.0
# A plain scrape's text is inflated in pieces this large, each written before the next is made.
PLAIN_PIECE = 256 * 1024
# Deflate, no flags, no modification time, no extra flags, OS "unknown" (RFC 1952 section 2.3).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

# Family name -> its header, and -> each rendering holding it, in first-seen order: one entry each, not
# two with the family's index there (half a rebuild's index at 10,000 accounts, bench/RESULTS.md).
_Families = tuple[dict[str, bytes], dict[str, list[Rendered]]]


def _add(families: _Families, rendered: Rendered) -> None:
    for name, header in rendered[0]:
        if name not in families[0]:
            families[0][name], families[1][name] = header, []
        families[1][name].append(rendered)


def _text(families: _Families) -> Iterable[bytes]:
    """Each family's header followed by its samples, families in first-seen order."""
    for name, header in families[0].items():
        yield header
        last: object = None
        for layout, kept in families[1][name]:
            if layout is not last:  # layouts are shared (render._LAYOUTS): found again on a change only
                last, index = layout, next(i for i, (n, _) in enumerate(layout) if n == name)
            yield from samples(kept, name, index)


Fresh = tuple[bool, bool]  # an account's chat data, and its event log's, are not stale


def _fresh(state: AccountState, now: float, stale_after: float) -> Fresh:
    replies = state.replies
    return (
        state.data is not None and not state.is_stale(now, stale_after),
        replies is not None and not replies.is_stale(now, stale_after),
    )


def _families(
    accounts: Iterable[tuple[RenderedAccount, Fresh]],
    build_info: Rendered = EMPTY,
    discovery: Rendered = EMPTY,
    live: Iterable[Rendered] = (),
) -> _Families:
    """The build info; each account's health, aggregates and (if fresh) chats, its reply families
    and (if its event log is fresh) who waits for an answer; the discovery and live families."""
    families: _Families = ({}, {})
    _add(families, build_info)
    for account, (fresh, replies_fresh) in accounts:
        _add(families, account.health)
        if account.data is not None:
            _add(families, account.data.aggregates)
            if fresh:
                _add(families, account.data.chats)
        _add(families, account.replies)
        if replies_fresh:
            _add(families, account.unanswered)
    _add(families, discovery)
    for rendered in live:
        _add(families, rendered)
    return families


def _deflated(text: Iterable[bytes], end: int) -> tuple[tuple[bytes, ...], int, int]:
    """The gzip header then the text's raw deflate stream ended by ``end``; the text's CRC-32 and size."""
    deflate = DEFLATE.compressobj(GZIP_LEVEL, DEFLATE.DEFLATED, -15)  # raw deflate: framed here
    # Kept in pieces of about INFLATE_PIECE, never joined whole: a large body is not held twice
    # while it is made. The text's pieces, most of them a few lines, are deflated a run at a time.
    out, run, crc, size, pending = [GZIP_HEADER], bytearray(), 0, 0, bytearray()
    for piece in chain(text, (b"",)):
        pending += piece
        if piece and len(pending) < INFLATE_PIECE:
            continue
        run += deflate.compress(pending)
        crc, size = DEFLATE.crc32(pending, crc), size + len(pending)
        pending.clear()
        if len(run) >= INFLATE_PIECE:
            out.append(bytes(run))
            run.clear()
    run += deflate.flush(end)
    return (*out, bytes(run)), crc, size


def _member(text: Iterable[bytes]) -> list[bytes]:
    """One whole gzip member of the text (for the small bodies, compressed per request)."""
    head, crc, size = _deflated(text, DEFLATE.Z_FINISH)
    return [*head, struct.pack("<II", crc, size & 0xFFFFFFFF)]


@dataclass(frozen=True)
class Plain:
    """A plain /metrics body: the snapshots' text inflated afresh as it is written, then the
    scrape's own text. A plain scrape holds one piece, and the event loop serves others between."""

    deflated: tuple[bytes, ...]  # Body.head without the gzip header
    text: tuple[bytes, ...]
    size: int  # of the whole text: the Content-Length, known before any of it is inflated

    def __iter__(self) -> Iterator[bytes]:
        yield from inflated(self.deflated, PLAIN_PIECE)
        yield from self.text


@dataclass(frozen=True)
class Body:
    """The snapshots' part of /metrics as of one rebuild, deflated: the start of a gzip member."""

    key: tuple[int, tuple[Fresh, ...], float]  # what it was built from: no snapshot itself
    head: tuple[bytes, ...]  # the gzip header and the text's deflate stream, sync-flushed: open for the rest
    crc: int  # the CRC-32 of the text
    size: int
    discovery: Rendered
    ready: tuple[bool, str]  # the store's readiness when this was built (see Exposition.ready)
    accounts: Mapping[str, RenderedAccount]  # every account's rendering, reused by the next rebuild


class Exposition:
    """Renders the store's snapshots into the /metrics body, on its own thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Small collectors rendered at every scrape (alert state, reload, shard), after the snapshots.
        self.live: list[Collector] = []
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ahead: threading.Thread | None = None
        self._build_info = render(BuildInfoCollector())
        self._process: tuple[float, bytes] | None = None  # (when, text) of the last process metrics
        # The last scrape's own part: (its pieces, their text, deflated and finished).
        self._tail: tuple[tuple[bytes, ...], bytes, bytes] | None = None
        self.body = self._build(None)
        # The last rebuild raised (an exporter bug): the body is as old as the last one that worked,
        # its accounts' up and staleness included, so /metrics answers 503 until a rebuild works
        # rather than serve it as current.
        self.failing = False

    def prepare(self, state: AccountState) -> RenderedData | None:
        """A poll's chat data rendered on the poller's thread (:meth:`Store.prepare` says why)."""
        with memory.HEAVY_WORK:
            return render_data(state)

    # --- the rebuilding thread ------------------------------------------------------------------

    def update(self) -> bool:
        """Rebuild the body if a publish or data turning stale changed it; whether it did."""
        body = self._build(self.body)
        if body is self.body:
            return False
        self.body = body  # one assignment: a scrape sees the old body or the new one
        del body
        memory.trim()  # the old body and the rebuild's transient text are freed by now
        return True

    def _build(self, last: Body | None) -> Body:
        store = self.store
        ready = store.ready()  # read before the snapshots: /ready never claims more than /metrics shows
        version = store.version  # read first: a publish after it makes the next look rebuild
        states, discovery, stale_after = store.snapshots(), store.discovery, store.stale_after
        now = store.clock()
        fresh = tuple(_fresh(state, now, stale_after) for state in states.values())
        key = (version, fresh, stale_after)
        if last is not None and last.key == key and last.ready == ready:
            return last
        before = last.accounts if last is not None else {}
        # Once per rebuild: taken per render, the rebuild /ready waits for queued behind the polls'
        # decodes thousands of times at 10,000 accounts (bench/RESULTS.md). They wait for it instead.
        with memory.HEAVY_WORK:
            accounts = {k: render_account(state, before.get(k)) for k, state in states.items()}
            rendered = render(DiscoveryCollector(discovery)) if discovery is not None else EMPTY
            families = _families(zip(accounts.values(), fresh, strict=True), self._build_info, rendered)
            # A sync flush, not a finish: a scrape appends its own part to the same stream.
            head, crc, size = _deflated(_text(families), DEFLATE.Z_SYNC_FLUSH)
        return Body(key, head, crc, size, rendered, ready, accounts)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(INTERVAL)
            self.wake.clear()
            try:
                changed = not self._stop.is_set() and self.update()
                self.failing = False
                if changed:
                    self._stop.wait(INTERVAL)
            except Exception:  # the exporter's own bug: /metrics answers 503, the thread goes on
                self.failing = True
                log.error("rebuilding /metrics failed", exc_info=True)

    def start(self) -> None:
        self._own_part(PROCESS_METRICS_MAX_AGE)  # the first, before a scrape can come: then ahead
        self._thread = threading.Thread(target=self._run, name="exposition", daemon=True)
        self._ahead = threading.Thread(target=self._run_ahead, name="exposition-own", daemon=True)
        self._thread.start()
        self._ahead.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        for thread in filter(None, (self._thread, self._ahead)):
            thread.join(5)

    def _run_ahead(self) -> None:
        """The scrapes' own part, made before they ask for it (off the server's event loop)."""
        while not self._stop.wait(PROCESS_METRICS_MAX_AGE):
            try:
                self._own_part(PROCESS_METRICS_MAX_AGE)
            except Exception:  # a collector's bug: the scrapes raise it too
                log.error("rendering /metrics' own part failed", exc_info=True)

    # --- read by the web server -----------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """The store's readiness, and ready only once the body served shows it too."""
        ready, detail = self.store.ready()
        if ready and self.body.ready != (ready, detail):  # the rebuild after the polls is under way
            return False, f"{detail}; /metrics not rebuilt yet"
        return ready, detail

    def _live(self) -> list[Rendered]:
        return [render(collector, pack=False) for collector in self.live]

    def _process_metrics(self, max_age: float) -> bytes:
        """prometheus-client's default registry (ProcessCollector's process_*, and python_*), rendered
        at most once per ``max_age``. Its dozen /proc reads each give up the GIL, and getting it back
        during a poll costs up to a switch interval (cli/serve.py): the exposition-own thread renders
        them, and a scrape only when that thread is a whole period late (or not running)."""
        now = time.monotonic()
        cached = self._process
        if cached is None or now - cached[0] >= max_age:
            cached = self._process = (now, generate_latest(REGISTRY))
        return cached[1]

    def _own_part(self, max_age: float) -> tuple[tuple[bytes, ...], bytes, bytes]:
        """A scrape's own part (alert state, reload, shard, process metrics): its pieces, their text,
        and that text deflated and finished, only when it changed. Its families are named apart from
        the snapshots' (tests/unit/test_exposition.py), so each stays one group in the text."""
        pieces = (*_text(_families((), live=self._live())), self._process_metrics(max_age))
        tail = self._tail  # one read: other scrapes may replace it
        if tail is None or tail[0] != pieces:  # the same objects, usually: compared by identity first
            joined = b"".join(pieces)
            deflate = DEFLATE.compressobj(GZIP_LEVEL, DEFLATE.DEFLATED, -15)
            tail = self._tail = (pieces, joined, deflate.compress(joined) + deflate.flush())
        return tail

    def _probe(self, body: Body, only: str) -> list[bytes]:
        """One account's text as of the body (rendering it here would wait on the loop for HEAVY_WORK)."""
        store, now = self.store, self.store.clock()
        account = body.accounts.get(only) if store.knows(only) else None
        state = account and (account.state() or store.snapshots().get(only))  # newer: as fresh
        one = [] if not (account and state) else [(account, _fresh(state, now, store.stale_after))]
        return list(_text(_families(one)))

    def chunks(self, only: str | None = None) -> Plain:
        """The whole /metrics body (or one account's, for /probe), its size known before its bytes."""
        body = self.body  # one read: the thread may replace it
        if only is not None:  # one account's text, joined: written in a few large pieces
            text = b"".join(self._probe(body, only))
            return Plain((), (text,), len(text))
        _, own, _ = self._own_part(2 * PROCESS_METRICS_MAX_AGE)
        return Plain(body.head[1:], (own,), body.size + len(own))

    def gzip_chunks(self, only: str | None = None) -> list[bytes]:
        """The same body as one gzip member: the snapshots' part as deflated at the last rebuild,
        then this scrape's own part, deflated ahead (:meth:`_own_part`)."""
        body = self.body  # one read: the thread may replace it
        if only is not None:
            return _member(self._probe(body, only))
        _, own, deflated = self._own_part(2 * PROCESS_METRICS_MAX_AGE)
        crc = DEFLATE.crc32(own, body.crc)  # continued over this part: the CRC of the whole text
        return [*body.head, deflated, struct.pack("<II", crc, (body.size + len(own)) & 0xFFFFFFFF)]

    def own_chunks(self, gzip: bool = False) -> list[bytes]:
        """The exporter's own metrics alone (``/metrics?accounts=false``): build and discovery info,
        alert state, reload, shard, process; none of an account's, which /probe serves."""
        families = _families((), self._build_info, self.body.discovery, self._live())
        text = [*_text(families), self._process_metrics(2 * PROCESS_METRICS_MAX_AGE)]
        return _member(text) if gzip else text
