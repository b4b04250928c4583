"""No API key and no phone number through side doors: discovery's fields, and error excerpts.

The exporter runs as a process; everything it writes is read back: /metrics, /sd, /probe,
the status page, its log and its state file.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import KEY, Exporter, chat_obj, get, serving, simulating, start_exporter, wait_until

from exporter.config.redaction import MAX_EXCERPT
from exporter.simulator import SimAccount, Simulator

KEYED = f"wa-{KEY}"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    now = int(time.time())
    with simulating(
        [
            SimAccount("wa-1", "one", chats=[chat_obj("11@c.us", 1, ts=now - 60)]),
            SimAccount(KEYED, "keyed", chats=[chat_obj("21@c.us", 1, ts=now - 60)]),
            SimAccount("wa-3", "three", status=f"AUTH:{KEY}"),
        ]
    ) as simulator:
        yield simulator


def test_the_api_key_never_leaks_through_discovery(sim: Simulator, exporters: list[Exporter], tmp_path: Path):
    """Issue 21, 5: a session whose unique_id holds the key is not polled (its id would be a label
    and a state file key); a status holding it is scrubbed before it becomes a label or a page."""
    state = tmp_path / "state.json"
    config = (
        f"whatsgate:\n  url: {sim.url}\n  api_key: {KEY}\n  timeout: 2s\n"
        f"discover: true\npoll_interval: 1s\nstate_file: {state}\n"
    )
    exporter = start_exporter(tmp_path, config)
    exporters.append(exporter)
    ready = time.time()

    def written() -> bool:
        return state.exists() and json.loads(state.read_bytes())["written_at"] > ready

    wait_until(written, what="the state file written after every account's first poll")
    outputs = {
        "/metrics": requests.get(f"{exporter.url}/metrics", timeout=10).text,
        "/sd": requests.get(f"{exporter.url}/sd", timeout=10).text,
        "/probe wa-3": requests.get(f"{exporter.url}/probe", params={"target": "wa-3"}, timeout=10).text,
        "/probe keyed": requests.get(f"{exporter.url}/probe", params={"target": KEYED}, timeout=10).text,
        "/": html.unescape(requests.get(f"{exporter.url}/", timeout=10).text),
        "state file": state.read_text(),
        "log": exporter.logs(),
    }
    for where, text in outputs.items():
        assert KEY not in text, f"the API key in {where}"
    scraped = exporter.scrape()
    assert get(scraped, "whatsgate_session_status", whatsapp_id="wa-3", status="AUTH:<secret>") == 1
    assert get(scraped, "whatsgate_up", whatsapp_id="wa-1") == 1
    assert "wa-1" in json.loads(state.read_bytes())["accounts"]
    assert "AUTH:<secret>" in outputs["/"]
    refused = [line for line in exporter.logs().splitlines() if "id holds the API key" in line]
    assert len(refused) == 1 and refused[0].endswith(" sessions=1")


PHONE = "79991112233"
PREFIX = "<p>(Ivan Ivanov) is blocked. Call "


def not_json(keep: int) -> bytes:
    """A 200 answer that is not JSON, whose excerpt is cut after ``keep`` characters of the id."""
    filler = "x" * (MAX_EXCERPT - len(PREFIX) - keep)
    return f"{PREFIX}{filler}{PHONE}@c.us about order 4411.</p>".encode()


@pytest.mark.parametrize(
    ("keep", "privacy"),
    [
        (10, "privacy: {chat_ids: hash, names: drop, key_file: key}\n"),  # cut inside the number
        (11, "privacy: {chat_ids: drop, names: hash, key_file: key}\n"),  # cut before @c.us
        (11, ""),  # plain: unchanged
    ],
)
def test_error_excerpts_carry_no_phone_number_nor_name_under_privacy(
    exporters: list[Exporter], tmp_path: Path, keep: int, privacy: str
):
    """Issue 21, 6: the excerpt of an answer that is not JSON reached the warn line and the status
    page's "Last error" with the digits of a phone number and the name the text put in parentheses."""
    (tmp_path / "key").write_text("privacy-key-for-the-excerpt-test\n")
    with serving(not_json(keep)) as url:
        config = (
            f"whatsgate:\n  url: {url}\n  api_key: {KEY}\n  timeout: 2s\n"
            f"accounts:\n  - whatsapp_id: wa-1\npoll_interval: 1s\n{privacy}"
        )
        exporter = start_exporter(tmp_path, config)
        exporters.append(exporter)
        wait_until(lambda: "poll failed" in exporter.logs(), what="a failed poll logged")
        page = html.unescape(requests.get(f"{exporter.url}/", timeout=10).text)
    (line,) = [line for line in exporter.logs().splitlines() if "poll failed" in line][:1]
    error = page[page.index("Last error:") :].split("</code>")[0]
    for shown in (line, error):
        assert "HTTP 200 but body is not JSON" in shown
        if privacy:
            assert PHONE[:5] not in shown and "Ivan" not in shown, shown
            assert "(<hidden>) is blocked" in shown
        else:
            assert PHONE[:keep] in shown and "(Ivan Ivanov) is blocked" in shown
