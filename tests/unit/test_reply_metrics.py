"""The reply series on /metrics (metrics/collectors.py ReplyCollector, UnansweredCollector; the
store's stale drop), read back with prometheus-client's parser and linted by promtool."""

from __future__ import annotations

import dataclasses

from helpers import metrics_body, promtool_check_metrics
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics.exposition import Exposition
from exporter.model import Account, Chat, ChatsConfig
from exporter.snapshot.replies import Message, RepliesConfig, ReplyData, Tracker
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
ACCOUNT = Account("wa-1", "support")
A, B, C = "79990000001@c.us", "79990000002@c.us", "79990000003@c.us"
CONFIG = RepliesConfig(buckets=(60.0, 300.0))
REPLY_FAMILIES = {
    "whatsgate_events_up",
    "whatsgate_events_last_success_timestamp_seconds",
    "whatsgate_events_poll_errors",
    "whatsgate_events_truncated",
    "whatsgate_session_disconnects",
    "whatsgate_messages_received",
    "whatsgate_messages_sent",
    "whatsgate_response_duration_seconds",
}
UNANSWERED_FAMILIES = {
    "whatsgate_chat_unanswered_since_timestamp_seconds",
    "whatsgate_chat_unanswered_seconds",
    "whatsgate_oldest_unanswered_since_timestamp_seconds",
    "whatsgate_oldest_unanswered_seconds",
    "whatsgate_chats_unanswered",
}


def state(events_success: float | None, max_per_account: int = 1000) -> AccountState:
    chats = [
        Chat(cid, f"Name {cid[-3:]}", False, False, 0, int(NOW) - 600, False, False) for cid in (A, B, C)
    ]
    data = ChatData.build(chats, ChatsConfig(max_per_account=max_per_account), polled_at=NOW)
    tracker = Tracker.empty(CONFIG.buckets).advance(
        [
            Message(A, False, NOW - 400, 1),  # waiting 400 s
            Message(B, False, NOW - 100, 2),  # waiting 100 s
            Message(C, False, NOW - 500, 3),
            Message(C, True, NOW - 450, 4),  # answered in 50 s: a first response
        ],
        {A: "contact", B: "contact", C: "contact"},
        CONFIG,
        None,
    )
    replies = ReplyData(
        tracker, up=True, last_success=events_success, unanswered=tuple(tracker.unanswered(NOW, None))
    )
    return dataclasses.replace(AccountState(ACCOUNT).succeeded(data, 0.1), replies=replies)


def scrape(s: AccountState | None, stale_after: float = 300.0) -> tuple[str, dict[str, dict]]:
    store = Store(stale_after=stale_after, clock=lambda: NOW)
    store.expect(ACCOUNT.whatsapp_id)
    store.publish(s or AccountState(ACCOUNT).succeeded(state(NOW).data, 0.1))  # type: ignore[arg-type]
    text = metrics_body(store).decode()
    families = {
        f.name: {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for sample in f.samples}
        for f in text_string_to_metric_families(text)
    }
    return text, families


def samples(families: dict[str, dict], name: str) -> dict[tuple, float]:
    return {
        tuple((k, v) for k, v in labels if k not in ("account", "whatsapp_id")): value
        for (_, labels), value in families[name].items()
    }


def test_no_reply_series_while_replies_are_off() -> None:
    _, families = scrape(None)
    assert not (REPLY_FAMILIES | UNANSWERED_FAMILIES) & set(families)


def test_reply_series_with_their_exact_values() -> None:
    text, families = scrape(state(NOW))
    assert set(families) >= REPLY_FAMILIES | UNANSWERED_FAMILIES
    assert samples(families, "whatsgate_chat_unanswered_seconds") == {
        (("chat_id", A), ("chat_type", "contact")): 400.0,
        (("chat_id", B), ("chat_type", "contact")): 100.0,
    }
    assert samples(families, "whatsgate_oldest_unanswered_seconds") == {(("chat_type", "contact"),): 400.0}
    counts = samples(families, "whatsgate_chats_unanswered")
    assert counts[(("chat_type", "contact"), ("longer_than", "60"))] == 2.0
    assert counts[(("chat_type", "contact"), ("longer_than", "300"))] == 1.0
    assert counts[(("chat_type", "group"), ("longer_than", "60"))] == 0.0
    # The histogram's le as the rules select it (responses_within): 60.0, not 60.
    assert 'le="60.0",response="first"' in text and 'le="60",' not in text
    histogram = {
        k: v
        for (name, k), v in families["whatsgate_response_duration_seconds"].items()
        if name.endswith("_count")
    }
    assert sum(histogram.values()) == 1.0
    assert samples(families, "whatsgate_messages_received")[(("chat_type", "contact"),)] == 3.0
    assert samples(families, "whatsgate_messages_sent")[(("chat_type", "contact"),)] == 1.0
    assert samples(families, "whatsgate_events_up") == {(): 1.0}
    assert len(samples(families, "whatsgate_events_poll_errors")) == 7  # every reason, zeros too
    assert promtool_check_metrics(text).returncode == 0


def test_per_chat_series_only_for_selected_chats() -> None:
    _, families = scrape(state(NOW, max_per_account=1))  # only the first listed chat: A
    assert samples(families, "whatsgate_chat_unanswered_seconds") == {
        (("chat_id", A), ("chat_type", "contact")): 400.0
    }
    assert samples(families, "whatsgate_oldest_unanswered_seconds") == {(("chat_type", "contact"),): 400.0}


def test_stale_event_log_drops_who_waits_and_keeps_the_rest() -> None:
    _, families = scrape(state(NOW - 301))  # the last good events poll: longer ago than stale_after
    assert not UNANSWERED_FAMILIES & set(families)
    assert set(families) >= REPLY_FAMILIES
    _, families = scrape(state(NOW - 300))  # exactly stale_after: still fresh
    assert set(families) >= UNANSWERED_FAMILIES


def test_chats_waiting_for_an_answer_are_kept_first_under_the_cap() -> None:
    chats = [Chat(cid, "", False, False, 0, int(NOW) - 600, False, False) for cid in (A, B, C)]
    capped = ChatsConfig(max_per_account=1)
    assert [c.id for c in ChatData.build(chats, capped, polled_at=NOW).selection.chats] == [A]
    data = ChatData.build(chats, capped, polled_at=NOW, unanswered=frozenset({C}))
    assert [c.id for c in data.selection.chats] == [C] and data.selected == {C}


def test_an_events_poll_renders_the_replies_again_and_not_the_chats() -> None:
    """An events poll publishes the same chat data with new replies: the exposition renders the
    replies again and keeps the chats' rendering (the heavy part at 10,000 chats)."""
    store = Store(stale_after=300, clock=lambda: NOW)
    store.expect(ACCOUNT.whatsapp_id)
    first = state(NOW)
    store.publish(first)
    exposition = Exposition(store)
    before = exposition.body.accounts[ACCOUNT.whatsapp_id]
    assert first.replies is not None and before.data is not None
    later = dataclasses.replace(first, replies=dataclasses.replace(first.replies, last_success=NOW + 60))
    store.publish(later)
    assert exposition.update()
    after = exposition.body.accounts[ACCOUNT.whatsapp_id]
    assert after.state() is later and after.data is before.data and after.replies != before.replies
