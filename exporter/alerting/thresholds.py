"""Thresholds: what is wrong, written once in the YAML config, alerted on two ways.

A threshold names a *kind* of measurement (:mod:`exporter.alerting.kinds`), a
comparison (``above``/``below`` a value), a ``for`` duration, a severity,
optional summary/description text, optional narrowing (accounts, chat types,
chats by id/name regex) and optional per-account overrides of the value,
``for`` and severity. :mod:`exporter.config.thresholds` parses the ``thresholds:``
section.

Summary and description text may use placeholders such as ``{account}``,
``{chat_name}`` or ``{value}``; they become Go template actions in the rule
file and plain substitutions in the agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..config.schema import format_duration
from . import templates
from .kinds import KINDS
from .kinds.base import Kind


@dataclass(frozen=True)
class Limit:
    """What a per-account override may change."""

    op: str  # ">" or "<"; "" for kinds without a value
    value: float
    for_: float
    severity: str


@dataclass(frozen=True)
class Threshold:
    name: str
    kind: str
    limit: Limit
    summary: str
    description: str
    accounts: tuple[str, ...] = ()
    chat_types: tuple[str, ...] = ()
    chats: tuple[re.Pattern[str], ...] = ()
    overrides: tuple[tuple[str, Limit], ...] = ()
    # chats_waiting (chats_unanswered): which waiting.buckets (replies.buckets) bucket it counts
    longer_than: float | None = None
    # responses_within: the replies.buckets bucket a response must be within, the range it is
    # measured over, and which responses count (first or next; None: both)
    target: float | None = None
    window: float | None = None
    response: str | None = None

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    def limit_for(self, account: str) -> Limit:
        return dict(self.overrides).get(account, self.limit)

    def applies_to(self, account: str) -> bool:
        return not self.accounts or account in self.accounts

    def fields(self, limit: Limit) -> dict[str, str]:
        """Template fields known when the threshold is written, before any value."""
        return {
            "threshold": self.format_value(limit.value),
            "condition": f"{'above' if limit.op == '>' else 'below'} {self.format_value(limit.value)}",
            "for": format_duration(limit.for_) if limit.for_ else "0s",
            "severity": limit.severity,
            "alertname": self.name,
            "longer_than": templates.humanize_duration(self.longer_than or 0.0),
            "target": format_duration(self.target or 0.0),
            "window": format_duration(self.window or 0.0),
            "response": self.response or "all",
        }

    def format_value(self, value: float) -> str:
        if self.spec.value == "duration":
            return templates.humanize_duration(value)
        if self.spec.value == "fraction":
            return templates.humanize_percentage(value)
        return f"{value:g}" if value != int(value) else str(int(value))

    def promql(self, limit: Limit, exclude_accounts: tuple[str, ...] = ()) -> str:
        """The alert expression for this threshold at one limit (the default, or an override's)."""
        shown = self.format_value(limit.value) if self.spec.value == "count" else f"{limit.value:g}"
        bound = f"{limit.op} {shown}"
        return self.spec.promql(self, bound, limit.value, exclude_accounts)


def breached(limit: Limit, value: float) -> bool:
    if not limit.op:
        return True  # condition kinds yield an instance only when the condition holds
    return value > limit.value if limit.op == ">" else value < limit.value


# A rule may cover several accounts with different limits (the default and the
# overrides that share its `for` and severity): (accounts, limit) pairs, where
# accounts None is "every account the others do not name".
Parts = list[tuple[tuple[str, ...] | None, Limit]]


def go_template(template: str, threshold: Threshold, parts: Parts) -> str:
    """A summary or description as a Go template for the rule made of ``parts``."""
    return templates.go_template(
        template,
        threshold.spec.value,
        lambda field: [(accounts, threshold.fields(limit)[field]) for accounts, limit in parts],
    )
