"""The store: the latest rendered snapshot of every account, the only state pollers and HTTP share.

Publishing replaces one immutable object with one assignment, so a scrape sees
each account either before or after a poll, never half of it. Publishing then
only sets the events of its subscribers (the alerting agent): their work runs
on their own threads, never on the poller's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.registry import Collector

from .. import memory
from ..snapshot.state import AccountState, DiscoveryState
from . import gzipstream
from .collectors import BuildInfoCollector, DiscoveryCollector
from .render import (
    GZIP_LEVEL,
    LiveRenderer,
    Packed,
    Rendered,
    RenderedAccount,
    RenderedData,
    render,
    render_account,
    render_data,
)

# Seconds a rendering of the process metrics is shared between scrapes (see Store._process_metrics).
PROCESS_METRICS_MAX_AGE = 1.0

# Family name -> its header, and family name -> its samples from every snapshot, in first-seen order.
_Families = tuple[dict[str, Packed], dict[str, list["Packed | bytes"]]]


def _add(families: _Families, rendered: Rendered) -> None:
    headers, bodies = families
    for name, header, samples in rendered:
        if name not in headers:
            headers[name] = header
            bodies[name] = []
        if samples:
            bodies[name].append(samples)


Fresh = tuple[bool, bool]  # an account's chat data, and its event log's, are not stale


def _fresh(account: RenderedAccount, now: float, stale_after: float) -> Fresh:
    replies = account.state.replies
    return (
        account.data is not None and not account.state.is_stale(now, stale_after),
        replies is not None and not replies.is_stale(now, stale_after),
    )


def _snapshot_families(
    accounts: list[tuple[RenderedAccount, Fresh]], build_info: Rendered | None, discovery: Rendered | None
) -> _Families:
    """The families of the snapshots: each account's health, aggregates and (if fresh) chats,
    its reply families and (if its event log is fresh) who waits for an answer."""
    families: _Families = ({}, {})
    if build_info is not None:
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
    if discovery is not None:
        _add(families, discovery)
    return families


def _plain(pieces: Iterable[Packed | bytes]) -> list[bytes]:
    """The pieces' text, those packed inflated (or as kept plain)."""
    return [p.plain() if isinstance(p, Packed) else p for p in pieces]


def _ordered(families: _Families) -> list[Packed | bytes]:
    """Each family's header followed by its samples, families in first-seen order."""
    headers, bodies = families
    out: list[Packed | bytes] = []
    for name, header in headers.items():
        out.append(header)
        out.extend(bodies[name])
    return out


@dataclass
class Store:
    """The latest rendered snapshot of every account, and what else /metrics serves."""

    stale_after: float
    clock: Callable[[], float] = time.time
    include_process_metrics: bool = True
    _accounts: dict[str, RenderedAccount] = field(default_factory=dict)
    _discovery: Rendered | None = None
    discovery: DiscoveryState | None = None
    # Small collectors rendered at every scrape (alert state), after the snapshots.
    live: list[Collector] = field(default_factory=list)
    _build_info: Rendered = field(default_factory=lambda: render(BuildInfoCollector()))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The accounts /ready waits for; replaced whole, never edited in place.
    _expected: frozenset[str] = frozenset()
    _subscribers: tuple[threading.Event, ...] = ()
    _needs_discovery: bool = False
    _process: tuple[float, bytes] | None = None  # (when, text) of the last process metrics
    _crc_memo: gzipstream.CrcMemo = field(default_factory=gzipstream.CrcMemo)  # for /metrics only
    _render_live: LiveRenderer = field(default_factory=LiveRenderer)
    # The snapshots' part of the body (see _parts), its deflated head stitched into a gzip
    # member's start, and the rest of it: reused by the gzip scrapes until the part changes.
    _head: tuple[list[Packed | bytes], gzipstream.Head, list[Packed | bytes]] | None = None
    # (what it was made from, its families, them in order): see _pieces.
    _static: tuple[tuple[object, object, tuple[Fresh, ...]], _Families, list[Packed | bytes]] | None = None
    # The part a scrape renders (see _parts), and it deflated as one piece: see gzip_chunks.
    _tail: tuple[tuple[Packed | bytes, ...], Packed] | None = None

    def subscribe(self, wake: threading.Event) -> None:
        """Set ``wake`` after every publish; the subscriber does its work on its own thread."""
        self._subscribers = (*self._subscribers, wake)

    def _notify(self) -> None:
        for wake in self._subscribers:
            wake.set()

    # --- written by the poller -------------------------------------------------

    def expect(self, whatsapp_id: str) -> None:
        """An account is polled from now on: /ready waits for its first poll."""
        with self._lock:
            self._expected = self._expected | {whatsapp_id}

    def expect_discovery(self) -> None:
        """With discovery, /ready also waits until sessions-get has worked once."""
        self._needs_discovery = True

    def prepare(self, state: AccountState) -> RenderedData | None:
        """Render a state's chat data (the heavy part) on the caller's thread, before publishing.

        Raises on data that cannot be written as exposition text, so the poller can
        publish a failed poll instead.
        """
        return render_data(state)

    def publish(self, state: AccountState, prepared: object = None) -> None:
        key = state.account.whatsapp_id
        with self._lock:  # serialises writers only; readers never take it
            if key not in self._expected:
                return  # a worker stopped (session gone) while its last poll was in flight
            done = prepared if isinstance(prepared, RenderedData) else None
            rendered = render_account(state, self._accounts.get(key), done)
            self._accounts = {**self._accounts, key: rendered}
            del rendered
            memory.trim()  # the poll's transient (decoded JSON, render) is freed by now
        self._notify()

    def publish_discovery(self, state: DiscoveryState) -> None:
        self._discovery = render(DiscoveryCollector(state))
        self.discovery = state
        self._notify()

    def remove(self, whatsapp_id: str) -> None:
        with self._lock:
            self._accounts = {k: v for k, v in self._accounts.items() if k != whatsapp_id}
            self._expected = self._expected - {whatsapp_id}
        self._notify()

    # --- read by the web server and the alerting agent -----------------------

    def states(self) -> list[AccountState]:
        return [r.state for r in self._accounts.values()]

    def ready(self) -> tuple[bool, str]:
        accounts, expected = self._accounts, self._expected
        if self._needs_discovery and (self.discovery is None or self.discovery.last_success is None):
            return False, "sessions-get has not succeeded yet"
        polled = sum(1 for key in expected if key in accounts and accounts[key].state.polls > 0)
        return polled >= len(expected), f"{polled} of {len(expected)} accounts polled"

    def accounts(self) -> list[tuple[str, str]]:
        """(whatsapp_id, account label) of every account polled now, for service discovery."""
        accounts, expected = self._accounts, self._expected
        return sorted((key, accounts[key].state.account.name if key in accounts else key) for key in expected)

    def _pieces(self, only: str | None = None) -> list[Packed | bytes]:
        """The /metrics body in order: what was packed at publish, and what is rendered now.

        ``only``: the one account of a /probe, without the exporter's own metrics.
        """
        if only is not None:
            now = self.clock()
            one = [(a, _fresh(a, now, self.stale_after)) for k, a in self._accounts.items() if k == only]
            return _ordered(_snapshot_families(one, None, None))
        snapshots, scrape = self._parts()
        return snapshots + scrape

    def _parts(self) -> tuple[list[Packed | bytes], list[Packed | bytes]]:
        """The /metrics body in two parts: the snapshots' (the very same list between a publish
        and the next, or data turning stale), and what this scrape renders (alert state,
        reload, shard, process metrics)."""
        now = self.clock()
        accounts, discovery = self._accounts, self._discovery  # one read each: publishes replace them
        fresh = tuple(_fresh(account, now, self.stale_after) for account in accounts.values())
        # The snapshots' part changes only when a poll publishes or data goes stale: it is put
        # in order once and reused by the scrapes in between.
        key = (accounts, discovery, fresh)
        cached = self._static
        if (
            cached is None
            or cached[0][0] is not accounts
            or cached[0][1] is not discovery
            or cached[0][2] != fresh
        ):
            families = _snapshot_families(
                list(zip(accounts.values(), fresh, strict=True)),
                self._build_info,
                discovery,
            )
            cached = self._static = (key, families, _ordered(families))
        _, families, snapshots = cached
        live = [entry for collector in self.live for entry in self._render_live(collector)]
        scrape: list[Packed | bytes] = []
        if any(name in families[0] for name, _, _ in live):  # never so far: merge, slowly but right
            headers, bodies = dict(families[0]), {name: list(v) for name, v in families[1].items()}
            _add((headers, bodies), tuple(live))
            snapshots = _ordered((headers, bodies))
        else:
            live_families: _Families = ({}, {})
            _add(live_families, tuple(live))
            scrape = _ordered(live_families)
        if self.include_process_metrics:
            scrape.append(self._process_metrics())
        return snapshots, scrape

    def _process_metrics(self) -> bytes:
        """prometheus-client's default registry (its ProcessCollector's process_*, and python_*),
        rendered at most once per :data:`PROCESS_METRICS_MAX_AGE` and shared by the scrapes in
        between.

        Reading them takes a dozen /proc reads, each of which gives up the GIL; during a
        poll, getting it back costs up to a switch interval (see cli/serve.py) each, which was most of
        a scrape's p99 while accounts re-poll. Prometheus scrapes every few seconds at
        most, so a second-old CPU counter is never what it sees twice.
        """
        now = time.monotonic()
        cached = self._process
        if cached is None or now - cached[0] >= PROCESS_METRICS_MAX_AGE:
            cached = self._process = (now, generate_latest(REGISTRY))
        return cached[1]

    def _own(self) -> list[Packed | bytes]:
        """The exporter's own metrics alone (``/metrics?accounts=false``): build and discovery info,
        alert state, reload, shard, process; none of an account's, which /probe serves."""
        families = _snapshot_families([], self._build_info, self._discovery)
        _add(families, tuple(entry for collector in self.live for entry in self._render_live(collector)))
        pieces = _ordered(families)
        if self.include_process_metrics:
            pieces.append(self._process_metrics())
        return pieces

    def own_chunks(self, gzip: bool = False) -> list[bytes]:
        """:meth:`_own`'s body, plain or as one gzip member (it is small: compressed in full)."""
        return gzipstream.member(self._own(), GZIP_LEVEL) if gzip else _plain(self._own())

    def knows(self, whatsapp_id: str) -> bool:
        return whatsapp_id in self._accounts

    def chunks(self, only: str | None = None) -> list[bytes]:
        """The whole /metrics body (or one account's, for /probe), as byte strings to write in order."""
        return _plain(self._pieces(only))

    def gzip_chunks(self, only: str | None = None) -> list[bytes]:
        """The same body as one gzip member (see :mod:`.gzipstream` for why one, and how).

        What was packed at publish is sent as it was deflated then; what is rendered now
        (alert state, process metrics) is deflated here, as one piece, and only when it
        changed: scrapes close together share the process metrics' text (see
        _process_metrics) and the alert state's seldom changes, so they find it deflated
        already. A scrape seconds apart deflates once, not once per family (each deflate
        stream has a setup cost).
        """
        if only is not None:  # a /probe body is small: combined in full
            return gzipstream.member(self._pieces(only), GZIP_LEVEL)
        snapshots, scrape = self._parts()
        pieces = tuple(scrape)
        tail = self._tail  # one read: other scrapes may replace it
        if tail is None or tail[0] != pieces:  # the same objects, usually: compared by identity first
            tail = self._tail = (pieces, Packed(b"".join(_plain(pieces))))
        head = self._head  # one read: other scrapes may replace it
        if head is None or head[0] is not snapshots:
            # Stitched once per publish (or change of staleness), not per scrape: Prometheus
            # scrapes seconds apart, when the process metrics are rendered anew anyway.
            lead = gzipstream.leading(snapshots)
            packed = cast("list[Packed]", snapshots[:lead])
            head = self._head = (snapshots, gzipstream.Head(packed, self._crc_memo), snapshots[lead:])
        _, start, rest = head
        return gzipstream.finish(start, [*rest, tail[1]] if tail[1] else rest, GZIP_LEVEL)
