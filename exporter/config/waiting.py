"""The ``waiting:`` section: which chats count as customers waiting (:class:`WaitingConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import CHAT_TYPES
from ..snapshot.schedule import Schedule
from ..snapshot.waiting import DEFAULT_BUCKETS, WaitingConfig
from .schema import ConfigError, Durations, Regex, Schema, Text, read


class _Waiting(Schema):
    include: tuple[Regex, ...] | None = None
    exclude: tuple[Regex, ...] | None = None
    chat_types: tuple[Any, ...] | None = CHAT_TYPES
    count_muted: bool = False
    buckets: Durations = Durations(DEFAULT_BUCKETS)
    schedule: Text | None = None


def parse_waiting(raw: Any, schedules: Mapping[str, Schedule] | None) -> WaitingConfig:
    """The ``waiting:`` section (``None``: defaults); ``schedules`` are the defined ones, by name
    (``None``: unknown, as the section failed: its names are not checked)."""
    w = read(raw, "waiting", _Waiting)
    if not w.chat_types:
        raise ConfigError("waiting.chat_types", f"must list at least one of {', '.join(CHAT_TYPES)}")
    for i, item in enumerate(w.chat_types):
        if item not in CHAT_TYPES:
            raise ConfigError(
                f"waiting.chat_types[{i}]", f"expected one of {', '.join(CHAT_TYPES)}, got {item!r}"
            )
        if item in w.chat_types[:i]:
            raise ConfigError(f"waiting.chat_types[{i}]", f"{item!r} is listed twice")
    if w.schedule is not None and schedules is not None and w.schedule not in schedules:
        known = f"defined: {', '.join(sorted(schedules))}" if schedules else "no schedules are defined"
        raise ConfigError("waiting.schedule", f"unknown schedule {w.schedule!r} ({known})")
    return WaitingConfig(w.include or (), w.exclude or (), w.chat_types, w.count_muted, w.buckets, w.schedule)
