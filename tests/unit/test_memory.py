"""exporter.memory: the heap trim after a publish is rate-limited."""

from __future__ import annotations

import pytest

from exporter import memory


def test_trim_runs_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    class Libc:
        def malloc_trim(self, pad: int) -> int:
            calls.append(pad)
            return 1

    monkeypatch.setattr(memory, "_LIBC", Libc())
    monkeypatch.setattr(memory, "_last_trim", -memory.TRIM_INTERVAL)
    assert memory.trim(now=100.0)
    assert not memory.trim(now=100.0 + memory.TRIM_INTERVAL / 2)  # a burst of publishes: skipped
    assert memory.trim(now=100.0 + memory.TRIM_INTERVAL)
    assert calls == [0, 0]


def test_trim_is_a_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_LIBC", None)
    assert not memory.trim(now=1e9)
