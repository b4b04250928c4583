"""Thresholds: what is wrong, written once in the YAML config, alerted on two ways.

A threshold names a *kind* of measurement (:mod:`exporter.alerting.kinds`), a
comparison (``above``/``below`` a value), a ``for`` duration, a severity,
optional summary/description text, optional narrowing (accounts, chat types,
chats by id/name regex) and optional per-account overrides of the value,
``for`` and severity. This module parses the ``thresholds:`` section; every
problem names its key path.

Summary and description text may use placeholders such as ``{account}``,
``{chat_name}`` or ``{value}``; they become Go template actions in the rule
file and plain substitutions in the agent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config.schema import (
    ConfigError,
    check_keys,
    compile_regex,
    format_duration,
    get_duration,
    get_list,
    get_mapping,
    get_str,
    parse_duration,
    type_name,
)
from ..model import CHAT_TYPES
from . import templates
from .kinds import COMMON_FIELDS, KINDS, SCOPE_FIELDS, Kind


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
    longer_than: float | None = None  # chats_waiting: which waiting.buckets bucket it counts

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
        }

    def format_value(self, value: float) -> str:
        if self.spec.value == "duration":
            return templates.humanize_duration(value)
        return f"{value:g}" if value != int(value) else str(int(value))

    def promql(self, limit: Limit, exclude_accounts: tuple[str, ...] = ()) -> str:
        """The alert expression for this threshold at one limit (the default, or an override's)."""
        shown = f"{limit.value:g}" if self.spec.value == "duration" else self.format_value(limit.value)
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
        threshold.spec.value == "duration",
        lambda field: [(accounts, threshold.fields(limit)[field]) for accounts, limit in parts],
    )


# --- parsing ----------------------------------------------------------------------------------

_KEYS = {
    "name",
    "metric",
    "above",
    "below",
    "for",
    "severity",
    "summary",
    "description",
    "accounts",
    "chat_types",
    "chats",
    "overrides",
    "longer_than",
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEVERITY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
# Prometheus evaluates regexes with RE2, which has no look-around or back-references.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")


def _limit(raw: Mapping[str, Any], path: str, kind: Kind, base: Limit | None) -> Limit:
    has_above, has_below = "above" in raw, "below" in raw
    if kind.value == "none":
        if has_above or has_below:
            raise ConfigError(f"{path}{'above' if has_above else 'below'}", "this metric takes no value")
        op, value = "", 0.0
    elif has_above and has_below:
        raise ConfigError(f"{path}above", "set either above or below, not both")
    elif not (has_above or has_below):
        if base is None:
            raise ConfigError(f"{path}above", "required: set above or below")
        op, value = base.op, base.value
    elif kind.value == "duration":
        if has_below:
            raise ConfigError(f"{path}below", f"{kind.name} takes 'above: DURATION' only")
        op, value = ">", parse_duration(raw["above"], f"{path}above")
    else:
        key = "above" if has_above else "below"
        number = raw[key]
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ConfigError(f"{path}{key}", f"expected a number, got {type_name(number)}")
        op, value = (">" if has_above else "<"), float(number)
    severity = get_str(raw, "severity", path, base.severity if base else "warning")
    if not _SEVERITY_RE.match(severity):
        raise ConfigError(
            f"{path}severity", f"expected a lower-case word such as warning or critical, got {severity!r}"
        )
    return Limit(op=op, value=value, for_=_for(raw, path, base), severity=severity)


def _for(raw: Mapping[str, Any], path: str, base: Limit | None) -> float:
    if "for" not in raw:
        return base.for_ if base else 0.0
    if raw["for"] in ("0", "0s"):
        return 0.0
    return get_duration(raw, "for", path, 0.0)


def _text(raw: Mapping[str, Any], key: str, path: str, default: str, scope: str) -> str:
    text = get_str(raw, key, path, default)
    allowed = SCOPE_FIELDS[scope] | COMMON_FIELDS
    for match in templates.PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in allowed:
            known = ", ".join("{" + f + "}" for f in sorted(allowed))
            raise ConfigError(f"{path}{key}", f"unknown placeholder {match.group(0)} (known here: {known})")
    return text


def _threshold(raw: Any, path: str) -> Threshold:
    if not isinstance(raw, dict):
        raise ConfigError(path.rstrip("."), f"expected a mapping, got {type_name(raw)}")
    check_keys(raw, _KEYS, path)
    name = get_str(raw, "name", path)
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{path}name", f"expected a CamelCase alert name like UnreadMessagesHigh, got {name!r}"
        )
    kind_name = get_str(raw, "metric", path)
    if kind_name not in KINDS:
        raise ConfigError(f"{path}metric", f"unknown metric {kind_name!r} (known: {', '.join(KINDS)})")
    kind = KINDS[kind_name]
    limit = _limit(raw, path, kind, None)

    accounts = tuple(str(a) for a in get_list(raw, "accounts", path))
    chat_types = tuple(get_list(raw, "chat_types", path))
    for i, chat_type in enumerate(chat_types):
        if chat_type not in CHAT_TYPES:
            raise ConfigError(f"{path}chat_types[{i}]", f"expected contact or group, got {chat_type!r}")
    if chat_types and not kind.narrows_chat_types:
        raise ConfigError(f"{path}chat_types", f"metric {kind_name} has no chat types to narrow")
    chats = []
    for i, item in enumerate(get_list(raw, "chats", path)):
        pattern = compile_regex(item, f"{path}chats[{i}]")
        if _NOT_RE2.search(pattern.pattern):
            raise ConfigError(
                f"{path}chats[{i}]", "look-arounds and back-references do not work in Prometheus"
            )
        chats.append(pattern)
    if chats and kind.scope not in ("chat", "group"):
        raise ConfigError(f"{path}chats", f"metric {kind_name} is not per chat; chats cannot narrow it")

    longer_than = None
    if kind_name == "chats_waiting":
        if "longer_than" not in raw:
            raise ConfigError(f"{path}longer_than", "required: one of waiting.buckets, e.g. 15m")
        longer_than = parse_duration(raw["longer_than"], f"{path}longer_than")
    elif "longer_than" in raw:
        raise ConfigError(f"{path}longer_than", "only chats_waiting takes longer_than")

    overrides = []
    for account, override in get_mapping(raw, "overrides", path).items():
        opath = f"{path}overrides.{account}."
        if not isinstance(override, dict):
            raise ConfigError(opath.rstrip("."), f"expected a mapping, got {type_name(override)}")
        check_keys(override, {"above", "below", "for", "severity"}, opath)
        overrides.append((str(account), _limit(override, opath, kind, limit)))
    return Threshold(
        name=name,
        kind=kind_name,
        limit=limit,
        summary=_text(raw, "summary", path, kind.summary, kind.scope),
        description=_text(raw, "description", path, kind.description, kind.scope),
        accounts=accounts,
        chat_types=chat_types,
        chats=tuple(chats),
        overrides=tuple(overrides),
        longer_than=longer_than,
    )


def parse_thresholds(raw: Any) -> tuple[Threshold, ...]:
    """Validate the ``thresholds:`` section (a list); every problem names its key path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("thresholds", f"expected a list of thresholds, got {type_name(raw)}")
    thresholds = tuple(_threshold(item, f"thresholds[{i}].") for i, item in enumerate(raw))
    _check_distinct(thresholds)
    return thresholds


# Which accounts a threshold raises one severity for: (only these, or None for every account;
# minus these).
Coverage = tuple[frozenset[str] | None, frozenset[str]]


def _coverage(threshold: Threshold) -> dict[str, Coverage]:
    """Severity -> the accounts it is raised for, after overrides that change the severity."""
    moved = {
        a: limit.severity for a, limit in threshold.overrides if limit.severity != threshold.limit.severity
    }
    only = frozenset(threshold.accounts) or None
    out: dict[str, Coverage] = {threshold.limit.severity: (only, frozenset(moved))}
    for account, severity in moved.items():
        if threshold.applies_to(account):
            included, excluded = out.get(severity, (frozenset(), frozenset()))
            out[severity] = ((included or frozenset()) | {account}, excluded)
    return out


def _overlap(a: Coverage, b: Coverage) -> bool:
    (only_a, minus_a), (only_b, minus_b) = a, b
    if only_a is None and only_b is None:
        return True  # both cover every account (discovery may add any)
    if only_a is None:
        common = only_b
    elif only_b is None:
        common = only_a
    else:
        common = only_a & only_b
    return bool(common is not None and common - minus_a - minus_b)


def _check_distinct(thresholds: tuple[Threshold, ...]) -> None:
    """Two thresholds that could raise the same alert (name, severity, account) would give two
    identical alert series: refuse them, as Prometheus's duplicate-rule lint would."""
    for j, later in enumerate(thresholds):
        for i, earlier in enumerate(thresholds[:j]):
            if earlier.name != later.name:
                continue
            mine, theirs = _coverage(later), _coverage(earlier)
            for severity in sorted(mine.keys() & theirs.keys()):
                if _overlap(mine[severity], theirs[severity]):
                    raise ConfigError(
                        f"thresholds[{j}].name",
                        f"thresholds[{i}] already raises {later.name} with severity {severity} for the same"
                        " accounts; use a different name or severity, or overrides for per-account values",
                    )
