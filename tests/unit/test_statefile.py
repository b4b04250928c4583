"""The state file: written atomically and privately, read back, and never a crash on garbage."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from helpers import chat_obj

from exporter.model import Account, ChatsConfig
from exporter.snapshot import statefile
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.waiting import DEFAULT_BUCKETS
from exporter.whatsgate.parse import parse_chats


def state(now: float) -> AccountState:
    chats = parse_chats({"data": [chat_obj("1@c.us", 3, ts=int(now) - 600), chat_obj("2@c.us", 0)]})
    return AccountState(Account("W1", "one")).succeeded(ChatData.build(chats, ChatsConfig(), now), 0.1)


def test_round_trip_keeps_open_waits_and_the_file_is_private(tmp_path: Path):
    path = tmp_path / "state.json"
    statefile.save(path, [state(1_800_000_000.0)])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    restored = statefile.load(path, DEFAULT_BUCKETS)
    assert dict(restored["W1"].since) == {"1@c.us": ("contact", 1_799_999_400.0)}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"version": 2, "accounts": {}}', b'{"version": 1, "accounts": {"W1": 5}}',
     b'{"version": 1, "accounts": {"W1": {"waits": {"since": {"x": ["contact", "NaN"]}}}}}', b"\xff\xfe"],
)  # fmt: skip
def test_a_corrupt_file_starts_fresh_with_one_log_line(tmp_path: Path, content: bytes, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert statefile.load(path, DEFAULT_BUCKETS) == {}
    assert [r.getMessage() for r in caplog.records] == ["state file unusable, starting fresh"]


def test_a_missing_file_starts_fresh_silently(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING):
        assert statefile.load(tmp_path / "absent.json", DEFAULT_BUCKETS) == {}
    assert caplog.records == []


def test_an_unwritable_directory_is_one_line_per_episode(tmp_path: Path, caplog):
    writer = statefile.StateWriter(tmp_path / "gone" / "state.json", lambda: [state(1_800_000_000.0)])
    with caplog.at_level(logging.WARNING):
        writer.write_once()
        writer.write_once()
    assert [r.getMessage() for r in caplog.records] == ["cannot write state file"]
