"""Rendering snapshots to exposition text, once per poll.

A snapshot changes once per poll but is scraped many times, and at 10,000
chats an account renders to megabytes of text: rebuilding metric families on
each scrape would cost seconds. So each collector is rendered, by
prometheus-client's own ``generate_latest``, when its snapshot is published,
and kept as per-family byte chunks that :class:`~exporter.metrics.store.Store`
stitches together per scrape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .. import memory
from ..snapshot.state import AccountState, ChatData
from .collectors import AggregateCollector, ChatCollector, HealthCollector

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


def render_data(state: AccountState) -> RenderedData | None:
    """Render the chat data of a state (None when it has none)."""
    if state.data is None:
        return None
    return RenderedData(
        data=state.data,
        aggregates=render(AggregateCollector(state.account, state.data)),
        chats=render(ChatCollector(state.account, state.data)),
    )


def render_account(
    state: AccountState, previous: RenderedAccount | None = None, prepared: RenderedData | None = None
) -> RenderedAccount:
    """Render a new state; the chat data is rendered only when it is new (not on a failed poll)."""
    data = previous.data if previous else None
    if state.data is None:
        data = None
    elif prepared is not None and prepared.data is state.data:
        data = prepared
    elif data is None or data.data is not state.data:
        data = render_data(state)
    return RenderedAccount(state=state, health=render(HealthCollector(state)), data=data)
