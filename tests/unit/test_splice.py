"""A rebuild of the /metrics body copies what did not change from the last body's text (metrics/exposition.py,
``_text``): every body it makes must be the one a build from every account's renderings makes."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import pytest
from helpers import chat_obj, chats_of, group_obj
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.metrics import render as render_module
from exporter.metrics.exposition import Body, Exposition
from exporter.metrics.render import DEFLATED
from exporter.model import Account
from exporter.snapshot.replies import ReplyData, Tracker
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
CHATS = [
    chat_obj("100@c.us", unread=3, ts=1_700_000_100, name="Anna", pinned=True),
    chat_obj("101@c.us", unread=0, muted=True),
    group_obj("200@g.us", unread=2, admins=2, members=5, muted=True),
    chat_obj("102@c.us", unread=7, ro=True),
]
OPS = ["publish", "fail", "replies", "add", "remove", "stale", "discovery"]


def text(body: Body) -> bytes:
    """The snapshots' text of a body, checked against its CRC-32 and size."""
    plain = zlib.decompressobj(-15).decompress(b"".join(body.head[1:]))
    assert (zlib.crc32(plain), len(plain)) == (body.crc, body.size)
    return plain


class World:
    """A store and its exposition, driven by the steps a test draws."""

    def __init__(self) -> None:
        self.now, self.added = NOW, 0
        self.store = Store(stale_after=300, clock=lambda: self.now)
        self.exposition = Exposition(self.store)

    def polled(self, chats: int, account: Account | None = None) -> AccountState:
        if account is None:
            self.added += 1
            account = Account(f"7999{self.added:07d}", f"account-{self.added}")
            self.store.expect(account.whatsapp_id)
        data = ChatData.build(chats_of(CHATS[:chats]), parse_chats(), self.now)
        return AccountState(account).succeeded(data, 0.25)

    def step(self, op: str, which: int, chats: int) -> None:
        store, states = self.store, list(self.store.snapshots().values())
        state = states[which % len(states)] if states else None
        if op == "add" or state is None:
            store.publish(self.polled(chats))
        elif op == "publish":
            store.publish(self.polled(chats, state.account))
        elif op == "fail":  # the last data's rendering is reused
            store.publish(state.failed("timeout", "get-chats: no answer within 10s", 10.0))
        elif op == "replies":  # a family seen first, at whichever account gets it first
            seen = self.now - 200 * chats  # stale from the second on
            replies = ReplyData(Tracker.empty((60.0,)), up=chats % 2 == 0, last_success=seen)
            store.publish(dataclasses.replace(state, replies=replies))
        elif op == "remove":
            store.remove(state.account.whatsapp_id)
        elif op == "stale":  # some accounts' data turns stale, or an account's event log
            self.now += 120
        else:
            store.publish_discovery(DiscoveryState(up=chats % 2 == 0, last_success=self.now))


def parse_chats():  # type: ignore[no-untyped-def]
    from exporter.config.settings import parse_config

    return parse_config({"whatsgate": {"api_key": "k"}}, polling=False).chats


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 7), st.integers(0, len(CHATS))), max_size=14))
def test_every_rebuild_is_the_body_a_build_from_every_rendering_makes(steps: list[tuple[str, int, int]]):
    """Accounts published, failing, added, removed, turning stale, families first seen anywhere: the
    spliced body is byte for byte the one built from scratch, and so is the next one spliced from it."""
    world = World()
    for op, which, chats in steps:
        world.step(op, which, chats)
        world.exposition.update()
        assert text(world.exposition.body) == text(Exposition(world.store).body), (op, which, chats)


@pytest.mark.parametrize("op", ["publish", "add", "fail"])
def test_a_rebuild_inflates_only_the_renderings_of_the_accounts_that_changed(op: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """At 10,000 accounts a rebuild after one publish inflated every account's renderings again: it
    inflates those of the account published (or added), and copies the others' text from the last body."""
    world = World()
    for n in range(6):
        world.step("add", 0, 1 + n % len(CHATS))
    world.exposition.update()
    real, inflates = render_module.DEFLATE, []

    class Counted:  # a kept family is inflated with its dictionary, the last body's text without one
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def decompressobj(self, *args: object) -> object:
            inflates.extend(args[1:])
            return real.decompressobj(*args)

    monkeypatch.setattr(render_module, "DEFLATE", Counted())
    world.step(op, 3, 2)
    assert world.exposition.update()
    key = next(reversed(world.store.snapshots())) if op == "add" else list(world.store.snapshots())[3]
    account = world.exposition.body.accounts[key]
    assert account.data is not None
    own = [account.health, account.data.aggregates, account.data.chats]
    deflated = [
        end >= DEFLATED
        for layout, kept in own
        for end in struct.unpack_from(f"<{len(layout) + 1}I", kept)[1:]
    ]
    assert len(inflates) == sum(deflated) > 0
    monkeypatch.undo()
    assert text(world.exposition.body) == text(Exposition(world.store).body)
