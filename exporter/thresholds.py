"""Thresholds: what is wrong, written once in the YAML config, alerted on two ways.

A threshold names a *kind* of measurement (``chat_unread_messages``,
``unread_messages``, ``account_down``, ...), a comparison (``above``/``below``
a value), a ``for`` duration, a severity, optional summary/description text,
optional narrowing (accounts, chat types, chats by id/name regex) and optional
per-account overrides of the value, ``for`` and severity.

Each kind is defined here once, with both of its meanings side by side:
the PromQL expression that :mod:`exporter.rules` writes into a Prometheus
rule file, and the Python function that :mod:`exporter.alerting` evaluates on
each snapshot. Keeping them together is what keeps the two modes in step;
the end-to-end tests fire both against the same data.

Summary and description text may use placeholders such as ``{account}``,
``{chat_name}`` or ``{value}``; they become Go template actions in the rule
file and plain substitutions in the agent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .model import CHAT_TYPES, GROUP
from .schema import (
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

if TYPE_CHECKING:  # snapshot imports config, which imports this module
    from .snapshot import AccountState, DiscoveryState

Labels = dict[str, str]
# One measured thing before comparison: its labels (besides alertname/severity),
# its value, and the extra template fields that are not labels (chat_name).
Instance = tuple[Labels, float, Mapping[str, str]]


# --- kinds -------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    scope: str  # "account", "chat", "group" or "session": which labels an alert carries
    value: str  # "count", "duration" (above only) or "none" (a condition, no value)
    summary: str
    description: str


_ACCOUNT_AGGREGATES = {
    "unread_messages": ("whatsgate_unread_messages", "unread_messages", "unread messages"),
    "chats": ("whatsgate_chats", "chats", "chats"),
    "chats_unread": ("whatsgate_chats_unread", "chats_unread", "chats with unread messages"),
    "chats_read_only": ("whatsgate_chats_read_only", "read_only", "read-only chats"),
    "chats_muted": ("whatsgate_chats_muted", "muted", "muted chats"),
    "chats_pinned": ("whatsgate_chats_pinned", "pinned", "pinned chats"),
}

KINDS: dict[str, Kind] = {
    **{
        name: Kind(
            "account",
            "count",
            f"{{value}} {what} on WhatsApp account {{account}}",
            f"WhatsApp account {{account}} ({{whatsapp_id}}) has {{value}} {what} ({{condition}}).",
        )
        for name, (_, _, what) in _ACCOUNT_AGGREGATES.items()
    },
    "chat_unread_messages": Kind(
        "chat",
        "count",
        '{value} unread messages in {chat_type} "{chat_name}" on {account}',
        'Chat "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " unread messages ({condition}).",
    ),
    "group_participants": Kind(
        "group",
        "count",
        'Group "{chat_name}" on {account} has {value} participants',
        'Group "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " participants ({condition}).",
    ),
    "group_admins": Kind(
        "group",
        "count",
        'Group "{chat_name}" on {account} has {value} admins',
        'Group "{chat_name}" ({chat_id}) on WhatsApp account {account} ({whatsapp_id}) has {value}'
        " admins and super-admins ({condition}).",
    ),
    "account_down": Kind(
        "account",
        "none",
        "WhatsGate polls of {account} are failing",
        "get-chats for WhatsApp account {account} ({whatsapp_id}) has failed for at least {for};"
        " whatsgate_poll_errors_total tells the reason.",
    ),
    "stale": Kind(
        "account",
        "duration",
        "No fresh WhatsGate data for {account} for {value}",
        "The last successful poll of WhatsApp account {account} ({whatsapp_id}) was {value} ago"
        " ({condition}).",
    ),
    "session_not_ready": Kind(
        "session",
        "none",
        "WhatsApp session of {account} is {status}, not READY",
        "sessions-get reports status {status} for WhatsApp account {account} ({whatsapp_id});"
        " AUTH means the session waits for a QR authorisation.",
    ),
}

_SCOPE_FIELDS = {
    "account": {"account", "whatsapp_id"},
    "chat": {"account", "whatsapp_id", "chat_id", "chat_type", "chat_name"},
    "group": {"account", "whatsapp_id", "chat_id", "chat_name"},
    "session": {"account", "whatsapp_id", "status"},
}
_COMMON_FIELDS = {"value", "threshold", "condition", "for", "severity", "alertname"}


# --- the configured thresholds -----------------------------------------------


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

    @property
    def spec(self) -> Kind:
        return KINDS[self.kind]

    def limit_for(self, account: str) -> Limit:
        return dict(self.overrides).get(account, self.limit)

    def applies_to(self, account: str) -> bool:
        return not self.accounts or account in self.accounts

    def chat_matches(self, chat_id: str, name: str) -> bool:
        return not self.chats or any(p.search(chat_id) or p.search(name) for p in self.chats)

    def fields(self, limit: Limit) -> dict[str, str]:
        """Template fields known when the threshold is written, before any value."""
        return {
            "threshold": self.format_value(limit.value),
            "condition": f"{'above' if limit.op == '>' else 'below'} {self.format_value(limit.value)}",
            "for": format_duration(limit.for_) if limit.for_ else "0s",
            "severity": limit.severity,
            "alertname": self.name,
        }

    def format_value(self, value: float) -> str:
        if self.spec.value == "duration":
            return humanize_duration(value)
        return f"{value:g}" if value != int(value) else str(int(value))


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEVERITY_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
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
            raise ConfigError(f"{path}below", "stale takes 'above: DURATION' only")
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
    allowed = _SCOPE_FIELDS[scope] | _COMMON_FIELDS
    for match in _PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in allowed:
            known = ", ".join("{" + f + "}" for f in sorted(allowed))
            raise ConfigError(f"{path}{key}", f"unknown placeholder {match.group(0)} (known here: {known})")
    return text


def _threshold(raw: Any, path: str) -> Threshold:
    if not isinstance(raw, dict):
        raise ConfigError(path.rstrip("."), f"expected a mapping, got {type_name(raw)}")
    check_keys(
        raw,
        {
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
        },
        path,
    )
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
    if chat_types and kind_name not in _ACCOUNT_AGGREGATES and kind_name != "chat_unread_messages":
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
    )


def parse_thresholds(raw: Any) -> tuple[Threshold, ...]:
    """Validate the ``thresholds:`` section (a list); every problem names its key path."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("thresholds", f"expected a list of thresholds, got {type_name(raw)}")
    return tuple(_threshold(item, f"thresholds[{i}].") for i, item in enumerate(raw))


# --- templates ------------------------------------------------------------------


def render_text(template: str, fields: Mapping[str, str]) -> str:
    """The agent's substitution of ``{placeholder}`` fields."""
    return _PLACEHOLDER_RE.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


# A rule may cover several accounts with different limits (the default and the
# overrides that share its `for` and severity): (accounts, limit) pairs, where
# accounts None is "every account the others do not name".
Parts = list[tuple[tuple[str, ...] | None, Limit]]


def go_template(template: str, threshold: Threshold, parts: Parts) -> str:
    """The same text as a Prometheus (Go) template: labels and $value come from the alert.

    Fields fixed by the config (``{threshold}``, ``{for}``, ...) are written
    literally, or as an ``if`` on the account where the rule's parts differ.
    """
    value = "{{ $value | humanizeDuration }}" if threshold.spec.value == "duration" else "{{ $value }}"
    actions = {
        "account": "{{ $labels.account }}",
        "whatsapp_id": "{{ $labels.whatsapp_id }}",
        "chat_id": "{{ $labels.chat_id }}",
        "chat_type": "{{ $labels.chat_type }}",
        "chat_name": "{{ $labels.name }}",
        "status": "{{ $labels.status }}",
        "value": value,
    }
    out = []
    pos = 0
    for match in _PLACEHOLDER_RE.finditer(template):
        # A literal '{' right before an action would read as '{{{': escape it too.
        out.append(_go_literal(template[pos : match.start()], before_action=True))
        field = match.group(1)
        out.append(actions.get(field) or _go_field(threshold, parts, field))
        pos = match.end()
    out.append(_go_literal(template[pos:]))
    return "".join(out)


def _go_field(threshold: Threshold, parts: Parts, field: str) -> str:
    values = [(accounts, threshold.fields(limit)[field]) for accounts, limit in parts]
    if len({v for _, v in values}) == 1:
        return _go_literal(values[0][1])
    # The part for "every other account" (or else the last one) is the else branch.
    values.sort(key=lambda part: part[0] is None)
    *named, (_, fallback) = values
    out = ""
    for i, (accounts, text) in enumerate(named):
        names = " ".join(_string(a) for a in accounts or ())
        out += f"{{{{ {'if' if i == 0 else 'else if'} eq $labels.account {names} }}}}{_go_literal(text)}"
    return out + f"{{{{ else }}}}{_go_literal(fallback)}{{{{ end }}}}"


def _go_literal(text: str, before_action: bool = False) -> str:
    """Literal text in a Go template, where '{{' would start an action."""
    text = text.replace("{{", "{{`{{`}}")
    if before_action and text.endswith("{"):
        text = text[:-1] + "{{`{`}}"
    return text


def humanize_duration(seconds: float) -> str:
    """As Prometheus's humanizeDuration template function writes it (e.g. '16m 40s')."""
    if not math.isfinite(seconds) or abs(seconds) < 1:
        return f"{seconds:.4g}s"
    sign, v = ("-", -seconds) if seconds < 0 else ("", seconds)
    whole = int(v)
    days, hours, minutes, secs = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{v:.4g}s"


# --- the two meanings of each kind: PromQL, and Python on a snapshot ---------------


def _re_alternation(values: tuple[str, ...]) -> str:
    return "|".join(re.escape(v) for v in values)


def _string(value: str) -> str:
    """A PromQL string literal."""
    return json.dumps(value, ensure_ascii=False)


def promql(threshold: Threshold, limit: Limit, exclude_accounts: tuple[str, ...] = ()) -> str:
    """The alert expression for one threshold (and one override, narrowed to its accounts)."""
    matchers = []
    if threshold.accounts:
        matchers.append(f"account=~{_string(_re_alternation(threshold.accounts))}")
    if exclude_accounts:
        matchers.append(f"account!~{_string(_re_alternation(exclude_accounts))}")
    if threshold.chat_types:
        matchers.append(f"chat_type=~{_string('|'.join(threshold.chat_types))}")
    kind = threshold.kind
    if kind == "session_not_ready":
        return "whatsgate_session_status{" + ", ".join([*matchers, 'status!="READY"']) + "} == 1"
    sel = "{" + ", ".join(matchers) + "}" if matchers else ""
    if kind == "account_down":
        return f"whatsgate_up{sel} == 0"
    if kind == "stale":
        return f"time() - whatsgate_last_success_timestamp_seconds{sel} > {limit.value:g}"
    bound = f"{limit.op} {threshold.format_value(limit.value)}"
    if kind in _ACCOUNT_AGGREGATES:
        return f"sum without (chat_type) ({_ACCOUNT_AGGREGATES[kind][0]}{sel}) {bound}"
    info = "whatsgate_chat_info"
    if threshold.chats:
        # Prometheus anchors regexes, Python's re.search does not: pad with .* that also
        # crosses newlines, as a name may hold one.
        regex = _string("|".join(f"(?s:.*)(?:{p.pattern})(?s:.*)" for p in threshold.chats))
        info = f"({info}{{name=~{regex}}} or {info}{{chat_id=~{regex}}})"
    metric = {
        "chat_unread_messages": "whatsgate_chat_unread_messages",
        "group_participants": "whatsgate_group_participants",
        "group_admins": "whatsgate_group_admins",
    }[kind]
    # The join brings the chat's name into the alert, so the summary can say it.
    # job and instance in on(): two exporters scraping one account stay two alerts, not an error.
    return f"({metric}{sel} * on (job, instance, whatsapp_id, chat_id) group_left (name) {info}) {bound}"


def _account_labels(state: AccountState) -> Labels:
    return {"whatsapp_id": state.account.whatsapp_id, "account": state.account.name}


def instances(
    threshold: Threshold, state: AccountState, now: float, stale_after: float
) -> Iterator[Instance]:
    """What the threshold measures on one account's snapshot, mirroring :func:`promql`.

    Only what the exporter exports is measured (selected chats, dropped when
    stale), so that a rule in Prometheus and the agent see the same series.
    """
    labels = _account_labels(state)
    kind = threshold.kind
    data = state.data
    if kind == "account_down":
        if not state.up:
            yield labels, 0.0, {}
    elif kind == "stale":
        if state.last_success is not None:
            yield labels, now - state.last_success, {}
    elif kind in _ACCOUNT_AGGREGATES:
        if data is not None:
            attr = _ACCOUNT_AGGREGATES[kind][1]
            types = threshold.chat_types or CHAT_TYPES
            yield labels, float(sum(getattr(data.summary[t], attr) for t in types)), {}
    elif data is not None and not state.is_stale(now, stale_after):
        for chat in data.selection.chats:
            if not threshold.chat_matches(chat.id, chat.name):
                continue
            extra = {"chat_name": chat.name}
            if kind == "chat_unread_messages":
                if not threshold.chat_types or chat.chat_type in threshold.chat_types:
                    chat_labels = {
                        **labels,
                        "chat_id": chat.id,
                        "chat_type": chat.chat_type,
                        "name": chat.name,
                    }
                    yield chat_labels, float(chat.unread), extra
            elif chat.chat_type == GROUP and chat.group is not None:
                value = chat.group.member_count if kind == "group_participants" else chat.group.admins
                if value is not None:
                    yield {**labels, "chat_id": chat.id, "name": chat.name}, float(value), extra


def session_instances(discovery: DiscoveryState) -> Iterator[Instance]:
    for account, session in discovery.sessions:
        if session.status != "READY":
            labels = {"whatsapp_id": account.whatsapp_id, "account": account.name, "status": session.status}
            yield labels, 1.0, {}


def breached(limit: Limit, value: float) -> bool:
    if not limit.op:
        return True  # condition kinds yield an instance only when the condition holds
    return value > limit.value if limit.op == ">" else value < limit.value
