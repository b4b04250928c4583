"""The per-chat families written straight to exposition text (format 0.0.4).

At 10,000 chats an account has ~33,000 per-chat samples, and building them as
prometheus-client families and rendering those with ``generate_latest`` costs
ten times the decoding of the answer: each sample is a namedtuple with a label
dict that is sorted, re-escaped and formatted one by one. Here each family
becomes one line template, made once per render from its
:class:`~exporter.metrics.definitions.MetricDef`: the label names in
``generate_latest``'s (sorted) order, the account's labels escaped once, and a
``%s`` for each per-chat label and the value.

:class:`~exporter.metrics.collectors.ChatCollector` stays the reference
definition: tests/unit/test_fastrender.py requires this module's output to be
byte-identical to ``generate_latest`` of that collector for generated and fuzzed
snapshots. A new per-chat family is one more :class:`ChatFamily` row in
:data:`CHAT_FAMILIES` (in the collector's order); a family without a row, or any
other family, goes the reference way (:func:`exporter.metrics.render.render`),
and the differential test fails until the row exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from ..model import GROUP, Account, Chat
from . import definitions as d

# name, "# HELP/# TYPE" header, samples: what render.render makes of one family.
Family = tuple[str, bytes, bytes]


def escape(value: str) -> str:
    """Label-value escaping of the text format (what prometheus-client does for 0.0.4)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def header(definition: d.MetricDef) -> bytes:
    """The ``# HELP`` and ``# TYPE`` lines of a family, as generate_latest writes them."""
    name = definition.sample_name
    text = definition.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {definition.type}\n".encode()


# Small whole numbers (unread counts, participants) recur; their text is cached.
_SMALL = [floatToGoString(i) for i in range(4096)]


def number(value: float) -> str:
    """A sample value exactly as generate_latest formats it."""
    if type(value) is int and 0 <= value < 4096:
        return _SMALL[value]
    return floatToGoString(value)


@dataclass(frozen=True)
class ChatFamily:
    """One per-chat family: its definition, its value (None: no sample) and its per-chat labels."""

    definition: d.MetricDef
    value: Callable[[Chat], float | None]
    labels: Mapping[str, Callable[[Chat], str]]

    def template(self, account: Account) -> str:
        """``name{labels} %s`` with the account's labels filled in and ``%s`` for each chat label."""
        known = dict(zip(d.ACCOUNT_LABELS, account.labels, strict=True))
        parts = []
        for label in sorted(self.definition.label_names):
            text = "%s" if label in self.labels else escape(known[label]).replace("%", "%%")
            parts.append(f'{label}="{text}"')
        return f"{self.definition.sample_name}{{{','.join(parts)}}} %s\n"

    def render(self, account: Account, chats: Iterable[Chat]) -> Family:
        fmt = self.template(account)
        getters = [self.labels[label] for label in sorted(self.labels)]
        value = self.value
        lines = []
        append = lines.append
        for chat in chats:
            v = value(chat)
            if v is not None:
                append(fmt % (*(escape(get(chat)) for get in getters), number(v)))
        return self.definition.name, header(self.definition), "".join(lines).encode()


def _chat_id(chat: Chat) -> str:
    return chat.id


def _chat_type(chat: Chat) -> str:
    return chat.chat_type


def _name(chat: Chat) -> str:
    return chat.name


def _members(chat: Chat) -> float | None:
    return chat.group.member_count if chat.chat_type == GROUP and chat.group is not None else None


def _admins(chat: Chat) -> float | None:
    return chat.group.admins if chat.chat_type == GROUP and chat.group is not None else None


def _created(chat: Chat) -> float | None:
    group = chat.group
    return group.created if chat.chat_type == GROUP and group is not None and group.created else None


_CHAT = {"chat_id": _chat_id, "chat_type": _chat_type}

# In ChatCollector's order.
CHAT_FAMILIES: tuple[ChatFamily, ...] = (
    ChatFamily(d.CHAT_UNREAD, lambda c: c.unread, _CHAT),
    ChatFamily(d.CHAT_LAST_ACTIVITY, lambda c: c.last_activity, _CHAT),
    ChatFamily(d.CHAT_INFO, lambda c: 1, {**_CHAT, "name": _name}),
    ChatFamily(d.GROUP_PARTICIPANTS, _members, {"chat_id": _chat_id}),
    ChatFamily(d.GROUP_ADMINS, _admins, {"chat_id": _chat_id}),
    ChatFamily(d.GROUP_CREATED, _created, {"chat_id": _chat_id}),
)


def render_chats(account: Account, chats: Iterable[Chat]) -> tuple[Family, ...]:
    """The per-chat families of the selected chats, as ``render(ChatCollector(...))`` would give."""
    chats = tuple(chats)
    return tuple(family.render(account, chats) for family in CHAT_FAMILIES)
