"""Render snapshots to exposition text once, serve the cached bytes on every scrape.

A snapshot changes once per poll but is scraped many times, and at 10,000
chats an account renders to megabytes of text: rebuilding metric families on
each scrape would cost seconds. So each collector is rendered, by
prometheus-client's own ``generate_latest``, when its snapshot is published,
and kept as per-family byte chunks. A scrape only stitches the chunks of all
accounts together family by family (the text format wants each family once,
under one HELP/TYPE header), which is a few hundred list operations.

The :class:`Store` is the only shared state between pollers and the web
server. Publishing replaces one immutable object with one assignment, so a
scrape sees each account either before or after a poll, never half of it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import memory
from .collector import (
    AggregateCollector,
    BuildInfoCollector,
    ChatCollector,
    DiscoveryCollector,
    HealthCollector,
)
from .snapshot import AccountState, ChatData, DiscoveryState

# (header, samples) of each family, in the order the collector yields them.
Rendered = tuple[tuple[str, bytes, bytes], ...]


class _One:
    """A registry-like wrapper so generate_latest renders a single family."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterable[Metric]:
        return (self.family,)


def render(collector: Collector, heavy: bool = True) -> Rendered:
    """Render every family of a collector, split into its two header lines and its samples.

    ``heavy=False`` is for the few small collectors rendered during a scrape,
    which must not wait for a poll's heavy work to finish.
    """
    out = []
    with memory.HEAVY_WORK if heavy else contextlib.nullcontext():
        for family in collector.collect():
            text = generate_latest(_One(family))  # type: ignore[arg-type]
            cut = text.index(b"\n", text.index(b"\n") + 1) + 1
            out.append((family.name, text[:cut], text[cut:]))
    return tuple(out)


@dataclass(frozen=True)
class RenderedData:
    """One successful poll's data, rendered; reused as is while later polls fail."""

    data: ChatData
    aggregates: Rendered
    chats: Rendered


@dataclass(frozen=True)
class RenderedAccount:
    state: AccountState
    health: Rendered
    data: RenderedData | None = None


def render_account(state: AccountState, previous: RenderedAccount | None = None) -> RenderedAccount:
    """Render a new state; the chat data is rendered only when it is new (not on a failed poll)."""
    data = previous.data if previous else None
    if state.data is None:
        data = None
    elif data is None or data.data is not state.data:
        data = RenderedData(
            data=state.data,
            aggregates=render(AggregateCollector(state.account, state.data)),
            chats=render(ChatCollector(state.account, state.data)),
        )
    return RenderedAccount(state=state, health=render(HealthCollector(state)), data=data)


@dataclass
class Store:
    """The latest rendered snapshot of every account, and what else /metrics serves."""

    stale_after: float
    expected: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.time
    include_process_metrics: bool = True
    _accounts: dict[str, RenderedAccount] = field(default_factory=dict)
    _discovery: Rendered | None = None
    discovery: DiscoveryState | None = None
    # Small collectors rendered at every scrape (alert state), after the snapshots.
    live: list[Collector] = field(default_factory=list)
    _build_info: Rendered = field(default_factory=lambda: render(BuildInfoCollector()))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    listeners: list[Callable[[AccountState | DiscoveryState], None]] = field(default_factory=list)

    # --- written by pollers ---------------------------------------------------

    def publish(self, state: AccountState) -> None:
        key = state.account.whatsapp_id
        with self._lock:  # serialises writers only; readers never take it
            if key not in self.expected:
                return  # a worker stopped (session gone) while its last poll was in flight
            rendered = render_account(state, self._accounts.get(key))
            self._accounts = {**self._accounts, key: rendered}
            del rendered
            memory.trim()  # the poll's transient (decoded JSON, render) is freed by now
        for listener in self.listeners:
            listener(state)

    def publish_discovery(self, state: DiscoveryState) -> None:
        self._discovery = render(DiscoveryCollector(state))
        self.discovery = state
        for listener in self.listeners:
            listener(state)

    def remove(self, whatsapp_id: str) -> None:
        with self._lock:
            self._accounts = {k: v for k, v in self._accounts.items() if k != whatsapp_id}
            self.expected.discard(whatsapp_id)

    # --- read by the web server and the alerting agent -----------------------

    def states(self) -> list[AccountState]:
        return [r.state for r in self._accounts.values()]

    def ready(self) -> tuple[bool, str]:
        accounts, expected = self._accounts, list(self.expected)  # discovery may add to it meanwhile
        polled = sum(1 for key in expected if key in accounts and accounts[key].state.polls > 0)
        return polled >= len(expected), f"{polled} of {len(expected)} accounts polled"

    def chunks(self) -> list[bytes]:
        """The whole /metrics body, as a list of byte strings to write one after the other."""
        now = self.clock()
        headers: dict[str, bytes] = {}
        bodies: dict[str, list[bytes]] = {}

        def add(rendered: Rendered) -> None:
            for name, header, samples in rendered:
                if name not in headers:
                    headers[name] = header
                    bodies[name] = []
                if samples:
                    bodies[name].append(samples)

        add(self._build_info)
        for account in self._accounts.values():
            add(account.health)
            if account.data is not None:
                add(account.data.aggregates)
                if not account.state.is_stale(now, self.stale_after):
                    add(account.data.chats)
        if self._discovery is not None:
            add(self._discovery)
        for collector in self.live:
            add(render(collector, heavy=False))
        out: list[bytes] = []
        for name, header in headers.items():
            out.append(header)
            out.extend(bodies[name])
        if self.include_process_metrics:
            out.append(generate_latest(REGISTRY))
        return out
