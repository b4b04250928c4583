"""Rendering snapshots to exposition text, once per poll.

A snapshot changes once per poll but is scraped many times, and at 10,000 chats an account renders to
megabytes of text: rebuilding metric families on each scrape would cost seconds. So each snapshot is
rendered once, the first time :mod:`exporter.metrics.exposition` sees it (a poll's chats on the poller's
thread, before they are released), and kept per collector as one object (:data:`Rendered`), its large
families deflated, which the exposition joins family by family into the /metrics body. The small
families go through prometheus-client's own ``generate_latest``; the per-chat ones, the hot path,
through :mod:`exporter.metrics.fastrender`, which a differential test holds byte-identical to it.
"""

from __future__ import annotations

import re
import struct
import weakref
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain, pairwise
from types import ModuleType, SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.registry import Collector

from ..snapshot.state import AccountState, ChatData
from . import fastrender
from .collectors import AggregateCollector, HealthCollector, ReplyCollector, UnansweredCollector

DEFLATE: ModuleType
try:
    # ISA-L's deflate (python-isal): at level 1, several times zlib's speed with slightly smaller
    # output (bench/RESULTS.md); the whole /metrics text is deflated again after publishes.
    from isal import isal_zlib as DEFLATE
except ImportError:  # pragma: no cover - a platform without isal's wheels: the standard library
    DEFLATE = zlib

# Level 1: the per-chat text is very repetitive, so level 1 already shrinks it most of the
# way (bench/RESULTS.md); higher levels save little for CPU that every rebuild would pay.
GZIP_LEVEL = 1
# Kept text is inflated again in pieces this small: a rebuild of the body holds one piece of
# text at a time, not a family's whole text.
INFLATE_PIECE = 64 * 1024
# A family's deflate dictionary: its header and the first DICTIONARY_SIZE bytes of its samples this
# process rendered, fixed from then on. Accounts' samples of a family look alike, so with it even a few
# lines deflate to a fraction of themselves (small accounts' text was most of what each held).
DICTIONARY_SIZE = 2048
_DICTIONARIES: dict[str, bytes] = {}
# The top bit of where a family's samples end: they are deflated.
DEFLATED = 1 << 31


def inflated(stream: Iterable[bytes], size: int = INFLATE_PIECE, inflate: Any = None) -> Iterator[bytes]:
    """A raw deflate stream's text (or the rest of ``inflate``'s), in pieces of at most ``size`` bytes."""
    inflate = inflate or DEFLATE.decompressobj(-15)
    for data in stream:
        while piece := inflate.decompress(data, size):
            yield piece
            data = inflate.unconsumed_tail


def samples(rendered: bytes, name: str, index: int) -> Iterable[bytes]:
    """The text of the family at ``index`` (named ``name``) of a collector's rendering: one piece, usually."""
    start, end = struct.unpack_from("<2I", rendered, 4 * index)
    start &= DEFLATED - 1
    if end < DEFLATED:
        return (rendered[start:end],) if start < end else ()
    inflate = DEFLATE.decompressobj(-15, _DICTIONARIES[name])
    text = inflate.decompress(memoryview(rendered)[start : end - DEFLATED], INFLATE_PIECE)
    return (text,) if inflate.eof else chain((text,), inflated((inflate.unconsumed_tail,), inflate=inflate))


# A collector's families as (name, header) each, in its order: the same for every account, so one copy
# of each is kept (a tuple per family per account was a large share of what each held).
Layout = tuple[tuple[str, bytes], ...]
_LAYOUTS: dict[Layout, Layout] = {}
# A collector rendered: its layout, and its families' samples in one object (not one each with its
# overhead): where each starts and the last ends (uint32), then each one's, read with :func:`samples`.
Rendered = tuple[Layout, bytes]
EMPTY: Rendered = ((), b"")


def _split(families: Iterable[tuple[str, bytes, bytes | Iterator[bytes]]], pack: bool) -> Rendered:
    layout, kept, flags = [], [], []
    for name, header, samples in families:
        pieces = iter((samples,)) if isinstance(samples, bytes) else samples  # fastrender's: in slices
        text = next(pieces, b"")
        layout.append((name, header))
        flags.append(DEFLATED if pack and text else 0)  # however small: a rebuild inflates only changed ones
        if flags[-1]:
            zdict = _DICTIONARIES.setdefault(name, header + text[:DICTIONARY_SIZE])
            deflate = DEFLATE.compressobj(GZIP_LEVEL, DEFLATE.DEFLATED, -15, 8, 0, zdict)
            text = b"".join([deflate.compress(text), *map(deflate.compress, pieces), deflate.flush()])
        kept.append(b"".join((text, *pieces)))  # plain: its slices joined (deflated: none are left)
        del text, samples  # else this family's text is still held while the next one is written
    key, ends = tuple(layout), list(accumulate(map(len, kept), initial=4 * len(kept) + 4))
    ends[1:] = [end | flag for end, flag in zip(ends[1:], flags, strict=True)]
    return _LAYOUTS.setdefault(key, key), b"".join((struct.pack(f"<{len(ends)}I", *ends), *kept))


def render_plain(collector: Collector) -> Iterable[tuple[str, bytes, bytes]]:
    """Each family of a collector, by one generate_latest, split into its two header lines and its
    samples: a family starts at its "# HELP" line, and no other line starts so (newlines in help
    texts and label values are escaped)."""
    families = list(collector.collect())
    text = generate_latest(SimpleNamespace(collect=families.__iter__))  # a registry of these
    starts = [found.start() for found in re.finditer(rb"^# HELP ", text, re.MULTILINE)]
    for family, (start, end) in zip(families, pairwise([*starts, len(text)]), strict=True):
        cut = text.index(b"\n", text.index(b"\n", start) + 1) + 1
        yield family.name, text[start:cut], text[cut:end]


def render(collector: Collector, pack: bool = True) -> Rendered:
    """Render every family of a collector: a snapshot's once, deflated; or (``pack`` false) a
    per-scrape one's, small and plain. A snapshot's renders run under ``memory.HEAVY_WORK``,
    taken by the caller (:mod:`.exposition`) once for all it renders."""
    return _split(render_plain(collector), pack)


@dataclass(frozen=True, slots=True)
class RenderedData:
    """One successful poll's data, rendered; reused as is while later polls fail."""

    aggregates: Rendered
    chats: Rendered


@dataclass(frozen=True, slots=True)
class RenderedAccount:
    """One snapshot rendered: the exposition's, kept until the account's next snapshot."""

    # Weakly: the body must not keep an account's previous snapshot (its chat data) alive beside
    # the store's newer one until the next rebuild.
    state: weakref.ref[AccountState]
    health: Rendered
    data: RenderedData | None = None
    # The event log's families (while replies are read): always exported, and who waits for an
    # answer now, dropped at scrape time while the events poll is stale.
    replies: Rendered = EMPTY
    unanswered: Rendered = EMPTY


def render_chats(state: AccountState, data: ChatData) -> Rendered:
    """The per-chat families, written directly (the hot path). Their waits read from the snapshot's
    list by chat id (no Wait kept per wait), not ``data.wait_by_chat``, which the snapshot would
    keep for its life (a chat_waiting threshold's)."""
    return _split(fastrender.render_chats(state.account, data.selection.chats, data.waiting), pack=True)


def render_data(state: AccountState) -> RenderedData | None:
    """Render the chat data of a state (None when it has none)."""
    if (data := state.data) is None:
        return None
    return RenderedData(render(AggregateCollector(state.account, data)), render_chats(state, data))


def render_account(state: AccountState, previous: RenderedAccount | None = None) -> RenderedAccount:
    """A snapshot rendered: ``previous`` while it is the same snapshot; its chat data only when neither
    its poll (``ChatData.rendered``) nor an earlier snapshot of the same data (a failed poll) has."""
    last = previous.state() if previous is not None else None
    if previous is not None and last is state:
        return previous
    data = state.data
    rendered: RenderedData | None = None
    if data is not None:
        if isinstance(data.rendered, RenderedData):
            rendered = data.rendered
        elif previous is not None and last is not None and last.data is data:
            rendered = previous.data
        else:
            rendered = render_data(state)
    replies = state.replies
    unanswered = EMPTY
    if replies is not None:
        # Rendered at every publish of either poll: small (a few families, and per-chat series
        # only for the unanswered chats among the selected ones), so prometheus-client writes them.
        selected = data.selected if data is not None else frozenset()
        unanswered = render(UnansweredCollector(state.account, replies, selected))
    return RenderedAccount(
        state=weakref.ref(state),
        health=render(HealthCollector(state)),
        data=rendered,
        replies=render(ReplyCollector(state.account, replies)) if replies is not None else EMPTY,
        unanswered=unanswered,
    )
