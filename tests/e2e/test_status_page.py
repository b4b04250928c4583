"""The status page at ``/`` in a real browser: Debian's headless Chromium against the demo exporter.

Chromium loads the page as a user would: ``--dump-dom`` gives the document after the
browser parsed (and would have run) it, ``--screenshot`` proves it paints, and
``--enable-logging=stderr`` prints every console message (uncaught script errors among
them) as an ``INFO:CONSOLE`` line, so a page whose script fails or logs fails here.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import REPO, free_port, html_tables, stop, tool, wait_until

DEMO_ACCOUNTS = ["community", "sales", "support"]  # the demo's account label aliases, as the page sorts them
DURATION = re.compile(r"^(\d+s|\d+m \d+s|\d+h \d+m|\d+d \d+h)$")
CONSOLE = re.compile(r":CONSOLE[:(\]]")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "exporter.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"exporter exited early:\n{log.read_text()}"
        return requests.get(f"{url}/ready", timeout=2).status_code == 200

    try:
        wait_until(ready, 20, "the demo exporter to be ready")
        yield url
    finally:
        stop(proc)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once, with a throw-away profile, logging console messages to stderr."""
    return subprocess.run(
        [
            tool("chromium"),
            "--headless",
            "--no-sandbox",  # tests may run as root in a container, where the sandbox cannot start
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def waiting_counts(page: str) -> dict[str, int]:
    overview = next(t for t in html_tables(page) if t.caption == "Accounts")
    column = overview.rows[0].index("Chats unread")
    return {row[0]: int(row[column]) for row in overview.rows[1:] if row[column].isdigit()}


def unanswered_counts(page: str) -> dict[str, int]:
    overview = next(t for t in html_tables(page) if t.caption == "Accounts")
    column = overview.rows[0].index("Unanswered")
    return {row[0]: int(row[column]) for row in overview.rows[1:] if row[column].isdigit()}


def test_the_status_page_renders_the_demo_accounts_and_their_waits(demo: str, tmp_path: Path):
    # The demo's chats change every poll; wait until some account has a customer waiting.
    wait_until(lambda: sum(waiting_counts(requests.get(demo, timeout=5).text).values()) > 0, 30, "a wait")
    # And every account's first events poll (it follows the account's first get-chats poll).
    wait_until(lambda: len(unanswered_counts(requests.get(demo, timeout=5).text)) == 3, 30, "the event log")
    raw = requests.get(demo, timeout=5).text
    assert "<script" not in raw  # no script at all: nothing that can fail in a browser

    dumped = chromium(tmp_path, "--dump-dom", f"{demo}/")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert not [line for line in dumped.stderr.splitlines() if CONSOLE.search(line)], dumped.stderr[-2000:]
    assert not re.search(r'\b(src|href)="(https?:)?//', dom)  # nothing from elsewhere: no CDN, no fonts
    assert '<html lang="en">' in dom and "<title>WhatsGate Exporter: status</title>" in dom

    tables = html_tables(dom)
    overview = next(t for t in tables if t.caption == "Accounts")
    assert [row[0] for row in overview.rows[1:]] == DEMO_ACCOUNTS
    assert all(row[1] == "up" for row in overview.rows[1:]), overview.rows
    counts = waiting_counts(dom)
    assert set(counts) == set(DEMO_ACCOUNTS) and sum(counts.values()) > 0, counts

    longest = [t for t in tables if t.caption.startswith("Chats unread longest")]
    assert len(longest) == len(DEMO_ACCOUNTS)
    shown = [row for t in longest for row in t.rows[1:] if len(row) == 5]
    assert shown, [t.rows for t in longest]
    for rank, chat, kind, waited, since in shown:
        assert rank.isdigit() and chat and kind in ("contact", "group"), (rank, chat, kind)
        assert "@" not in chat, chat  # names, never chat ids (phone numbers)
        assert DURATION.match(waited), waited
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", since), since
    for t in longest:  # each table's rank column counts 1..n, at most ten
        ranks = [row[0] for row in t.rows[1:] if len(row) == 5]
        assert ranks == [str(i) for i in range(1, len(ranks) + 1)] and len(ranks) <= 10, ranks

    # Customers waiting for an answer (the event log): one list across accounts, longest first.
    answers = next(t for t in tables if t.caption.startswith("Customers waiting longest for an answer"))
    assert answers.rows[0] == ["#", "Chat", "Account", "Type", "Waiting", "Since"]
    listed = answers.rows[1:]
    assert 0 < len(listed) <= 20 and {row[2] for row in listed} <= set(DEMO_ACCOUNTS), listed
    assert [row[0] for row in listed] == [str(i) for i in range(1, len(listed) + 1)]
    waits = [row[4].removeprefix("waiting for an answer for ") for row in listed]
    assert all(DURATION.match(w) for w in waits), waits
    assert all("@" not in row[1] for row in listed), listed  # names or a short tail, never an id
    column = overview.rows[0].index("Unanswered")
    assert all(row[column].isdigit() for row in overview.rows[1:]), overview.rows
    assert sum(int(row[column]) for row in overview.rows[1:]) >= len(listed)

    shot = tmp_path / "status.png"
    taken = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", f"{demo}/")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert not [line for line in taken.stderr.splitlines() if CONSOLE.search(line)], taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1280, 900)
    assert len(png) > 20_000  # a painted page of text and tables, not a blank canvas
