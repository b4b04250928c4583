"""The state file against reloads, sessions that come and go, failing accounts and hostile files.

What the file held at start-up is a start, read once: a later poller of the same account
(after a reload, a session back) continues the live state, never the file's; an account
failing at start keeps its entry in the file until a good poll replaces it; an oversized
file is refused before it is read.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import (
    KEY,
    REPO,
    Exporter,
    chat_obj,
    config_for,
    get,
    rendering,
    simulating,
    start_exporter,
    stop,
    wait_until,
)

from exporter.config.settings import parse_config
from exporter.poller import Supervisor
from exporter.simulator import SimAccount, Simulator
from exporter.snapshot import statefile
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

SINCE = "whatsgate_chat_waiting_since_timestamp_seconds"
DAY = 86_400


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with simulating(
        [
            SimAccount("wa-1", "one", chats=[chat_obj("1@c.us", 0), chat_obj("2@c.us", 0)]),
            SimAccount("wa-2", "two", chats=[chat_obj("21@c.us", 0)]),
            SimAccount("wa-3", "three", chats=[chat_obj("31@c.us", 0)]),
        ]
    ) as simulator:
        yield simulator


def write_state(path: Path, waits: dict[str, dict[str, float]]) -> None:
    """A state file as the previous release wrote it (no polled_at: the file's time stands for it)."""
    accounts = {
        wid: {"waits": {"version": 1, "since": {cid: ["contact", start] for cid, start in since.items()}}}
        for wid, since in waits.items()
    }
    path.write_text(json.dumps({"version": 1, "written_at": time.time(), "accounts": accounts}))


def since(exporter: Exporter, wid: str, chat_id: str) -> float | None:
    return get(exporter.scrape(), SINCE, whatsapp_id=wid, chat_id=chat_id)


def settled(exporter: Exporter, wid: str, chat_id: str, after: float) -> float | None:
    """The chat's wait start as of the first poll of ``wid`` that began after ``after``."""

    def polled() -> bool:
        done = get(exporter.scrape(), "whatsgate_last_success_timestamp_seconds", whatsapp_id=wid)
        return done is not None and done > after + 0.5

    wait_until(polled, timeout=20, what=f"a poll of {wid}")
    return since(exporter, wid, chat_id)


def reload(exporter: Exporter, tmp_path: Path, config: str) -> None:
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    answer = requests.post(f"{exporter.url}/-/reload", timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_reload_continues_the_live_wait_never_the_start_up_file(
    sim: Simulator, exporters: list[Exporter], tmp_path: Path
):
    """Issue 21, 2: a chat that waited since yesterday (restored), was read, then got a new message:
    after a rename, or a removal and a re-add, its wait starts at the new message, not yesterday."""
    now = int(time.time())
    state = tmp_path / "state.json"
    write_state(state, {"wa-1": {"1@c.us": now - DAY}})
    sim.set_chat("wa-1", "1@c.us", unreadCount=2, timestamp=now - 3600)
    config = config_for(sim, f"state_file: {state}\n")
    exporter = start_exporter(tmp_path, config, "--web.enable-lifecycle")
    exporters.append(exporter)
    assert since(exporter, "wa-1", "1@c.us") == now - DAY  # restored at start, as it should be

    t = time.time()
    sim.set_chat("wa-1", "1@c.us", unreadCount=0)
    assert settled(exporter, "wa-1", "1@c.us", t) is None
    t = time.time()
    sim.set_chat("wa-1", "1@c.us", unreadCount=1, timestamp=int(t) - 10)
    assert settled(exporter, "wa-1", "1@c.us", t) == int(t) - 10
    new_message = int(t) - 10

    reload(exporter, tmp_path, config.replace("name: support", "name: helpdesk"))
    wait_until(
        lambda: get(exporter.scrape(), SINCE, account="helpdesk", chat_id="1@c.us") is not None,
        what="the renamed account polled",
    )
    assert get(exporter.scrape(), SINCE, account="helpdesk", chat_id="1@c.us") == new_message

    without = config.replace("  - whatsapp_id: wa-1\n    name: support\n", "")
    assert "wa-1" not in without
    reload(exporter, tmp_path, without)
    wait_until(lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-1") is None, what="wa-1 gone")
    reload(exporter, tmp_path, config)
    wait_until(lambda: since(exporter, "wa-1", "1@c.us") is not None, what="wa-1 polled again")
    assert since(exporter, "wa-1", "1@c.us") == new_message


# stale_after is 3 s: among six busy workers in CI the file's wait was once not restored (the first
# poll likely came after a session seen gone for that long), so this runs with the timing tests, alone.
@pytest.mark.timing
def test_a_session_back_from_gone_starts_from_the_live_state(
    sim: Simulator, exporters: list[Exporter], tmp_path: Path
):
    """Issue 21, 2, for discovered sessions: one that vanishes for longer than stale_after and
    comes back is polled afresh (nothing is known of it since), not from the file read at start."""
    now = int(time.time())
    state = tmp_path / "state.json"
    write_state(state, {"wa-3": {"31@c.us": now - DAY}})
    sim.set_chat("wa-3", "31@c.us", unreadCount=1, timestamp=now - 3600)
    config = (
        f"whatsgate:\n  url: {sim.url}\n  api_key: {KEY}\n  timeout: 2s\n"
        f"discover: true\npoll_interval: 1s\nstale_after: 3s\nstate_file: {state}\n"
    )
    exporter = start_exporter(tmp_path, config)
    exporters.append(exporter)
    assert since(exporter, "wa-3", "31@c.us") == now - DAY

    sim.set_fault(None, "sessions_short", times=10**6, drop=1)  # wa-3, the last session, is not listed
    wait_until(
        lambda: get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-3") is None,
        timeout=20,
        what="wa-3 gone after stale_after",
    )
    sim.set_fault(None, None, command="sessions-get")
    wait_until(lambda: since(exporter, "wa-3", "31@c.us") is not None, what="wa-3 back and polled")
    assert since(exporter, "wa-3", "31@c.us") == now - 3600  # as the answer says, as on a first start


def test_an_account_failing_at_start_keeps_its_waits_in_the_file(
    sim: Simulator, exporters: list[Exporter], tmp_path: Path
):
    """Issue 21, 3: the file written while wa-2 cannot be polled still holds wa-2's waits; its
    first good poll continues them, and the file then holds what that poll saw."""
    now = int(time.time())
    state = tmp_path / "state.json"
    write_state(state, {"wa-1": {"1@c.us": now - 600}, "wa-2": {"21@c.us": now - 7200}})
    sim.set_chat("wa-1", "1@c.us", unreadCount=1, timestamp=now - 60)
    sim.set_chat("wa-2", "21@c.us", unreadCount=1, timestamp=now - 60)
    sim.set_fault("wa-2", "down")
    started = time.time()
    exporter = start_exporter(tmp_path, config_for(sim, f"state_file: {state}\n"))
    exporters.append(exporter)

    def written() -> dict:
        saved = json.loads(state.read_bytes())
        return saved if saved["written_at"] > started else {}

    wait_until(lambda: written().get("accounts", {}).get("wa-1"), what="the file written after wa-1's poll")
    assert get(exporter.scrape(), "whatsgate_up", whatsapp_id="wa-2") == 0
    accounts = written()["accounts"]
    assert accounts["wa-1"]["waits"]["since"] == {"1@c.us": ["contact", now - 600]}
    assert accounts["wa-2"]["waits"]["since"] == {"21@c.us": ["contact", now - 7200]}

    sim.set_fault("wa-2", None)
    wait_until(lambda: since(exporter, "wa-2", "21@c.us") is not None, what="wa-2 polled")
    assert since(exporter, "wa-2", "21@c.us") == now - 7200
    stop(exporter.proc)
    saved = json.loads(state.read_bytes())["accounts"]["wa-2"]
    assert saved["waits"]["since"] == {"21@c.us": ["contact", now - 7200]} and saved["polled_at"] > started


def test_waits_the_first_good_poll_does_not_confirm_are_not_kept(sim: Simulator, tmp_path: Path):
    """Issue 21, 7: restored waits of chats that no longer exist (or are read) leave memory with the
    first good poll; nothing keeps the restored state alive after it."""
    now = int(time.time())
    state = tmp_path / "state.json"
    write_state(state, {"wa-1": {f"{i}@c.us": now - 600 for i in range(100, 200)} | {"2@c.us": now - 600}})
    restored = statefile.load(state)
    held = weakref.ref(restored["wa-1"])
    config = parse_config(
        {
            "whatsgate": {"url": sim.url, "api_key": KEY, "timeout": "2s"},
            "accounts": [{"whatsapp_id": "wa-1"}],
            "poll_interval": "1s",
        }
    )
    store = rendering(Store(stale_after=300))
    client = WhatsGateClient(sim.url, KEY, timeout=2)
    supervisor = Supervisor(config, client, store, restored=restored)
    del restored
    supervisor.start()
    try:
        wait_until(lambda: store.ready()[0], what="the first poll")
        (polled,) = store.states()
        assert polled.data is not None and dict(polled.data.waits.since) == {}  # 2@c.us is read
        gc.collect()
        assert held() is None, "the restored waits outlive the first good poll"
    finally:
        supervisor.stop()
        client.close()


@pytest.mark.timing
def test_an_oversized_state_file_is_refused_unread(tmp_path: Path):
    """Issue 21, 7: 300 MB of whitespace around a valid state file; read, it peaked at 636 MB.
    Refused before reading, it costs the process nothing (peak RSS of a fresh interpreter)."""
    path = tmp_path / "state.json"
    with path.open("wb") as out:
        out.write(b'{"version": 1, "accounts": {"wa-1": {"waits": {"version": 1, "since": {}}}}')
        chunk = b" " * 2**20
        for _ in range(300):
            out.write(chunk)
        out.write(b"}")
    code = textwrap.dedent(
        f"""
        import logging, resource, sys
        from pathlib import Path
        from exporter.snapshot import statefile
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        restored = statefile.load(Path({str(path)!r}))
        print(len(restored), before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, check=True
    )
    *lines, figures = result.stdout.splitlines()
    count, before, peak = (int(x) for x in figures.split())
    assert count == 0 and lines == ["state file unusable, starting fresh"]
    assert peak - before < 10 * 1024, f"loading grew the peak RSS by {(peak - before) // 1024} MB"


ERRORS = "whatsgate_exporter_state_file_write_errors_total"


def test_failing_writes_are_counted_for_an_alert_and_only_with_a_state_file(
    sim: Simulator, exporters: list[Exporter], tmp_path: Path
):
    """A write that fails is one log line per episode: the counter lets an operator alert on it. It is
    there at 0 while writes work (the first failure is an increase), and absent without a state file."""
    state = tmp_path / "state.json"
    exporter = start_exporter(tmp_path, config_for(sim, f"state_file: {state}\n"))
    exporters.append(exporter)
    wait_until(state.exists, what="the state file written")
    assert get(exporter.scrape(), ERRORS) == 0
    state.unlink()
    (state / "in the way").mkdir(parents=True)  # a rename onto a full directory fails, even for root
    wait_until(lambda: (get(exporter.scrape(), ERRORS) or 0) >= 2, what="failed writes counted")
    assert exporter.logs().count("cannot write state file") == 1

    (tmp_path / "without").mkdir()
    without = start_exporter(tmp_path / "without", config_for(sim))
    exporters.append(without)
    assert ERRORS not in without.scrape()
