"""Fixtures every test gets: fresh global state. Shared helpers live in ``helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exporter import logfmt


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> Iterator[None]:
    """A secret registered for redaction by one test must not change another test's log lines."""
    yield
    logfmt.clear_secrets()
