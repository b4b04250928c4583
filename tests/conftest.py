"""Fixtures every test gets: fresh global state. Shared helpers live in ``helpers.py``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from helpers import stop

from exporter import logfmt


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> Iterator[None]:
    """A secret registered for redaction by one test must not change another test's log lines."""
    yield
    logfmt.clear_secrets()


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test starts is appended here, and stopped (last first) however the test ends."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)
