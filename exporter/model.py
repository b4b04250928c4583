"""The records every layer shares: what the WhatsGate API returns, and what names an account.

This module depends on nothing else in the package. The records keep only what
the metrics and alerts need, so a 10,000-chat account costs a few MB, not the
tens of MB of its decoded JSON. Parsing them out of an answer is
:mod:`exporter.whatsgate.parse`; turning them into numbers is :mod:`exporter.snapshot`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

CONTACT = "contact"
GROUP = "group"
CHAT_TYPES = (CONTACT, GROUP)

# Why a poll failed: the values of whatsgate_poll_errors_total{reason}, in the
# order the troubleshooting guide explains them.
TIMEOUT = "timeout"
CONNECTION = "connection"
HTTP_STATUS = "http_status"
UNAUTHORIZED = "unauthorized"
API_ERROR = "api_error"
INVALID_RESPONSE = "invalid_response"
INTERNAL = "internal"  # the exporter's own failure (a bug, out of memory), never the API's
REASONS = (TIMEOUT, CONNECTION, HTTP_STATUS, UNAUTHORIZED, API_ERROR, INVALID_RESPONSE, INTERNAL)


# Slots: one or more per account between polls (see snapshot.state.AccountState).
@dataclass(frozen=True, slots=True)
class Account:
    """One polled WhatsApp session: its WhatsappID and the alias that becomes the ``account`` label."""

    whatsapp_id: str
    name: str
    # The business-hours schedule its waits are counted in (None: the default, or 24/7).
    schedule: str | None = None

    @property
    def labels(self) -> tuple[str, str]:
        return (self.whatsapp_id, self.name)


# The records of a poll are msgspec Structs, not dataclasses: at a million chats they are
# most of the exporter's memory and much of a poll's CPU. A frozen Struct is built by C
# code (a frozen dataclass calls object.__setattr__ per field), is smaller, and with
# gc=False is not tracked by the cycle collector, which would otherwise walk every record
# of every account on each full collection. gc=False is safe: a record holds only
# strings, numbers and a Group, so it can never be part of a reference cycle.
# Build them with positional or keyword arguments as before; copy with
# msgspec.structs.replace (dataclasses.replace does not take them).


class Group(msgspec.Struct, frozen=True, gc=False):
    created: int
    # None when the answer had no participant list: then only `size` is known.
    participants: int | None
    admins: int | None
    size: int

    @property
    def member_count(self) -> int:
        """The participant list is the truth when it lists anyone; `size` is documented as unreliable.

        An empty list is taken as "not sent" rather than "nobody", since a group always has a member.
        """
        return self.participants if self.participants else self.size


class Chat(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str
    is_group: bool
    read_only: bool
    unread: int
    last_activity: int
    pinned: bool
    muted: bool
    group: Group | None = None

    @property
    def chat_type(self) -> str:
        return GROUP if self.is_group else CONTACT

    def shown_as(self, chat_id: str, name: str) -> Chat:
        """The same chat under another id and name (privacy mode, secrets cut out)."""
        return msgspec.structs.replace(self, id=chat_id, name=name)


@dataclass(frozen=True, slots=True)
class Session:
    whatsapp_id: str
    name: str
    status: str


def matches_any(patterns: Sequence[re.Pattern[str]], chat_id: str, name: str) -> bool:
    """Whether any pattern finds a match (unanchored) in the chat's id or its name."""
    return any(p.search(chat_id) or p.search(name) for p in patterns)


DEFAULT_MAX_PER_ACCOUNT = 1000


@dataclass(frozen=True)
class ChatsConfig:
    """Which chats get per-chat series (the ``chats:`` section)."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    max_per_account: int = DEFAULT_MAX_PER_ACCOUNT

    def selects(self, chat_id: str, name: str) -> bool:
        """Whether a chat gets per-chat series: included (or no include list) and not excluded."""
        included = not self.include or matches_any(self.include, chat_id, name)
        return included and not matches_any(self.exclude, chat_id, name)
