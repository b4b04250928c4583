"""The ``thresholds:`` section (:class:`exporter.alerting.thresholds.Threshold`), and its checks against
the other sections: the accounts it names, the waiting buckets it counts, what privacy mode hides.

Each threshold is checked on its own, so one run reports every bad one, each named by its
position and alert name: ``thresholds[3] (CustomerWaiting).metric: ...``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta

from ..alerting.kinds import COMMON_FIELDS, KINDS, SCOPE_FIELDS
from ..alerting.kinds.base import Kind
from ..alerting.templates import PLACEHOLDER_RE
from ..alerting.thresholds import Limit, Threshold
from ..model import CHAT_TYPES
from ..snapshot.privacy import DROP, PLAIN, Privacy
from ..snapshot.replies import RESPONSE_TYPES
from .schema import (
    ConfigError,
    Parts,
    Regex,
    Schema,
    Text,
    format_duration,
    parse_duration,
    read,
    type_name,
)

# Kinds counting one bucket of chats by how long they have waited, and which buckets those are.
_LONGER_THAN = {"chats_waiting": "waiting.buckets", "chats_unanswered": "replies.buckets"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEVERITY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
# Prometheus evaluates regexes with RE2, which has no look-around or back-references.
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")


class _Limit(Schema):
    """What an override may change; UNSET tells a key left out from one given as null."""

    above: Any = UNSET
    below: Any = UNSET
    for_: Any = msgspec.field(name="for", default=UNSET)
    severity: Text | None = None


class _Threshold(_Limit, kw_only=True):
    name: Text
    metric: Text
    summary: Text | None = None
    description: Text | None = None
    accounts: tuple[Any, ...] | None = None  # each one str() of what is written, not ${VAR}-expanded
    chat_types: tuple[Any, ...] | None = None
    chats: tuple[Regex, ...] | None = None
    overrides: dict[Any, Any] | None = None
    # Read once the metric is known to take them (else: "only ... takes").
    longer_than: Any = UNSET
    target: Any = UNSET
    window: Any = UNSET
    response: Any = UNSET


def _limit(raw: _Limit, path: str, kind: Kind, base: Limit | None) -> Limit:
    has_above, has_below = raw.above is not UNSET, raw.below is not UNSET
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
    elif kind.value == "fraction":
        if has_above:
            raise ConfigError(f"{path}above", f"{kind.name} takes 'below: FRACTION' only, e.g. below: 0.9")
        number = raw.below
        if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number <= 1:
            raise ConfigError(f"{path}below", f"expected a fraction in (0, 1], e.g. 0.9, got {number!r}")
        op, value = "<", float(number)
    elif kind.value == "duration":
        if has_below:
            raise ConfigError(f"{path}below", f"{kind.name} takes 'above: DURATION' only")
        op, value = ">", parse_duration(raw.above, f"{path}above")
    else:
        key = "above" if has_above else "below"
        number = raw.above if has_above else raw.below
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ConfigError(f"{path}{key}", f"expected a number, got {type_name(number)}")
        op, value = (">" if has_above else "<"), float(number)
    severity = raw.severity if raw.severity is not None else base.severity if base else "warning"
    if not _SEVERITY_RE.match(severity):
        raise ConfigError(
            f"{path}severity", f"expected a lower-case word such as warning or critical, got {severity!r}"
        )
    if raw.for_ is UNSET:
        for_ = base.for_ if base else 0.0
    else:
        for_ = 0.0 if raw.for_ in ("0", "0s") else parse_duration(raw.for_, f"{path}for")
    return Limit(op=op, value=value, for_=for_, severity=severity)


def _text(text: str | None, key: str, path: str, default: str, scope: str) -> str:
    text = default if text is None else text
    allowed = SCOPE_FIELDS[scope] | COMMON_FIELDS
    for match in PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in allowed:
            known = ", ".join("{" + f + "}" for f in sorted(allowed))
            raise ConfigError(f"{path}{key}", f"unknown placeholder {match.group(0)} (known here: {known})")
    return text


def _threshold(item: Any, path: str) -> Threshold:
    raw = read(item, path.rstrip("."), _Threshold)
    chat_types, chats = raw.chat_types or (), raw.chats or ()
    name, kind_name = raw.name, raw.metric
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"{path}name", f"expected a CamelCase alert name like UnreadMessagesHigh, got {name!r}"
        )
    if kind_name not in KINDS:
        raise ConfigError(f"{path}metric", f"unknown metric {kind_name!r} (known: {', '.join(KINDS)})")
    kind = KINDS[kind_name]
    limit = _limit(raw, path, kind, None)

    for i, chat_type in enumerate(chat_types):
        if chat_type not in CHAT_TYPES:
            raise ConfigError(f"{path}chat_types[{i}]", f"expected contact or group, got {chat_type!r}")
    if chat_types and not kind.narrows_chat_types:
        raise ConfigError(f"{path}chat_types", f"metric {kind_name} has no chat types to narrow")
    for i, pattern in enumerate(chats):
        if _NOT_RE2.search(pattern.pattern):
            raise ConfigError(
                f"{path}chats[{i}]", "look-arounds and back-references do not work in Prometheus"
            )
    if chats and kind.scope not in ("chat", "group"):
        raise ConfigError(f"{path}chats", f"metric {kind_name} is not per chat; chats cannot narrow it")

    longer_than = target = window = response = None
    if kind_name in _LONGER_THAN:
        if raw.longer_than is UNSET:
            raise ConfigError(f"{path}longer_than", f"required: one of {_LONGER_THAN[kind_name]}, e.g. 15m")
        longer_than = parse_duration(raw.longer_than, f"{path}longer_than")
    elif raw.longer_than is not UNSET:
        raise ConfigError(f"{path}longer_than", f"only {' and '.join(_LONGER_THAN)} take longer_than")
    if kind_name == "responses_within":
        for key, example in (("target", "15m"), ("window", "1d")):
            if getattr(raw, key) is UNSET:
                raise ConfigError(f"{path}{key}", f"required: a duration, e.g. {example}")
        target = parse_duration(raw.target, f"{path}target")
        window = parse_duration(raw.window, f"{path}window")
        if raw.response is not UNSET:
            response = read(raw.response, f"{path}response", Text)
            if response not in RESPONSE_TYPES:
                raise ConfigError(f"{path}response", f"expected first or next, got {response!r}")
    else:
        for key in ("target", "window", "response"):
            if getattr(raw, key) is not UNSET:
                raise ConfigError(f"{path}{key}", f"only responses_within takes {key}")

    overrides = []
    for account, override in (raw.overrides or {}).items():
        opath = f"{path}overrides.{account}"
        overrides.append((str(account), _limit(read(override, opath, _Limit), f"{opath}.", kind, limit)))
    return Threshold(
        name=name,
        kind=kind_name,
        limit=limit,
        summary=_text(raw.summary, "summary", path, kind.summary, kind.scope),
        description=_text(raw.description, "description", path, kind.description, kind.scope),
        accounts=tuple(map(str, raw.accounts or ())),
        chat_types=chat_types,
        chats=chats,
        overrides=tuple(overrides),
        longer_than=longer_than,
        target=target,
        window=window,
        response=response,
    )


def parse_thresholds(
    raw: Any,
    accounts: Collection[str] | None = None,
    buckets: tuple[float, ...] | None = None,
    privacy: Privacy | None = None,
    reply_buckets: tuple[float, ...] | None = None,
) -> tuple[Threshold, ...]:
    """Validate the ``thresholds:`` section (a list), each threshold on its own.

    ``accounts`` (the names polled), ``buckets`` (``waiting.buckets``), ``privacy`` and
    ``reply_buckets`` (``replies.buckets``) are what the thresholds must agree with; ``None``
    skips that check (accounts may still be discovered, or that section failed and has its own
    error).
    """
    raw = read(raw, "thresholds", Annotated[list[Any], Meta(description="a list of thresholds")] | None) or []
    parts = Parts()
    for i, item in enumerate(raw):
        parts.parse(i, _checked, item, _label(i, item), accounts, buckets, privacy, reply_buckets)
    parts.parse("distinct", _check_distinct, [(_label(i, raw[i]), t) for i, t in parts.items()])
    parts.done()
    return tuple(t for i, t in parts.items() if i != "distinct")


def _label(i: int, raw: Any) -> str:
    """``thresholds[3] (CustomerWaiting)``: the position, and the alert name once it is a valid one."""
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"thresholds[{i}]" + (f" ({name})" if isinstance(name, str) and _NAME_RE.match(name) else "")


def _checked(
    raw: Any,
    label: str,
    accounts: Collection[str] | None,
    buckets: tuple[float, ...] | None,
    privacy: Privacy | None,
    reply_buckets: tuple[float, ...] | None,
) -> Threshold:
    threshold = _threshold(raw, f"{label}.")
    if accounts is not None:
        named = [(f"{label}.accounts[{j}]", a) for j, a in enumerate(threshold.accounts)]
        for path, account in named + [(f"{label}.overrides.{a}", a) for a, _ in threshold.overrides]:
            if account not in accounts:
                # A threshold naming an account nobody polls would never fire: say so at start-up.
                known = ", ".join(sorted(accounts))
                raise ConfigError(path, f"no account is named {account!r} (accounts: {known})")
    # longer_than and target name one of the exported buckets: any other value would match no series.
    replies = threshold.kind in ("chats_unanswered", "responses_within")
    section, known_buckets = ("replies.buckets", reply_buckets) if replies else ("waiting.buckets", buckets)
    for key, value in (("longer_than", threshold.longer_than), ("target", threshold.target)):
        if known_buckets is not None and value is not None and value not in known_buckets:
            known = ", ".join(format_duration(b) for b in known_buckets)
            raise ConfigError(f"{label}.{key}", f"{format_duration(value)} is not one of {section} ({known})")
    if privacy is not None:
        _check_privacy(threshold, label, privacy)
    return threshold


def _check_privacy(threshold: Threshold, label: str, privacy: Privacy) -> None:
    """Refuse a threshold that privacy mode leaves with nothing to match or alert on.

    A ``chats:`` regex would be matched against hashed or empty values (by Prometheus
    and by the agent alike), and a per-chat kind has no series under ``chat_ids: drop``.
    """
    if privacy.chat_ids == DROP and threshold.spec.scope in ("chat", "group"):
        raise ConfigError(
            f"{label}.metric",
            f"{threshold.kind} is per chat, and privacy.chat_ids is drop: there are no per-chat series"
            " to alert on (use an aggregate such as unread_messages or oldest_waiting)",
        )
    modes = (("chat_ids", privacy.chat_ids), ("names", privacy.names))
    hidden = [f"privacy.{what} is {mode}" for what, mode in modes if mode != PLAIN]
    if threshold.chats and hidden:
        raise ConfigError(f"{label}.chats", f"cannot match chat ids or names while {hidden[0]}")


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


def _check_distinct(thresholds: list[tuple[str, Threshold]]) -> None:
    """Two thresholds that could raise the same alert (name, severity, account) would give two
    identical alert series: refuse them, as Prometheus's duplicate-rule lint would."""
    for j, (label, later) in enumerate(thresholds):
        for earlier_label, earlier in thresholds[:j]:
            if earlier.name != later.name:
                continue
            mine, theirs = _coverage(later), _coverage(earlier)
            for severity in sorted(mine.keys() & theirs.keys()):
                if _overlap(mine[severity], theirs[severity]):
                    raise ConfigError(
                        f"{label}.name",
                        f"{earlier_label} already raises {later.name} with severity {severity} for the same"
                        " accounts; use a different name or severity, or overrides for per-account values",
                    )
