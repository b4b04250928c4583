"""The state file's reply part (issue 19): the event log's cursor and the open reply spans,
per account, next to the waits; a file without it (older, or replies off) still loads."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from exporter.config.settings import parse_config
from exporter.model import CONTACT
from exporter.poller import AccountPoller
from exporter.snapshot import statefile
from exporter.snapshot.replies import Cursor
from exporter.snapshot.statefile import Entry, SavedReplies, replies_from_json
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

T = 1_780_000_000.0
TRACKER = {"chats": {"1@c.us": ["contact", T - 60, T - 60, T - 60, True]}}  # as Tracker.to_json writes it


def test_the_cursor_and_spans_round_trip_next_to_the_waits(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    saved = SavedReplies(Cursor("2026-01-01 10:00:00", (17, 18)), TRACKER)
    statefile.save(path, {"W1": Entry({"1@c.us": (CONTACT, T - 60)}, T, saved), "W2": Entry({}, T)})
    written = json.loads(path.read_text())["accounts"]
    assert written["W1"]["replies"] == {
        "cursor": {"date": "2026-01-01 10:00:00", "ids": [17, 18]},
        "tracker": TRACKER,
    }
    assert "replies" not in written["W2"]
    restored = statefile.load(path)
    assert restored["W1"].replies == saved and restored["W2"].replies is None
    assert dict(restored["W1"].since) == {"1@c.us": (CONTACT, T - 60)}


def test_a_file_without_replies_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    account = {"waits": {"version": 1, "since": {}}, "polled_at": T}
    path.write_text(json.dumps({"version": 1, "accounts": {"W1": account}}))
    assert statefile.load(path) == {"W1": Entry({}, T)}


@pytest.mark.parametrize(
    "replies",
    [
        [],
        {"cursor": None},
        {"cursor": "2026-01-01", "tracker": {}},
        {"cursor": {"date": 5, "ids": []}, "tracker": {}},
        {"cursor": {"date": "x" * 65, "ids": []}, "tracker": {}},
        {"cursor": {"date": "2026-01-01 10:00:00", "ids": [1, True]}, "tracker": {}},
        {"cursor": {"date": "2026-01-01 10:00:00", "ids": ["1"]}, "tracker": {}},
        {"cursor": {"date": "2026-01-01 10:00:00", "ids": []}, "tracker": []},
        {"cursor": None, "tracker": {}, "more": 1},
    ],
)
def test_a_bad_reply_part_is_skipped_and_the_waits_kept(tmp_path: Path, replies: Any, caplog) -> None:
    with pytest.raises(ValueError):
        replies_from_json(replies)
    path = tmp_path / "state.json"
    waits = {"version": 1, "since": {"1@c.us": ["contact", T - 60]}}
    path.write_text(json.dumps({"version": 1, "accounts": {"W1": {"waits": waits, "replies": replies}}}))
    with caplog.at_level(logging.WARNING):
        restored = statefile.load(path)
    assert restored["W1"].replies is None and dict(restored["W1"].since) == {"1@c.us": (CONTACT, T - 60)}
    assert [r.fields["bad"] for r in caplog.records] == [1]  # counted, in one line


def test_the_reply_part_outlives_stale_after() -> None:
    """After a long downtime the log is read on from its cursor, though the waits are forgotten."""
    config = parse_config(
        {
            "whatsgate": {"url": "http://127.0.0.1:9/api/v1", "api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
        }
    )
    saved = SavedReplies(Cursor("2026-01-01 10:00:00", (17,)), TRACKER)
    restored = Entry({"1@c.us": (CONTACT, T - 60)}, T, saved)
    client = WhatsGateClient(config.whatsgate.url, "k")
    poller = AccountPoller(config.accounts[0], client, lambda: config, Store(300), lambda: T, restored)
    assert poller.saved(T + 60, 300) == restored
    assert poller.saved(T + 86400, 300) == Entry({}, T + 86400, saved)


def test_restored_spans_from_the_future_are_skipped_and_counted() -> None:
    future = {"chats": {"2@c.us": ["contact", T + 60, T + 60, T + 60, True], **TRACKER["chats"]}}
    tracker, skipped = SavedReplies(None, future).restore((60.0,), T)
    assert skipped == 1 and set(tracker.chats) == {"1@c.us"} and tracker.chats["1@c.us"].open_since == T - 60
