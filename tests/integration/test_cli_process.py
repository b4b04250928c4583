"""The command line as a process: every line in the --log.format chosen, and pipes that close early.

What only a real process shows: which file descriptor a line goes to, what the
interpreter does when the reader of stdout or stderr has gone (``| head -0``),
and the exit code after SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from helpers import REPO, free_port, stop, wait_until

EXPORTER = [sys.executable, "-m", "exporter"]


@contextmanager
def broken_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader has already gone: every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


def demo(port: int, *extra: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EXPORTER, "--demo", "--web.listen-address", f"127.0.0.1:{port}", *extra],
        text=True,
        cwd=REPO,
        **kwargs,  # type: ignore[call-overload]
    )


def serves(proc: subprocess.Popen[str], port: int) -> None:
    def ready() -> bool:
        assert proc.poll() is None, f"exporter exited with {proc.returncode}"
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200

    wait_until(ready, 20, "the demo to be ready")


def terminate(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    return proc.wait(20)  # polls under way get up to cli.serve.SHUTDOWN_GRACE (5 s) to finish


# --- every line in the chosen format ----------------------------------------------------------


def test_json_start_up_and_shutdown_lines_are_all_json(tmp_path: Path):
    port, err = free_port(), tmp_path / "stderr"
    with err.open("w") as stderr:
        proc = demo(port, "--log.format", "json", stdout=subprocess.PIPE, stderr=stderr)
        try:
            serves(proc, port)
        finally:
            code = terminate(proc)
            out = proc.stdout.read() if proc.stdout else ""
            stop(proc)
    assert code == 0 and out == "", out
    lines = [json.loads(line) for line in err.read_text().splitlines()]  # fails on a plain-text line
    messages = [line["msg"] for line in lines]
    assert f"Serving metrics on http://127.0.0.1:{port}/metrics" in messages, messages
    assert any(m.startswith("Demo: simulated WhatsGate API at http://127.0.0.1:") for m in messages), messages
    # Polls under way at SIGTERM finish (and the agent evaluates them) before the client closes:
    # whatever follows the shutdown line is their info, never a failure the shutdown caused.
    assert "shutting down" in messages and all(line["level"] == "info" for line in lines), lines


def test_logfmt_is_the_default_for_the_start_up_lines(tmp_path: Path):
    port, err = free_port(), tmp_path / "stderr"
    with err.open("w") as stderr:
        proc = demo(port, stdout=subprocess.PIPE, stderr=stderr)
        try:
            serves(proc, port)
        finally:
            assert terminate(proc) == 0
            assert proc.stdout is not None and proc.stdout.read() == ""
    lines = err.read_text().splitlines()
    assert all(line.startswith("ts=") and " level=" in line for line in lines), lines
    assert any(f'msg="Serving metrics on http://127.0.0.1:{port}/metrics"' in line for line in lines), lines


def test_a_start_up_error_is_one_json_line_with_log_format_json(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    bad_threshold = "thresholds: [{name: Unread, metric: unread_message, above: 5}]\n"
    config.write_text(
        "whatsgate: {api_key: k}\naccounts: [{whatsapp_id: a}]\npoll_interval: soon\n" + bad_threshold
    )
    result = subprocess.run(
        [*EXPORTER, "--log.format", "json", "--config.file", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert record["level"] == "error" and "poll_interval: " in record["msg"], record
    assert "thresholds[0] (Unread).metric: " in record["msg"], record  # every error, in the one line


def test_a_port_in_use_is_one_json_line(tmp_path: Path):
    port = free_port()
    first = demo(port, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        serves(first, port)
        result = subprocess.run(
            [*EXPORTER, "--demo", "--log.format", "json", "--web.listen-address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
    finally:
        stop(first)
    assert result.returncode == 1 and result.stdout == ""
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[-1]["level"] == "error" and "cannot listen on" in records[-1]["msg"], records


# --- readers that went away -------------------------------------------------------------------


def test_a_closed_stdout_does_not_stop_the_exporter(tmp_path: Path):
    # whatsgate-exporter --demo | head -0
    err = tmp_path / "stderr"
    port = free_port()
    with broken_pipe() as stdout, err.open("w") as stderr:
        proc = demo(port, stdout=stdout, stderr=stderr)
    try:
        serves(proc, port)
    finally:
        assert terminate(proc) == 0, err.read_text()
    assert "Traceback" not in err.read_text()


def test_a_closed_log_pipe_does_not_stop_the_exporter():
    # whatsgate-exporter --demo 2>&1 | head -0: every log line meets a broken pipe.
    port = free_port()
    with broken_pipe() as pipe:
        proc = demo(port, "--log.level", "debug", stdout=pipe, stderr=pipe)
    try:
        serves(proc, port)
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status()
    finally:
        # 0, not 120: the interpreter's last flush must not meet the broken pipe again.
        assert terminate(proc) == 0


def test_closed_stdout_and_stderr_descriptors_do_not_stop_the_exporter():
    # Started with 1>&- 2>&- (some init systems do): Python then has no sys.stdout/sys.stderr at all.
    port = free_port()
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            'exec "$@" 1>&- 2>&-',
            "sh",
            *EXPORTER,
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        cwd=REPO,
        text=True,
    )
    try:
        serves(proc, port)
    finally:
        assert terminate(proc) == 0


def test_rules_into_a_closed_pipe_is_no_traceback(tmp_path: Path):
    # whatsgate-exporter rules --config.file config.example.yaml | head -0
    err = tmp_path / "stderr"
    with broken_pipe() as stdout, err.open("w") as stderr:
        code = subprocess.run(
            [*EXPORTER, "rules", "--config.file", str(REPO / "config.example.yaml")],
            stdout=stdout,
            stderr=stderr,
            timeout=30,
            cwd=REPO,
        ).returncode
    assert code == 1 and err.read_text() == ""


# --- the config file the README has users create ----------------------------------------------


def test_the_readme_config_file_is_ignored_by_git():
    # cp config.example.yaml config.yaml: the user's accounts (phone numbers) must not be committed.
    git = shutil.which("git")
    if git is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for path, ignored in (("config.yaml", True), ("deploy/exporter/config.yaml", False)):
        result = subprocess.run(
            [git, "check-ignore", "--no-index", "-q", path], cwd=REPO, capture_output=True, timeout=30
        )
        assert result.returncode == (0 if ignored else 1), (path, result.stderr)
