"""Discovery must neither drop nor freeze accounts: grace period, pagination checks, readiness.

The client is replaced at its ``call`` seam by a scripted one: these tests are
about what discovery does with answers, not about HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import metrics_body

from exporter.model import Account, Session
from exporter.poller.discovery import Discovery
from exporter.snapshot.store import Store
from exporter.whatsgate.client import PollError, paginate


class ScriptedClient:
    """Answers sessions-get pages from a function of (call number, page)."""

    def __init__(self, answer: Callable[[int, int], tuple[list[Session], int]]) -> None:
        self.answer = answer
        self.calls = 0

    def call(self, command: str, body: dict[str, Any], parse: Any = None) -> Any:
        assert command == "sessions-get"
        self.calls += 1
        return self.answer(self.calls, body["page"])

    def sessions(self) -> list[Session]:
        return paginate(self.call)


def sessions(*ids: str, status: str = "READY") -> list[Session]:
    return [Session(i, f"name {i}", status) for i in ids]


def test_a_server_ignoring_page_gives_each_session_once():
    client = ScriptedClient(lambda _n, _page: (sessions("a", "b"), 3))
    assert sorted(s.whatsapp_id for s in paginate(client.call)) == ["a", "b"]  # type: ignore[arg-type]
    assert client.calls == 3


def test_contradicting_pages_are_an_error_not_duplicate_series():
    client = ScriptedClient(lambda _n, page: (sessions("a", status="READY" if page == 1 else "AUTH"), 2))
    with pytest.raises(PollError, match="different data") as exc:
        paginate(client.call)
    assert exc.value.reason == "invalid_response"


def test_a_growing_page_count_is_an_error():
    client = ScriptedClient(lambda n, page: (sessions(f"s{page}"), n + 1))
    with pytest.raises(PollError, match="page count changed"):
        paginate(client.call)


def test_more_pages_than_the_cap_is_an_error_not_a_silent_cut():
    client = ScriptedClient(lambda _n, page: (sessions(f"s{page}"), 500))
    with pytest.raises(PollError, match="more than 100 pages"):
        paginate(client.call)


class World:
    def __init__(self, answer: Callable[[int, int], tuple[list[Session], int]]) -> None:
        self.now = 1000.0
        self.store = Store(stale_after=300, clock=lambda: self.now)
        self.store.expect_discovery()
        self.synced: list[set[str]] = []
        self.discovery = Discovery(
            ScriptedClient(answer),  # type: ignore[arg-type]
            configured=lambda: {"a": Account("a", "alias-a")},
            grace=lambda: 300.0,
            publish=self.store.publish_discovery,
            sync=lambda found: self.synced.append(set(found)),
            clock=lambda: self.now,
        )

    def metrics(self) -> str:
        return metrics_body(self.store).decode()


def test_an_empty_answer_keeps_accounts_through_the_grace_period_then_counts_their_removal():
    answers = [sessions("a", "b"), [], [], []]
    world = World(lambda n, _page: (answers[min(n, len(answers)) - 1], 1))
    world.discovery.discover_once()
    assert world.synced[-1] == {"a", "b"}
    world.now += 60
    world.discovery.discover_once()  # empty: both missing, kept
    assert world.synced[-1] == {"a", "b"}
    assert 'whatsgate_session_status{account="alias-a",status="READY",whatsapp_id="a"} 1.0' in world.metrics()
    world.now += 200
    world.discovery.discover_once()  # still within 300 s of first missing
    assert world.synced[-1] == {"a", "b"}
    world.now += 200
    world.discovery.discover_once()  # 400 s missing: dropped, counted
    assert world.synced[-1] == set()
    assert "whatsgate_discovery_sessions_removed_total 2.0" in world.metrics()


def test_not_ready_until_discovery_has_worked_once():
    answers: list[Any] = [PollError("timeout", "slow"), sessions("b")]

    def answer(n: int, _page: int) -> tuple[list[Session], int]:
        result = answers[n - 1]
        if isinstance(result, Exception):
            raise result
        return result, 1

    world = World(answer)
    assert world.store.ready() == (False, "sessions-get has not succeeded yet")
    world.discovery.discover_once()
    assert not world.store.ready()[0]
    assert "whatsgate_discovery_up 0.0" in world.metrics()
    world.discovery.discover_once()
    assert world.store.ready()[0]  # no account expected yet by this store: discovery alone
    assert "whatsgate_discovery_up 1.0" in world.metrics()


def test_the_sessions_found_are_expected_before_discovery_says_it_worked():
    """Regression (CI, the Kubernetes test): discovery published its success before the supervisor
    expected the sessions it found, so in between /ready said "0 of 0 accounts polled" and a
    rebuild then served a /metrics with no account at all."""
    world = World(lambda _n, _page: (sessions("a", "b"), 1))
    seen_at_publish: list[tuple[bool, str]] = []

    def publish(state: Any) -> None:
        world.store.publish_discovery(state)
        seen_at_publish.append(world.store.ready())

    def sync(found: dict[str, Account]) -> None:  # what the supervisor does with them
        for whatsapp_id in found:
            world.store.expect(whatsapp_id)

    world.discovery.publish, world.discovery.sync = publish, sync
    world.discovery.discover_once()
    assert seen_at_publish == [(False, "0 of 2 accounts polled")]


def test_each_round_hands_over_the_accounts_of_the_last_one_while_they_stay_the_same():
    """One Account object per session, shared by its poller and discovery, not a new one each round
    beside the poller's (an object per account at 10,000 sessions); a changed one is new."""
    configured = {"a": Account("a", "alias-a")}
    world = World(lambda _n, _page: (sessions("a", "b"), 1))
    rounds: list[dict[str, Account]] = []
    world.discovery.configured = lambda: dict(configured)
    world.discovery.sync = lambda found: rounds.append(dict(found))
    world.discovery.discover_once()
    world.discovery.discover_once()
    assert rounds[0] == rounds[1] == {"a": Account("a", "alias-a"), "b": Account("b", "b")}
    assert all(rounds[1][k] is rounds[0][k] for k in "ab")
    configured["a"] = Account("a", "renamed")  # a reload
    world.discovery.discover_once()
    assert rounds[2] == {"a": Account("a", "renamed"), "b": Account("b", "b")}
    assert rounds[2]["b"] is rounds[0]["b"]
    del configured["a"]
    world.discovery.discover_once()
    assert rounds[3]["a"] == Account("a", "a")
