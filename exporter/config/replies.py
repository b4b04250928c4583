"""The ``replies:`` section: reading WhatsGate's event log for reply times (:class:`RepliesConfig`)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from ..snapshot.replies import DEFAULT_REPLY_BUCKETS, RepliesConfig
from .schema import Count, Duration, Durations, Schema, read

# events-get answers at most 100 events a page: 1,000 pages is 100,000 events in one poll, far more
# than an account sends in a poll interval; a larger value is a typo, not a need.
MAX_PAGES_LIMIT = 1000


class _Replies(Schema):
    enabled: bool = RepliesConfig.enabled
    conversation_gap: Duration = Duration(RepliesConfig.conversation_gap)
    buckets: Durations = Durations(DEFAULT_REPLY_BUCKETS)
    max_pages: Annotated[int, Meta(ge=1, le=MAX_PAGES_LIMIT)] = RepliesConfig.max_pages
    history_per_poll: Count = RepliesConfig.history_per_poll


def parse_replies(raw: Any) -> RepliesConfig:
    """The ``replies:`` section (``None``: defaults)."""
    r = read(raw, "replies", _Replies)
    return RepliesConfig(r.enabled, r.conversation_gap, r.buckets, r.max_pages, r.history_per_poll)
