"""exporter.memory: the heap trim after a publish is rate-limited, and a skipped one is made up."""

from __future__ import annotations

import time

import pytest

from exporter import memory


class FakeLibc:
    def __init__(self) -> None:
        self.trims: list[float] = []

    def malloc_trim(self, pad: int) -> int:
        self.trims.append(time.monotonic())
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(memory, "_LIBC", fake)
    monkeypatch.setattr(memory, "TRIM_INTERVAL", 0.2)
    monkeypatch.setattr(memory, "_last_trim", -1.0)
    return fake


def test_a_burst_of_publishes_trims_once_at_once_and_once_when_the_interval_is_over(libc: FakeLibc) -> None:
    assert memory.trim()
    assert not memory.trim()  # within the interval: skipped, one trim scheduled for its end
    timer = memory._trailing
    assert timer is not None
    assert not memory.trim()
    assert memory._trailing is timer  # one timer per burst, not one per publish
    timer.join(2.0)
    assert len(libc.trims) == 2  # what the burst's later polls freed is not held until the next publish
    assert libc.trims[1] - libc.trims[0] >= 0.2 - 0.01
    assert memory._trailing is None


def test_publishes_further_apart_than_the_interval_each_trim(libc: FakeLibc) -> None:
    now = time.monotonic()
    assert memory.trim(now=now)
    assert memory.trim(now=now + 0.2)
    assert memory._trailing is None and len(libc.trims) == 2


def test_trim_is_a_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_LIBC", None)
    assert not memory.trim(now=1e9)


class FakeMallopt:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_the_mmap_threshold_is_fixed_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """glibc raises its threshold as mapped blocks are freed: fixed, large transients stay mapped."""
    fake = FakeMallopt()
    monkeypatch.setattr(memory, "_LIBC", fake)
    assert memory.fix_mmap_threshold()
    assert fake.calls == [(-3, memory.MMAP_THRESHOLD)]  # M_MMAP_THRESHOLD, from glibc's malloc.h
    monkeypatch.setattr(memory, "_LIBC", None)
    assert not memory.fix_mmap_threshold()  # musl, macOS: nothing to fix
