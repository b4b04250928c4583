"""Fixtures every test gets: fresh global state. Shared helpers live in ``helpers.py``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from helpers import Exporter, Recorder, accounts, simulating, stop

from exporter.config import redaction
from exporter.simulator import Simulator


@pytest.fixture(autouse=True)
def _no_leftover_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret registered for redaction by one test must not change another test's log lines:
    each test gets an empty registry of its own (the product has no way to forget a secret)."""
    monkeypatch.setattr(redaction, "_SECRETS", set())


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process a test starts is appended here, and stopped (last first) however the test ends."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The standard two-account simulator (tests/helpers.py accounts()), static data, on loopback.

    Test modules that need other data define their own ``sim``, which takes precedence.
    """
    with simulating(accounts()) as simulator:
        yield simulator


@pytest.fixture
def hook() -> Iterator[Recorder]:
    """A webhook receiver on loopback, recording what Alertmanager (or the agent) posts."""
    recorder = Recorder()
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    """Exporter processes a test starts are appended here, and stopped however the test ends."""
    started: list[Exporter] = []
    try:
        yield started
    finally:
        for exporter in started:
            stop(exporter.proc)
