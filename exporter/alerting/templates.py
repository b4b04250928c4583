"""Alert text: ``{placeholder}`` templates, filled in by the agent or written as Go templates for rules."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence

PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")

# The alert's own labels, as Go template actions; {value} is the query's value.
_ACTIONS = {
    "account": "{{ $labels.account }}",
    "whatsapp_id": "{{ $labels.whatsapp_id }}",
    "chat_id": "{{ $labels.chat_id }}",
    "chat_type": "{{ $labels.chat_type }}",
    "chat_name": "{{ $labels.name }}",
    # A chat without a name (privacy.names: drop) is named by its id, not as "": the same
    # choice as chat_fields below, the name label being absent then.
    "chat": '{{ if $labels.name }}"{{ $labels.name }}"{{ else }}{{ $labels.chat_id }}{{ end }}',
    "chat_with_id": (
        '{{ if $labels.name }}"{{ $labels.name }}" ({{ $labels.chat_id }})'
        "{{ else }}{{ $labels.chat_id }}{{ end }}"
    ),
    "status": "{{ $labels.status }}",
    # An account without a name of its own (discovered, or listed without one) has its id as
    # its name: said once, not as "7999 (7999)". The same choice as account_fields below.
    "account_with_id": (
        "{{ $labels.account }}{{ if ne $labels.account $labels.whatsapp_id }}"
        " ({{ $labels.whatsapp_id }}){{ end }}"
    ),
}


def account_fields(account: str, whatsapp_id: str) -> dict[str, str]:
    """The agent's text field naming an account, as the rule file's action above writes it."""
    return {"account_with_id": account if account == whatsapp_id else f"{account} ({whatsapp_id})"}


def chat_fields(chat_id: str, name: str) -> dict[str, str]:
    """The agent's text fields naming a chat, as the rule file's actions above write them."""
    return {
        "chat_name": name,
        "chat": f'"{name}"' if name else chat_id,
        "chat_with_id": f'"{name}" ({chat_id})' if name else chat_id,
    }


def render_text(template: str, fields: Mapping[str, str]) -> str:
    """The agent's substitution of ``{placeholder}`` fields."""
    return PLACEHOLDER_RE.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def promql_string(value: str) -> str:
    """A PromQL (and Go template) string literal."""
    return json.dumps(value, ensure_ascii=False)


def go_template(
    template: str,
    value_kind: str,
    fixed: Callable[[str], Sequence[tuple[tuple[str, ...] | None, str]]],
) -> str:
    """The same text as a Prometheus (Go) template: labels and $value come from the alert.

    Fields fixed by the config (``{threshold}``, ``{for}``, ...) come from
    ``fixed(field)``: one (accounts, text) pair per part of the rule, written
    literally, or as an ``if`` on the account where the parts differ.
    """
    value = {
        "duration": "{{ $value | humanizeDuration }}",
        "fraction": "{{ $value | humanizePercentage }}",
    }.get(value_kind, "{{ $value }}")
    out = []
    pos = 0
    for match in PLACEHOLDER_RE.finditer(template):
        # A literal '{' right before an action would read as '{{{': escape it too.
        out.append(_go_literal(template[pos : match.start()], before_action=True))
        field = match.group(1)
        action = value if field == "value" else _ACTIONS.get(field)
        out.append(action or _go_choice(list(fixed(field))))
        pos = match.end()
    out.append(_go_literal(template[pos:]))
    return "".join(out)


def _go_choice(values: list[tuple[tuple[str, ...] | None, str]]) -> str:
    if len({text for _, text in values}) == 1:
        return _go_literal(values[0][1])
    # The part for "every other account" (or else the last one) is the else branch.
    values.sort(key=lambda part: part[0] is None)
    *named, (_, fallback) = values
    out = ""
    for i, (accounts, text) in enumerate(named):
        names = " ".join(promql_string(a) for a in accounts or ())
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


def humanize_percentage(value: float) -> str:
    """As Prometheus's humanizePercentage writes it (Go's %.4g of value * 100, then %): 0.9 is 90%."""
    return f"{value * 100:.4g}%"
