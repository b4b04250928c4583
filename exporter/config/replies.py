"""The ``replies:`` section: reading WhatsGate's event log for reply times (:class:`RepliesConfig`)."""

from __future__ import annotations

from typing import Any

from ..snapshot.replies import DEFAULT_REPLY_BUCKETS, RepliesConfig
from .schema import ConfigError, get_bool, get_duration, get_durations, get_int, read_section

# events-get answers at most 100 events a page: 1,000 pages is 100,000 events in one poll, far more
# than an account sends in a poll interval; a larger value is a typo, not a need.
MAX_PAGES_LIMIT = 1000


def parse_replies(raw: Any) -> RepliesConfig:
    """The ``replies:`` section (``None``: defaults)."""
    raw, path = read_section(raw, "replies", RepliesConfig), "replies."
    gap = get_duration(raw, "conversation_gap", path, RepliesConfig.conversation_gap)
    if gap <= 0:
        raise ConfigError(f"{path}conversation_gap", "must be longer than 0s")
    max_pages = get_int(raw, "max_pages", path, RepliesConfig.max_pages, minimum=1)
    if max_pages > MAX_PAGES_LIMIT:
        raise ConfigError(f"{path}max_pages", f"must be at most {MAX_PAGES_LIMIT}, got {max_pages}")
    return RepliesConfig(
        enabled=get_bool(raw, "enabled", path, RepliesConfig.enabled),
        conversation_gap=gap,
        buckets=get_durations(raw, "buckets", path, DEFAULT_REPLY_BUCKETS),
        max_pages=max_pages,
        history_per_poll=get_int(raw, "history_per_poll", path, RepliesConfig.history_per_poll),
    )
