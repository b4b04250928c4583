"""What every threshold kind answers, and the pieces of PromQL and labels the kinds share.

A kind holds its PromQL (what :mod:`exporter.alerting.rules` writes into a Prometheus rule
file) and its Python evaluation on a snapshot (what the agent runs), side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ...snapshot.state import AccountState, DiscoveryState
from ..templates import promql_string
from .history import History

Labels = dict[str, str]
# One measured thing before comparison: its labels (besides alertname/severity),
# its value, and the extra template fields that are not labels (chat_name, chat, chat_with_id).
Instance = tuple[Labels, float, Mapping[str, str]]


class Narrowing(Protocol):
    """What a threshold narrows its kind to (a :class:`~exporter.alerting.thresholds.Threshold`)."""

    @property
    def accounts(self) -> tuple[str, ...]: ...
    @property
    def chat_types(self) -> tuple[str, ...]: ...
    @property
    def chats(self) -> tuple[re.Pattern[str], ...]: ...
    @property
    def longer_than(self) -> float | None: ...
    @property
    def target(self) -> float | None: ...
    @property
    def response(self) -> str | None: ...
    @property
    def window(self) -> float | None: ...


def account_labels(state: AccountState) -> Labels:
    return {"whatsapp_id": state.account.whatsapp_id, "account": state.account.name}


def _alternation(values: tuple[str, ...]) -> str:
    return "|".join(re.escape(v) for v in values)


def matchers(t: Narrowing, exclude_accounts: tuple[str, ...] = ()) -> list[str]:
    out = []
    if t.accounts:
        out.append(f"account=~{promql_string(_alternation(t.accounts))}")
    if exclude_accounts:
        out.append(f"account!~{promql_string(_alternation(exclude_accounts))}")
    if t.chat_types:
        out.append(f"chat_type=~{promql_string('|'.join(t.chat_types))}")
    return out


def selector(t: Narrowing, exclude_accounts: tuple[str, ...], *more: str) -> str:
    """The threshold's label matchers and ``more`` in braces, or nothing when there are none."""
    found = [*matchers(t, exclude_accounts), *more]
    return "{" + ", ".join(found) + "}" if found else ""


@dataclass(frozen=True)
class Kind:
    name: str
    scope: str  # "account", "chat", "group" or "session": which labels an alert carries
    # "count", "duration" (above only), "fraction" (below only, in (0, 1]) or "none" (a condition)
    value: str
    summary: str
    description: str
    narrows_chat_types: bool = False
    on_sessions: bool = False  # measured on sessions-get, not on an account's snapshot
    on_replies: bool = False  # measured on the event log (AccountState.replies)
    # Measured on the snapshot's chats one by one: while no threshold of such a kind is
    # configured, snapshots drop their chats once rendered (ChatData.released).
    reads_chats: bool = False
    # Measured over a window of past snapshots (responses_within): the evaluator keeps a
    # History per account and threshold (record) and measures on it (measure_over).
    windowed: bool = False

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        """The alert expression; ``bound`` is the comparison (``> 20``), ``limit`` its number."""
        raise NotImplementedError

    def measure(
        self, t: Narrowing, state: AccountState, now: float, stale_after: float
    ) -> Iterator[Instance]:
        """What the kind measures on one account's snapshot, as Prometheus would see it exported."""
        return iter(())

    def record(self, t: Narrowing, state: AccountState, now: float, past: History | None) -> History | None:
        """Windowed kinds: the history after this snapshot, seen at ``now`` (a scrape, in Prometheus)."""
        return None

    def measure_over(
        self, t: Narrowing, state: AccountState, now: float, history: History | None
    ) -> Iterator[Instance]:
        """Windowed kinds: what they measure at ``now`` on the history that :meth:`record` kept
        (their :meth:`measure` finds nothing: one snapshot holds no window)."""
        return iter(())

    def measure_sessions(self, discovery: DiscoveryState) -> Iterator[Instance]:
        return iter(())
