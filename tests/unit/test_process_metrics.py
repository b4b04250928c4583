"""The process metrics' cheaper rendering is byte-identical to prometheus-client's generate_latest.

Values come from fabricated /proc trees and garbage collector statistics, so both
sides read the very same numbers; the real process is checked for the same families.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from exporter.metrics.process import (
    Part,
    ProcessMetrics,
    ProcessReader,
    Template,
    fixed_values,
    gc_values,
)
from exporter.metrics.render import Collected

LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            {soft}                {hard}                files
Max processes             63704                63704                processes
"""


def write_proc(root: Path, comm: str, fields: dict[int, int], btime: int, max_fds: int, fds: int) -> None:
    """A /proc with what ProcessCollector reads: stat's btime, self/stat, self/limits, self/fd."""
    (root / "self" / "fd").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  1 2 3 4\nintr 5\nbtime {btime}\nprocesses 7\n")
    # Fields after the command, as proc(5) numbers them from 3 (state); ProcessCollector
    # indexes what follows the last ")" from 0: field 14 (utime) is its parts[11].
    rest = ["S"] + [str(fields.get(n, n)) for n in range(4, 53)]
    (root / "self" / "stat").write_text(f"4242 ({comm}) {' '.join(rest)}\n")
    (root / "self" / "limits").write_text(LIMITS.format(soft=max_fds, hard=max_fds * 2))
    for old in (root / "self" / "fd").iterdir():
        old.unlink()
    for n in range(fds):
        (root / "self" / "fd" / str(n)).touch()


def default_like(proc: Path) -> tuple[CollectorRegistry, tuple[Part, ...]]:
    """A registry of prometheus-client's three default collectors over ``proc``, and their parts."""
    registry = CollectorRegistry()
    gc_collector = GCCollector(registry)
    platform = PlatformCollector(registry)
    process = ProcessCollector(proc=str(proc), registry=registry)
    parts: tuple[Part, ...] = (
        (gc_collector, lambda: gc_values),
        (platform, lambda: fixed_values(platform)),
        (process, lambda: ProcessReader.of(process).values),
    )
    return registry, parts


@contextmanager
def reference_and_ours(proc: Path) -> Iterator[tuple[CollectorRegistry, ProcessMetrics]]:
    """The reference registry over ``proc``, and ours for it."""
    registry, parts = default_like(proc)
    yield registry, ProcessMetrics(registry, parts)


BIG = st.integers(min_value=0, max_value=2**62)
GC_STAT = st.fixed_dictionaries({"collected": BIG, "uncollectable": BIG, "collections": BIG})


@settings(max_examples=150, deadline=None)
@given(
    comm=st.text(st.sampled_from("ab )(x y"), min_size=1, max_size=12),
    utime=BIG,
    stime=BIG,
    starttime=BIG,
    vsize=BIG,
    rss=st.integers(min_value=0, max_value=2**50),
    btime=st.integers(min_value=1, max_value=2**40),
    max_fds=st.integers(min_value=0, max_value=2**40),
    fds=st.integers(min_value=0, max_value=40),
    stats=st.lists(GC_STAT, min_size=3, max_size=3),
)
def test_byte_identical_to_generate_latest_for_the_same_readings(
    comm: str,
    utime: int,
    stime: int,
    starttime: int,
    vsize: int,
    rss: int,
    btime: int,
    max_fds: int,
    fds: int,
    stats: list[dict[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp, mock.patch("gc.get_stats", return_value=stats):
        proc = Path(tmp)
        fields = {14: utime, 15: stime, 22: starttime, 23: vsize, 24: rss}
        write_proc(proc, comm, fields, btime, max_fds, fds)
        with reference_and_ours(proc) as (registry, ours):
            assert ours.fast
            assert ours() == generate_latest(registry)


def test_changed_readings_are_written_at_the_next_rendering(tmp_path: Path) -> None:
    """Fails if a value were taken from the template, made at start, instead of read each time."""
    write_proc(tmp_path, "exporter", {14: 100, 15: 50}, 1_700_000_000, 1024, 3)
    stats = [{"collected": 1, "uncollectable": 0, "collections": 2}] * 3
    with mock.patch("gc.get_stats", return_value=stats), reference_and_ours(tmp_path) as (registry, ours):
        first = ours()
        write_proc(tmp_path, "exporter", {14: 7_000, 15: 123, 24: 9_999}, 1_700_000_000, 4096, 11)
        stats[2] = {"collected": 77, "uncollectable": 5, "collections": 9}
        second = ours()
        assert second != first
        assert second == generate_latest(registry)
        assert b"process_cpu_seconds_total 71.23\n" in second
        assert b"process_open_fds 11.0\n" in second


def test_scrapes_reading_at_once_each_count_every_descriptor(tmp_path: Path) -> None:
    """The descriptor directory is listed through one descriptor kept open, whose offset every
    listing shares: two at once, unguarded, would each count part of it."""
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 400)
    reader = ProcessReader(str(tmp_path), btime=1.0)
    counts: list[float] = []

    def scrape() -> None:
        for _ in range(150):
            counts.append(reader.values()[4])

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(counts) == 600 and set(counts) == {400.0}


def test_the_readers_descriptors_are_closed_with_it(tmp_path: Path) -> None:
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 3)
    before = len(os.listdir("/proc/self/fd"))
    reader = ProcessReader(str(tmp_path), btime=1.0)
    assert len(os.listdir("/proc/self/fd")) == before + 3
    del reader
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_reading_that_fails_gives_what_the_collectors_write(tmp_path: Path) -> None:
    """The reader holds its files open from the start, so a file removed since still reads:
    its read is made to fail too, as the collector's open of the removed file does."""
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 3)
    pread = os.pread

    def failing(fd: int, size: int, offset: int) -> bytes:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith("limits"):
            raise OSError(errno.EIO, "Input/output error")
        return pread(fd, size, offset)

    with reference_and_ours(tmp_path) as (registry, ours), mock.patch("os.pread", failing):
        assert ours.fast
        (tmp_path / "self" / "limits").unlink()  # the collector leaves out the descriptor families
        text = ours()
        assert text == generate_latest(registry)
        assert b"process_cpu_seconds_total" in text and b"process_max_fds" not in text


def test_no_boot_time_or_another_collector_goes_to_generate_latest(tmp_path: Path) -> None:
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 3)
    registry, parts = default_like(tmp_path)
    registry.register(Collected([GaugeMetricFamily("someone_elses", "Another collector.", value=1)]))
    ours = ProcessMetrics(registry, parts)
    assert not ours.fast
    assert b"someone_elses 1.0" in ours() and ours() == generate_latest(registry)
    (tmp_path / "stat").write_text("cpu 1 2 3\n")  # no btime: ProcessCollector writes nothing
    with reference_and_ours(tmp_path) as (registry, ours):
        assert not ours.fast
        assert ours() == generate_latest(registry)


def test_a_collector_registered_later_is_written_too(tmp_path: Path) -> None:
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 3)
    with reference_and_ours(tmp_path) as (registry, ours):
        assert ours.fast
        registry.register(Collected([GaugeMetricFamily("registered_later", "Came after.", value=2)]))
        text = ours()
        assert b"registered_later 2.0" in text and text == generate_latest(registry)


def test_the_boot_time_is_the_collectors_own(tmp_path: Path) -> None:
    """The collector read /proc/stat when it was made; a clock step since must not move the
    start time in one text and not in the other."""
    write_proc(tmp_path, "exporter", {22: 12_345}, 1_700_000_000, 1024, 3)
    registry, parts = default_like(tmp_path)
    (tmp_path / "stat").write_text("btime 1700000001\n")  # read again now, it would differ
    ours = ProcessMetrics(registry, parts)
    assert ours.fast and ours() == generate_latest(registry)


def test_a_reader_that_cannot_be_made_sends_every_rendering_to_generate_latest(tmp_path: Path) -> None:
    """As on a Python without gc.get_stats: whatever fails while the fast way is set up."""
    write_proc(tmp_path, "exporter", {}, 1_700_000_000, 1024, 3)
    registry, parts = default_like(tmp_path)

    def no_stats() -> list[float]:
        raise AttributeError("module 'gc' has no attribute 'get_stats'")

    ours = ProcessMetrics(registry, ((parts[0][0], lambda: no_stats), *parts[1:]))
    assert not ours.fast and ours() == generate_latest(registry)


FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e16, 1234567.0])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(FLOATS, min_size=7, max_size=7))
def test_a_template_writes_what_generate_latest_writes(values: list[float]) -> None:
    """Labels, timestamps, a percent sign, and counters whose _created samples generate_latest
    moves to a family of their own after the others: the values still land in their places."""

    def families(vs: list[float]) -> list[Metric]:
        counter = CounterMetricFamily("jobs", "Jobs 100% done.", labels=["kind"], created=None)
        counter.add_metric(['a\\b"c'], vs[0], created=vs[1])
        counter.add_metric(["%s"], vs[2], created=vs[3])
        gauge = GaugeMetricFamily("temperature_celsius", "Help with\nnewline.", labels=["at"])
        gauge.add_metric(["x"], vs[4], timestamp=1_700_000_000.5)
        gauge.add_metric(["y"], vs[5])
        return [counter, gauge, GaugeMetricFamily("plain", "No labels.", value=vs[6])]

    template = Template(families([1.0] * 7))
    expected = generate_latest(Collected(families(values)))
    assert template.fill(values) == expected
    parsed = [(s.name, s.value) for f in text_string_to_metric_families(expected.decode()) for s in f.samples]
    assert len(parsed) == 7 and sum(math.isnan(v) for _, v in parsed) == sum(map(math.isnan, values))


def test_a_template_refuses_text_it_cannot_read_back() -> None:
    """A help text holding a mark's own text: the marks no longer cut the text into values."""
    with pytest.raises(ValueError):
        Template([GaugeMetricFamily("tricky", "Says -1000000000000000.0 aloud.", value=1)])
    with pytest.raises(ValueError):
        Template([GaugeMetricFamily("plain", "Fine.", value=1)]).fill([1.0, 2.0])


def test_the_exporters_own_process_metrics_take_the_fast_way_and_match() -> None:
    """This process, the real /proc: the same families, samples and unchanging values."""
    ours = ProcessMetrics()
    assert ours.fast  # on Linux with prometheus-client's default registry as it ships

    def read(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode())
            for s in f.samples
        }

    mine, theirs = read(ours()), read(generate_latest(REGISTRY))
    assert mine.keys() == theirs.keys()
    for key in (("process_start_time_seconds", ()), ("process_max_fds", ())):
        assert mine[key] == theirs[key]
    info = [k for k in mine if k[0] == "python_info"]
    assert len(info) == 1 and mine[info[0]] == 1.0
    assert abs(mine[("process_open_fds", ())] - theirs[("process_open_fds", ())]) <= 2
