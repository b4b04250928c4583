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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import utils

from ..model import GROUP, Account, Chat
from ..snapshot.waiting import Wait
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


# prometheus-client's own number formatting (untyped there; it returns str).
floatToGoString: Callable[[float], str] = utils.floatToGoString

# Small whole numbers (unread counts, participants) recur; their text is cached.
_SMALL = [floatToGoString(i) for i in range(4096)]


def number(value: float) -> str:
    """A sample value exactly as generate_latest formats it (``floatToGoString(float(value))``).

    The records hold whole numbers up to 2**53 (the parser's limit), whose float repr is
    always ``<digits>.0``; floatToGoString writes those of more than six digits the way Go
    does, ``1.734642665e+09``. Doing that on the digits directly is 4x faster; anything
    else takes floatToGoString itself.
    """
    if type(value) is int and 0 <= value <= 2**53:
        if value < 4096:
            return _SMALL[value]
        digits = str(value)
        if len(digits) <= 6:
            return f"{digits}.0"
        mantissa = f"{digits[0]}.{digits[1:]}0".rstrip("0.")
        return f"{mantissa}e+{len(digits) - 1:02d}"
    return floatToGoString(value)


@dataclass(frozen=True)
class ChatFamily:
    """One per-chat family: its definition, its value (None: no sample) and its per-chat labels.

    The per-chat labels must sort next to each other among the family's label names
    (they do: account < chat_* < name < whatsapp_id), so that each sample line is the
    account's part, the chat's part (shared by the families with the same chat labels)
    and the value.
    """

    definition: d.MetricDef
    value: Callable[[Chat, Mapping[str, Wait]], float | None]  # the chat, and the waits by chat id
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        names = sorted(self.definition.label_names)
        first = names.index(self.labels[0])
        if names[first : first + len(self.labels)] != sorted(self.labels):
            raise ValueError(f"{self.definition.name}: per-chat labels must sort next to each other")

    def frame(self, account: Account) -> tuple[str, str]:
        """What comes before and after the chat labels: ``name{account="..",`` and ``,whatsapp_id=".."} ``."""
        known = dict(zip(d.ACCOUNT_LABELS, account.labels, strict=True))
        names = sorted(self.definition.label_names)
        first = names.index(self.labels[0])
        before = [f'{n}="{escape(known[n])}",' for n in names[:first]]
        after = [f',{n}="{escape(known[n])}"' for n in names[first + len(self.labels) :]]
        return f"{self.definition.sample_name}{{{''.join(before)}", f"{''.join(after)}}} "

    def render(
        self, account: Account, chats: Sequence[Chat], labels: Sequence[str], waits: Mapping[str, Wait]
    ) -> Family:
        """``labels[i]`` is the text of the chat labels of ``chats[i]``."""
        before, after = self.frame(account)
        value = self.value
        lines = [
            f"{before}{text}{after}{number(v)}\n"
            for chat, text in zip(chats, labels, strict=True)
            if (v := value(chat, waits)) is not None
        ]
        return self.definition.name, header(self.definition), "".join(lines).encode()


_COLUMNS: dict[str, Callable[[Chat], str]] = {
    "chat_id": lambda c: c.id,
    "chat_type": lambda c: c.chat_type,
    "name": lambda c: c.name,
}


def chat_labels(
    names: tuple[str, ...], chats: Sequence[Chat], columns: dict[str, list[str]] | None = None
) -> list[str]:
    """Each chat's ``chat_id="..",chat_type=".."`` part (for the given label names).

    ``columns`` caches each label's escaped values across calls of one render.
    """
    columns = {} if columns is None else columns
    for n in names:
        if n not in columns:
            get = _COLUMNS[n]
            columns[n] = [escape(get(chat)) for chat in chats]
    fmt = ",".join(f'{n}="%s"' for n in sorted(names))
    return [fmt % texts for texts in zip(*(columns[n] for n in sorted(names)), strict=True)]


def _members(chat: Chat, _waits: Mapping[str, Wait]) -> float | None:
    return chat.group.member_count if chat.chat_type == GROUP and chat.group is not None else None


def _admins(chat: Chat, _waits: Mapping[str, Wait]) -> float | None:
    return chat.group.admins if chat.chat_type == GROUP and chat.group is not None else None


def _waiting_since(chat: Chat, waits: Mapping[str, Wait]) -> float | None:
    wait = waits.get(chat.id)
    return None if wait is None else wait.since


def _waiting_seconds(chat: Chat, waits: Mapping[str, Wait]) -> float | None:
    wait = waits.get(chat.id)
    return None if wait is None else wait.seconds


def _created(chat: Chat, _waits: Mapping[str, Wait]) -> float | None:
    group = chat.group
    return group.created if chat.chat_type == GROUP and group is not None and group.created else None


# In ChatCollector's order. The label names are those of each definition after the account's.
CHAT_FAMILIES: tuple[ChatFamily, ...] = (
    ChatFamily(d.CHAT_UNREAD, lambda c, _w: c.unread, d.CHAT_UNREAD.labels),
    ChatFamily(d.CHAT_LAST_ACTIVITY, lambda c, _w: c.last_activity, d.CHAT_LAST_ACTIVITY.labels),
    ChatFamily(d.CHAT_INFO, lambda c, _w: 1, d.CHAT_INFO.labels),
    ChatFamily(d.CHAT_WAITING_SINCE, _waiting_since, d.CHAT_WAITING_SINCE.labels),
    ChatFamily(d.CHAT_WAITING_SECONDS, _waiting_seconds, d.CHAT_WAITING_SECONDS.labels),
    ChatFamily(d.GROUP_PARTICIPANTS, _members, d.GROUP_PARTICIPANTS.labels),
    ChatFamily(d.GROUP_ADMINS, _admins, d.GROUP_ADMINS.labels),
    ChatFamily(d.GROUP_CREATED, _created, d.GROUP_CREATED.labels),
)


def render_chats(
    account: Account, chats: Sequence[Chat], waits: Mapping[str, Wait] | None = None
) -> tuple[Family, ...]:
    """The per-chat families of the selected chats, as ``render(ChatCollector(...))`` would give."""
    labels: dict[tuple[str, ...], list[str]] = {}
    columns: dict[str, list[str]] = {}
    out = []
    for family in CHAT_FAMILIES:
        if family.labels not in labels:  # the chat's part is made once per label set
            labels[family.labels] = chat_labels(family.labels, chats, columns)
        out.append(family.render(account, chats, labels[family.labels], waits or {}))
    return tuple(out)
