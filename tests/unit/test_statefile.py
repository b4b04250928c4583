"""The state file: written atomically and privately, read back entry by entry, never a crash on garbage."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import chat_obj, chats_of
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.settings import parse_config
from exporter.config.sharding import Shard, shard_of
from exporter.model import CONTACT, GROUP, Account, ChatsConfig
from exporter.poller import Supervisor
from exporter.snapshot import statefile
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.statefile import Entry, Reading, waits_from_json, waits_to_json
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

T = 1_780_000_000.0


def state(now: float) -> AccountState:
    chats = chats_of([chat_obj("1@c.us", 3, ts=int(now) - 600), chat_obj("2@c.us", 0)])
    return AccountState(Account("W1", "one")).succeeded(ChatData.build(chats, ChatsConfig(), now), 0.1)


def entry(polled_at: float = T, **starts: float) -> Entry:
    return Entry({cid: (CONTACT, start) for cid, start in starts.items()}, polled_at)


def write(path: Path, accounts: dict[str, Any], written_at: float | None = None) -> None:
    path.write_text(json.dumps({"version": 1, "written_at": written_at or T, "accounts": accounts}))


def waits(since: dict[str, Any]) -> dict[str, Any]:
    return {"waits": {"version": 1, "since": since}}


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]


def test_round_trip_keeps_open_waits_and_the_file_is_private(tmp_path: Path):
    path = tmp_path / "state.json"
    polled = state(1_700_000_000.0)
    assert polled.data is not None
    statefile.save(path, {"W1": Entry.of(polled.data)})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    restored = statefile.load(path)
    assert dict(restored["W1"].since) == {"1@c.us": ("contact", 1_699_999_400.0)}
    assert restored["W1"].polled_at == 1_700_000_000.0
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"version": 2, "accounts": {}}', b'{"version": 1, "accounts": []}',
     b"\xff\xfe", b"[" * 100_000],
)  # fmt: skip
def test_a_file_that_is_no_state_file_starts_fresh_with_one_log_line(tmp_path: Path, content: bytes, caplog):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        assert statefile.load(path) == {}
    assert [r.getMessage() for r in caplog.records] == ["state file unusable, starting fresh"]


def test_a_missing_file_starts_fresh_silently(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING):
        assert statefile.load(tmp_path / "absent.json") == {}
    assert caplog.records == []


def test_bad_entries_are_skipped_one_by_one_and_counted_in_one_line(tmp_path: Path, caplog):
    """Issue 21, 7: one bad entry discarded the whole file."""
    path = tmp_path / "state.json"
    bad_waits = {"b1": ["contact", "NaN"], "b2": ["person", T], "b3": ["contact"], "": ["contact", T]}
    accounts = {
        "W1": waits({"good@c.us": ["contact", T - 60], **bad_waits, "g@g.us": ["group", T - 5]}),
        "W2": 5,
        "W3": {"waits": {"version": 2, "since": {}}},
        "W4": waits({"other@c.us": ["contact", T - 1]}),
    }
    write(path, accounts)
    with caplog.at_level(logging.WARNING):
        restored = statefile.load(path)
    assert set(restored) == {"W1", "W4"}
    assert dict(restored["W1"].since) == {"good@c.us": (CONTACT, T - 60), "g@g.us": (GROUP, T - 5)}
    assert dict(restored["W4"].since) == {"other@c.us": (CONTACT, T - 1)}
    assert lines(caplog) == [("state file entries skipped", {"path": str(path), "bad": 6, "future": 0})]


def test_starts_from_the_future_are_refused_with_one_line(tmp_path: Path, caplog):
    """Issue 21, 4: a start after now showed a wait of 0 s until then, and no alert fired. Refused,
    the chat's wait starts again at its last activity, as without a file."""
    path = tmp_path / "state.json"
    write(path, {"W1": waits({"a": ["contact", T - 60], "b": ["contact", 4e9], "c": ["group", 3e9]})})
    with caplog.at_level(logging.WARNING):
        restored = statefile.load(path)
    assert dict(restored["W1"].since) == {"a": (CONTACT, T - 60)}
    assert lines(caplog) == [("state file entries skipped", {"path": str(path), "bad": 0, "future": 2})]


def test_the_guard_for_restored_times():
    reading = Reading(now=T)
    assert [reading.start(v) for v in (T, T - 1, 0)] == [T, T - 1, 0.0]
    assert [reading.start(v) for v in (T + 1, 4e9)] == [None, None]
    assert [reading.start(v) for v in (True, "1", None, math.nan, -1.0, math.inf, 10**400)] == [None] * 7
    assert (reading.skipped, reading.future) == (7, 2)


def test_polled_at_falls_back_to_the_file_time_and_is_never_after_now(tmp_path: Path):
    path = tmp_path / "state.json"
    write(path, {"W1": waits({}), "W2": {**waits({}), "polled_at": 4e9}, "W3": {**waits({}), "polled_at": T}})
    restored = statefile.load(path)
    assert restored["W1"].polled_at == T  # written before polled_at was kept: the file's time
    assert T < restored["W2"].polled_at < 4e9  # from the future: now
    assert restored["W3"].polled_at == T


def test_a_file_larger_than_the_exporter_writes_is_refused_unread(tmp_path: Path, caplog):
    path = tmp_path / "state.json"
    write(path, {"W1": waits({"a": ["contact", T]})})
    with path.open("r+b") as out:  # sparse: the size without the disk
        out.truncate(statefile.MAX_BYTES + 1)
    with caplog.at_level(logging.WARNING):
        assert statefile.load(path) == {}
    err = "larger than 64 MiB, more than the exporter writes"
    assert lines(caplog) == [("state file unusable, starting fresh", {"path": str(path), "err": err})]


def test_the_writer_leaves_out_whole_accounts_rather_than_write_what_it_cannot_read(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
):
    entries = {f"W{i}": entry(**{f"{i}{n}@c.us": T for n in range(100)}) for i in range(3)}
    whole, _ = statefile.dump(entries)
    monkeypatch.setattr(statefile, "MAX_BYTES", len(whole) - 100)  # room for two accounts of three
    path = tmp_path / "state.json"
    writer = statefile.StateWriter(path, lambda: entries)
    with caplog.at_level(logging.WARNING):
        writer.write_once()
        writer.write_once()
    assert os.path.getsize(path) <= statefile.MAX_BYTES
    assert set(statefile.load(path)) == {"W0", "W1"}
    assert [m for m, _ in lines(caplog)] == ["state file full: the waits of some accounts are not kept"]


def test_an_unwritable_directory_is_one_line_per_episode(tmp_path: Path, caplog):
    writer = statefile.StateWriter(tmp_path / "gone" / "state.json", lambda: {"W1": entry(a=T)})
    with caplog.at_level(logging.WARNING):
        writer.write_once()
        writer.write_once()
    assert [r.getMessage() for r in caplog.records] == ["cannot write state file"]
    assert writer.errors == 2  # but each failed write counted, for the metric


def test_restored_entries_stay_in_the_file_until_stale_after_says_the_account_is_gone():
    """Issue 21, 3: entries of accounts not polled (yet) are kept, until stale_after."""
    config = parse_config(
        {"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": "W1"}], "stale_after": "10m"}
    )
    now = T + 3600
    restored = {"W1": entry(T + 3500, a=T), "W2": entry(T + 3500, b=T), "W3": entry(T, c=T)}
    supervisor = Supervisor(
        config, WhatsGateClient("http://127.0.0.1:9/api/v1", "k"), Store(600), lambda: now, restored
    )
    assert supervisor.saved() == {"W1": restored["W1"], "W2": restored["W2"]}  # W3: gone an hour
    supervisor.apply(config)  # W1 handed to its poller (the scheduler is not started): still kept
    assert supervisor.saved() == {"W1": restored["W1"], "W2": restored["W2"]}
    now = T + 3500 + 601
    assert supervisor.saved() == {}


def test_restored_entries_of_another_shard_leave_the_file_at_once():
    """Resharding moves accounts to other pods: their entries there are the truth now."""
    config = parse_config({"whatsgate": {"api_key": "k"}, "discover": True})
    config = dataclasses.replace(config, shard=Shard(0, 2))
    ours, theirs = (next(w for w in (f"W{i}" for i in range(99)) if shard_of(w, 2) == n) for n in (0, 1))
    restored = {ours: entry(T, a=T), theirs: entry(T, b=T)}
    client = WhatsGateClient("http://127.0.0.1:9/api/v1", "k")
    supervisor = Supervisor(config, client, Store(600), lambda: T, restored)
    assert supervisor.saved() == {ours: restored[ours]}


# --- one account's waits ---------------------------------------------------------------------------


def test_json_round_trip_keeps_the_open_waits() -> None:
    original = {"a": (CONTACT, T - 5), "g": (GROUP, T - 7)}
    assert waits_from_json(json.loads(json.dumps(waits_to_json(original))), Reading(T)) == original


@pytest.mark.parametrize(
    "obj",
    [None, [], "state", {}, {"version": 1}, {"version": 1, "since": {}, "extra": 1},
     {"version": 2, "since": {}}, {"version": True, "since": {}}, {"version": 1, "since": []}],
)  # fmt: skip
def test_what_is_not_an_accounts_waits_is_a_value_error(obj: Any) -> None:
    with pytest.raises(ValueError, match=r"^waiting state"):
        waits_from_json(obj, Reading(T))


@pytest.mark.parametrize(
    "wait",
    [{"a": "contact"}, {"a": ["contact"]}, {"a": ["contact", T, 1]}, {"a": ["person", T]},
     {"a": [["contact"], T]}, {"a": ["contact", "1780000000"]}, {"a": ["contact", True]},
     {"a": ["contact", None]},
     {"a": ["contact", math.nan]}, {"a": ["contact", math.inf]}, {"a": ["contact", -1]},
     {"a": ["contact", 1e300]}, {"a": ["contact", 10**400]}, {"": ["contact", T]},
     {"x" * 2000: ["contact", T]}, {"\ud800": ["contact", T]}, {1: ["contact", T]}],
)  # fmt: skip
def test_a_bad_wait_is_skipped_and_counted(wait: dict[Any, Any]) -> None:
    reading = Reading(T)
    back = waits_from_json({"version": 1, "since": {**wait, "ok": ["contact", T]}}, reading)
    assert back == {"ok": (CONTACT, T)} and reading.skipped == 1


def test_nan_and_lone_surrogates_as_json_decodes_them_are_skipped() -> None:
    for text in ('{"a": ["contact", NaN]}', '{"\\ud800": ["contact", 1]}'):
        reading = Reading(T)
        assert waits_from_json({"version": 1, "since": json.loads(text)}, reading) == {}
        assert reading.skipped == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {"version": st.just(1), "since": st.dictionaries(st.text(max_size=5), JSON, max_size=3)}
        ),
    )
)
def test_garbage_state_never_crashes(obj: Any) -> None:
    try:
        back = waits_from_json(obj, Reading(T))
    except ValueError:
        return
    assert all(kind in (CONTACT, GROUP) and 0 <= start <= T for kind, start in back.values())
