"""Shared test helpers.

Tests that need Prometheus's own tools (promtool, prometheus, alertmanager,
amtool) skip when the binary is missing on a developer's machine, and fail
under CI (CI=true), where `.ci/run` installs them: a missing binary there is a
broken pipeline, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent

TOOLS = {
    "promtool": "promtool",
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "amtool",
}


def tool(name: str) -> str:
    """Path of a Prometheus tool; skips (or fails under CI) when it is not installed."""
    binary = shutil.which(TOOLS.get(name, name))
    if binary is None and name == "alertmanager":
        binary = shutil.which("alertmanager")
    if binary is None:
        message = (
            f"{TOOLS.get(name, name)} not installed (apt-get install prometheus prometheus-alertmanager)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}: required under CI")
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_obj(
    cid: str, unread: int = 0, ts: int = 1_700_000_000, name: str | None = None, **flags: bool
) -> dict:
    """A get-chats contact object as documented; flags: ro, pinned, muted."""
    return {
        "id": cid,
        "name": name if name is not None else f"Chat {cid}",
        "isGroup": False,
        "isReadOnly": flags.get("ro", False),
        "unreadCount": unread,
        "timestamp": ts,
        "pinned": flags.get("pinned", False),
        "isMuted": flags.get("muted", False),
        "muteExpiration": 0,
    }


def group_obj(
    cid: str, unread: int = 0, members: int = 3, admins: int = 1, size: int = 0, super_admins: int = 0,
    **flags: bool,
) -> dict:
    """A group object: the first `admins` participants are admins, the last `super_admins` super-admins."""
    chat = chat_obj(cid, unread, name=f"Group {cid}", **flags)
    chat["isGroup"] = True
    chat["groupMetadata"] = {
        "id": cid,
        "creation": 1_600_000_000,
        "owner": "1@c.us",
        "size": size,
        "participants": [
            {"id": f"{i}@c.us", "isAdmin": i < admins, "isSuperAdmin": i >= members - super_admins}
            for i in range(members)
        ],
    }
    return chat


def wait_until(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``check`` until it is true; a server that is not listening yet counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process a test started: politely, then not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def repo() -> Iterator[Path]:
    yield REPO
