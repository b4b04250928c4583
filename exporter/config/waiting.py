"""The ``waiting:`` section: which chats count as customers waiting (:class:`WaitingConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import CHAT_TYPES
from ..snapshot.schedule import Schedule
from ..snapshot.waiting import DEFAULT_BUCKETS, WaitingConfig
from .schema import ConfigError, get_bool, get_durations, get_list, get_str, read_section, regex_list


def parse_waiting(raw: Any, schedules: Mapping[str, Schedule] | None) -> WaitingConfig:
    """The ``waiting:`` section (``None``: defaults); ``schedules`` are the defined ones, by name
    (``None``: unknown, as the section failed: its names are not checked)."""
    raw, path = read_section(raw, "waiting", WaitingConfig), "waiting."
    return WaitingConfig(
        include=regex_list(raw, "include", path),
        exclude=regex_list(raw, "exclude", path),
        chat_types=_chat_types(raw) if "chat_types" in raw else CHAT_TYPES,
        count_muted=get_bool(raw, "count_muted", path, False),
        buckets=get_durations(raw, "buckets", path, DEFAULT_BUCKETS),
        schedule=_schedule_name(raw, schedules),
    )


def _chat_types(raw: Mapping[str, Any]) -> tuple[str, ...]:
    items = get_list(raw, "chat_types", "waiting.")
    if not items:
        raise ConfigError("waiting.chat_types", f"must list at least one of {', '.join(CHAT_TYPES)}")
    for i, item in enumerate(items):
        if item not in CHAT_TYPES:
            raise ConfigError(
                f"waiting.chat_types[{i}]", f"expected one of {', '.join(CHAT_TYPES)}, got {item!r}"
            )
        if item in items[:i]:
            raise ConfigError(f"waiting.chat_types[{i}]", f"{item!r} is listed twice")
    return tuple(items)


def _schedule_name(raw: Mapping[str, Any], schedules: Mapping[str, Schedule] | None) -> str | None:
    if raw.get("schedule") is None:
        return None
    name = get_str(raw, "schedule", "waiting.")
    if schedules is not None and name not in schedules:
        known = f"defined: {', '.join(sorted(schedules))}" if schedules else "no schedules are defined"
        raise ConfigError("waiting.schedule", f"unknown schedule {name!r} ({known})")
    return name
