"""What the benches share: this working tree first on sys.path, their argument parser, and the
simulator and the exporter as processes on loopback.

A bench runs as a script (``python bench/bench_x.py``), which puts bench/ on sys.path: it
imports this module as ``common``, before anything of the exporter's.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench the working tree, not an installed exporter

API_KEY = "bench-key"


def arguments(doc: str | None, **defaults: float) -> argparse.ArgumentParser:
    """A bench's argument parser, its help ``doc`` (the bench's docstring) as written, with an option
    ``--NAME`` for each of ``defaults`` (``_`` written ``-``), of the type of its default."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_mb(pid: int) -> float:
    """The peak RSS (VmHWM) of a live process, in MB; NaN where the kernel does not tell it."""
    match = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def simulator_command(port: int, accounts: int, chats: int, *extra: str) -> list[str]:
    """The simulator on loopback ``port``: ``accounts`` accounts (bench-00, bench-01, ...) of
    ``chats`` generated chats, a tenth of them groups of 20 participants."""
    args = [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{port}"]
    args += ["--accounts", str(accounts), "--chats", str(chats), "--group-fraction", "0.1"]
    return [*args, "--participants", "20", "--api-key", API_KEY, *extra]


def exporter_config(sim_port: int, accounts: int, timeout: str) -> str:
    """The start of an exporter config that polls every account of the simulator on ``sim_port``."""
    ids = "\n".join(f"  - whatsapp_id: bench-{i:02d}" for i in range(accounts))
    return (
        f"whatsgate:\n  url: http://127.0.0.1:{sim_port}/api/v1\n  api_key: {API_KEY}\n  timeout: {timeout}\n"
        f"accounts:\n{ids}\n"
    )


def exporter_command(config: Path, port: int, log_level: str) -> list[str]:
    """The exporter serving on loopback ``port``, configured by the file ``config``."""
    args = [sys.executable, "-m", "exporter", "--config.file", str(config)]
    return [*args, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", log_level]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the processes, the last started first; kill any still running after 10 s."""
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
