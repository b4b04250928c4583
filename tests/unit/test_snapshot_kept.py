"""What a snapshot keeps between polls: the selected chats and the waiting ones, nothing else."""

from __future__ import annotations

from exporter.model import Chat, ChatsConfig
from exporter.snapshot.state import ChatData


def chat(chat_id: str, unread: int) -> Chat:
    return Chat(chat_id, f"name {chat_id}", False, False, unread, 100, False, False)


def test_capped_snapshot_keeps_selected_and_waiting_chats_in_answer_order() -> None:
    chats = [chat("idle", 0), chat("few", 1), chat("many", 5), chat("idle2", 0)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=1), polled_at=1000.0)
    assert [c.id for c in data.selection.chats] == ["many"]
    # "few" is waiting but over the cap: still kept, for the status page's names.
    assert [c.id for c in data.chats] == ["few", "many"]
    assert data.summary["contact"].chats == 4  # the aggregates still count every chat


def test_uncapped_snapshot_keeps_every_chat() -> None:
    chats = [chat("idle", 0), chat("few", 1)]
    data = ChatData.build(chats, ChatsConfig(max_per_account=0), polled_at=1000.0)
    assert data.chats == tuple(chats)
