"""Kinds on an account's health: its polls failing, its data going stale, its session not ready."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...metrics import definitions as d
from ...snapshot.state import AccountState, DiscoveryState
from .base import Instance, Kind, Narrowing, account_labels, selector


@dataclass(frozen=True)
class AccountDown(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        return f"{d.UP.name}{selector(t, exclude_accounts)} == 0"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if not state.up:
            yield account_labels(state), 0.0, {}


@dataclass(frozen=True)
class Stale(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        return f"time() - {d.LAST_SUCCESS.name}{selector(t, exclude_accounts)} > {limit:g}"

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        if state.last_success is not None:
            yield account_labels(state), now - state.last_success, {}


@dataclass(frozen=True)
class SessionNotReady(Kind):
    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        not_ready = selector(t, exclude_accounts, 'status!="READY"')
        return f"{d.SESSION_STATUS.name}{not_ready} == 1"

    def measure_sessions(self, discovery: DiscoveryState) -> Iterator[Instance]:
        for account, session in discovery.sessions:
            if session.status != "READY":
                yield (
                    {"whatsapp_id": account.whatsapp_id, "account": account.name, "status": session.status},
                    1.0,
                    {},
                )
