"""The /metrics body: the store's snapshots rendered as one text, and that text compressed into one
gzip member, rebuilt on the exposition's own thread after publishes (a burst of them costs one rebuild).

Each account's snapshot is rendered once (:func:`.render.render_account`). The text format wants each
family's samples in one group, so a publish of one account changes the text in many places: a rebuild
copies the other accounts' samples from the last body's text, inflated as it goes (:func:`_text`), and
deflates the whole text again (ISA-L's level 1, see :mod:`.render`), once per rebuild, not per scrape.

Why one gzip member: RFC 1952 lets a stream hold many, and Go's reader (Prometheus) reads them all, but
httpx and aiohttp keep only the first, and urllib3 2.6 to 2.8 (requests) truncates or repeats text when a
member ends on one of its read boundaries. So the member's deflate stream is left open (a sync flush) and
each scrape ends it with its own small part (alert state, reload, shard, process metrics), whose CRC-32
continues the snapshots' one.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain, compress, count
from operator import is_not, ne, or_

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.registry import Collector

from .. import memory
from ..snapshot.state import AccountState
from ..snapshot.store import Store
from . import render as rendering
from .collectors import BuildInfoCollector, DiscoveryCollector
from .render import DEFLATE, EMPTY, GZIP_LEVEL, INFLATE_PIECE, Rendered, RenderedAccount, inflated, render

log = logging.getLogger(__name__)

# Seconds between two renderings of the process metrics, made ahead of the scrapes (see _process_metrics).
PROCESS_METRICS_MAX_AGE = 1.0
# Seconds between two rebuilds at least (a burst of publishes costs one), and between two looks at stale data.
INTERVAL = 1.0
# Text inflated in pieces this large: a plain scrape's (each written before the next), a rebuild's last body.
PLAIN_PIECE = 256 * 1024
# Deflate, no flags, no modification time, no extra flags, OS "unknown" (RFC 1952 section 2.3).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

# Family name -> its header; -> each rendering holding it, in first-seen order, one entry each (not two with
# the family's index there: half a rebuild's index at 10,000 accounts, bench/RESULTS.md); -> their sources.
_Families = tuple[dict[str, bytes], dict[str, list[Rendered]], dict[str, "array[int]"]]
Index = dict[str, tuple[bytes, "array[int]"]]  # family -> header, each source's samples' length in a body
Move = tuple[int, int, bool, list[Rendered]]  # a source changed: where it is, was, whether it was, renderings
Fresh = tuple[bool, bool]  # an account's chat data, and its event log's, are not stale
Accounts = Mapping[str, RenderedAccount]


def _families(sources: Iterable[tuple[int, Iterable[Rendered]]]) -> _Families:
    """The renderings of each source (0 the build info, then each account, then discovery), by family."""
    families: _Families = ({}, {}, {})
    for source, rendered in ((source, one) for source, renderings in sources for one in renderings):
        for name, header in rendered[0]:
            if name not in families[0]:
                families[0][name], families[1][name], families[2][name] = header, [], array("I")
            families[1][name].append(rendered)
            families[2][name].append(source)
    return families


def _parts(account: RenderedAccount, fresh: Fresh) -> list[Rendered]:
    """Health, aggregates and (if fresh) chats, reply families and (if fresh) who waits for an answer."""
    data = [] if account.data is None else [account.data.aggregates, account.data.chats][: 1 + fresh[0]]
    return [account.health, *data, account.replies, *[account.unanswered][: fresh[1]]]


def _fresh(state: AccountState, now: float, after: float) -> Fresh:
    return not state.is_stale(now, after), not (state.replies is None or state.replies.is_stale(now, after))


def _moves(last: Body | None, ends: list[Rendered], now: Accounts, fresh: list[Fresh]) -> list[Move] | None:
    """The sources changed since ``last`` (build info ``ends[0]``, accounts, discovery ``ends[1]``), in order;
    None if an account went or moved (a reload), or the families' order changed (one new, or moved)."""
    if last is None or list(now)[: len(last.accounts)] != list(last.accounts):
        return None
    n, accounts, parts = len(last.accounts), list(now.values()), list(map(_parts, now.values(), fresh))
    layouts = {id(layout): layout for one in chain([ends[:1]], parts, [ends[1:]]) for layout, _ in one}
    order = {name: header for layout in layouts.values() for name, header in layout}  # each layout read once
    if list(order.items()) != [(name, header) for name, (header, _) in last.index.items()]:
        return None
    changed = map(or_, map(is_not, accounts, last.accounts.values()), map(ne, fresh, last.key[1]))
    moved = chain(compress(count(1), changed), range(n + 1, len(accounts) + 1))  # then those added
    moves = [(i, min(i, n + 1), i <= n, parts[i - 1]) for i in moved]
    return moves + [(len(accounts) + 1, n + 1, True, ends[1:])] * (ends[1] != last.discovery)


def _text(
    families: _Families, n: int, index: Index, last: Body | None = None, moves: Iterable[Move] = ()
) -> Iterator[bytes]:
    """Each family's header and samples in first-seen order, the ``n`` sources' lengths into ``index``; or
    ``last``'s text (same families, same order), the ``moves``' samples anew, the rest copied as inflated."""
    inflate, deflated = DEFLATE.decompressobj(-15), iter(last.head[1:] if last else ())

    def read(size: int, keep: bool) -> Iterator[bytes]:  # the last body's next size bytes, or passed over
        while size:  # no input left may still leave output: b"" gets it
            text = inflate.decompress(inflate.unconsumed_tail or next(deflated, b""), min(size, PLAIN_PIECE))
            if not text:  # an index that does not fit its text (a bug): _run rebuilds from scratch
                raise ValueError("the last /metrics body ended before its index")
            size -= len(text)
            if keep:
                yield text

    order = last.index if last else {name: (header, array("I")) for name, header in families[0].items()}
    end = len(last.accounts) + 1 if last else 0  # where the accounts added since go
    for name, (header, was) in order.items():
        index[name] = header, (lens := was[:end] + array("I", bytes(4 * (n - len(was)))) + was[end:])
        kept, held, at, first, seen = families[1].get(name, []), families[2].get(name, array("I")), 0, 0, None
        yield from read(len(header), True) if last else (header,)
        for new, old, skip, _ in chain(moves, [(n, len(was), False, [])]):  # and what is left after them
            yield from read(sum(was[at:old]), True)
            yield from read(was[old] if skip else 0, False)
            at, stop = old + skip, bisect_right(held, new, first)
            if skip:
                lens[new] = 0
            for (layout, data), source in zip(kept[first:stop], held[first:stop], strict=True):
                if layout is not seen:  # layouts are shared (render._LAYOUTS): found again on a change only
                    seen, where = layout, next(i for i, (k, _) in enumerate(layout) if k == name)
                for piece in rendering.samples(data, name, where):
                    lens[source] += len(piece)
                    yield piece
            first = stop


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


@dataclasses.dataclass(frozen=True)
class Plain:
    """The snapshots' text inflated afresh as it is written (one piece held at a time), then the scrape's."""

    deflated: tuple[bytes, ...]  # Body.head without the gzip header
    text: tuple[bytes, ...]
    size: int  # of the whole text: the Content-Length, known before any of it is inflated

    def __iter__(self) -> Iterator[bytes]:
        yield from inflated(self.deflated, PLAIN_PIECE)
        yield from self.text


@dataclasses.dataclass(frozen=True)
class Body:
    """The snapshots' part of /metrics as of one rebuild, deflated: the start of a gzip member."""

    key: tuple[int, tuple[Fresh, ...], float]  # what it was built from: no snapshot itself
    head: tuple[bytes, ...]  # the gzip header and the text's deflate stream, sync-flushed: open for the rest
    crc: int  # the CRC-32 of the text
    size: int
    discovery: Rendered
    ready: tuple[bool, str]  # the store's readiness when this was built (see Exposition.ready)
    accounts: Accounts  # every account's rendering, reused by the next rebuild
    index: Index  # where each source's samples are in the text: the next rebuild copies what did not change


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
        # The last rebuild raised (an exporter bug): until one works, /metrics answers 503 rather than serve
        # the last body that worked (its accounts' up and staleness as old) as current.
        self.failing = False

    def prepare(self, state: AccountState) -> rendering.RenderedData | None:
        """A poll's chat data rendered on the poller's thread (:meth:`Store.prepare` says why)."""
        with memory.HEAVY_WORK:
            return rendering.render_data(state)

    def update(self) -> bool:
        """Rebuild the body if a publish or data turning stale changed it; whether it did."""
        body = self._build(self.body)
        if body is self.body:
            return False
        self.body = body  # one assignment: a scrape sees the old body or the new one
        memory.trim()  # the old body and the rebuild's transient text are freed by now
        return True

    def _build(self, last: Body | None) -> Body:
        store = self.store
        ready = store.ready()  # read before the snapshots: /ready never claims more than /metrics shows
        version = store.version  # read first: a publish after it makes the next look rebuild
        states, discovery, after, now = store.snapshots(), store.discovery, store.stale_after, store.clock()
        fresh = tuple(_fresh(state, now, after) for state in states.values())
        key = (version, fresh, after)
        if last is not None and last.key == key and last.ready == ready:
            return last
        before = last.accounts if last is not None else {}
        # Once per rebuild: taken per render, the rebuild /ready waits for queued behind the polls'
        # decodes thousands of times at 10,000 accounts (bench/RESULTS.md). They wait for it instead.
        with memory.HEAVY_WORK:
            accounts = {k: rendering.render_account(state, before.get(k)) for k, state in states.items()}
            rendered = render(DiscoveryCollector(discovery)) if discovery is not None else EMPTY
            n, index, ends = len(accounts) + 2, Index(), [self._build_info, rendered]
            if (moves := _moves(last, ends, accounts, list(fresh))) is not None:
                text = _text(_families((new, parts) for new, _, _, parts in moves), n, index, last, moves)
            else:  # every source from its renderings: 0 the build info, 1 to n - 2 the accounts, discovery
                parts = chain([ends[:1]], map(_parts, accounts.values(), fresh), [ends[1:]])
                text = _text(_families(enumerate(parts)), n, index)
            # A sync flush, not a finish: a scrape appends its own part to the same stream.
            head, crc, size = _deflated(text, DEFLATE.Z_SYNC_FLUSH)
        return Body(key, head, crc, size, rendered, ready, accounts, index)

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
                self.failing = True  # and the next rebuild is from every rendering, not from this body
                self.body = dataclasses.replace(self.body, index={})
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

    def ready(self) -> tuple[bool, str]:
        """The store's readiness, and ready only once the body served shows it too."""
        ready, detail = self.store.ready()
        if ready and self.body.ready != (ready, detail):  # the rebuild after the polls is under way
            return False, f"{detail}; /metrics not rebuilt yet"
        return ready, detail

    def _live(self) -> list[Rendered]:
        return [render(collector, pack=False) for collector in self.live]

    def _process_metrics(self, max_age: float) -> bytes:
        """prometheus-client's default registry (process_*, python_*), rendered at most once per ``max_age``:
        its dozen /proc reads each give up the GIL, which a poll's thread then may hold a switch interval
        (cli/serve.py). The exposition-own thread renders them, a scrape only when that one is late."""
        if (cached := self._process) is None or time.monotonic() - cached[0] >= max_age:
            cached = self._process = (time.monotonic(), generate_latest(REGISTRY))
        return cached[1]

    def _own_part(self, max_age: float) -> tuple[tuple[bytes, ...], bytes, bytes]:
        """A scrape's own part (alert state, reload, shard, process): pieces, text, text deflated, made when
        it changed; its families are named apart from the snapshots' (test_exposition.py): one group each."""
        pieces = (*_text(_families([(0, self._live())]), 1, {}), self._process_metrics(max_age))
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
        one = [] if not (account and state) else [(1, _parts(account, _fresh(state, now, store.stale_after)))]
        return list(_text(_families(one), 2, {}))

    def chunks(self, only: str | None = None) -> Plain:
        """The whole /metrics body (or one account's, for /probe), its size known before its bytes."""
        body = self.body  # one read: the thread may replace it
        if only is not None:  # one account's text, joined: written in a few large pieces
            text = b"".join(self._probe(body, only))
            return Plain((), (text,), len(text))
        _, own, _ = self._own_part(2 * PROCESS_METRICS_MAX_AGE)
        return Plain(body.head[1:], (own,), body.size + len(own))

    def gzip_chunks(self, only: str | None = None) -> list[bytes]:
        """One gzip member: the last rebuild's deflated snapshots, then the scrape's part (_own_part)."""
        body = self.body  # one read: the thread may replace it
        if only is not None:
            return _member(self._probe(body, only))
        _, own, deflated = self._own_part(2 * PROCESS_METRICS_MAX_AGE)
        crc = DEFLATE.crc32(own, body.crc)  # continued over this part: the CRC of the whole text
        return [*body.head, deflated, struct.pack("<II", crc, (body.size + len(own)) & 0xFFFFFFFF)]

    def own_chunks(self, gzip: bool = False) -> list[bytes]:
        """The exporter's own metrics alone (``/metrics?accounts=false``): build and discovery info,
        alert state, reload, shard, process; none of an account's, which /probe serves."""
        families = _families([(0, [self._build_info, self.body.discovery, *self._live()])])
        text = [*_text(families, 1, {}), self._process_metrics(2 * PROCESS_METRICS_MAX_AGE)]
        return _member(text) if gzip else text
