"""/metrics ends with prometheus-client's default registry (ProcessCollector's process_*, the
garbage collector's and the platform's python_*), rendered at most once per
PROCESS_METRICS_MAX_AGE and shared by the scrapes in between."""

from __future__ import annotations

import gzip
import sys
import threading

import pytest
from helpers import wait_until
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import exposition as exposition_module
from exporter.metrics.exposition import Exposition
from exporter.snapshot.store import Store


def families(text: bytes) -> dict[str, set[tuple[str, tuple[tuple[str, str], ...]]]]:
    return {
        f.name: {(s.name, tuple(sorted(s.labels.items()))) for s in f.samples}
        for f in text_string_to_metric_families(text.decode())
    }


def test_the_body_ends_with_the_default_registrys_families() -> None:
    body = b"".join(Exposition(Store(stale_after=300)).chunks())
    ours = families(body)
    theirs = families(generate_latest(REGISTRY))
    assert theirs and {name: ours.get(name) for name in theirs} == theirs
    assert "python_info" in ours and "python_gc_objects_collected" in ours
    if sys.platform == "linux":  # ProcessCollector reads /proc
        for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
            assert name in ours, name
    tail = body[body.index(b"# HELP python_gc_objects_collected_total ") :]
    assert families(tail) == theirs  # last, and nothing else after it


def test_scrapes_close_together_share_one_rendering_of_the_process_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[object] = []

    def counting(registry: object) -> bytes:
        renders.append(registry)
        return generate_latest(REGISTRY)

    monkeypatch.setattr(exposition_module, "generate_latest", counting)
    exposition = Exposition(Store(stale_after=300))
    first = b"".join(exposition.chunks())
    assert b"# TYPE python_info gauge" in first
    assert gzip.decompress(b"".join(exposition.gzip_chunks())) == first  # the same rendering, deflated
    assert renders == [REGISTRY]
    monkeypatch.setattr(exposition_module, "PROCESS_METRICS_MAX_AGE", 0.0)  # now every scrape renders
    exposition.chunks()
    assert renders == [REGISTRY, REGISTRY]


def test_a_scrape_takes_the_process_metrics_rendered_ahead_by_the_exposition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once started, the exposition renders the process metrics (and the scrapes' own part) on a
    thread of its own, and a scrape seconds after the last one renders none itself: on the server's
    event loop their /proc reads cost a scrape the GIL several times. Regression: a scrape more than
    PROCESS_METRICS_MAX_AGE after the last rendered them."""
    renders: list[str] = []

    def counting(registry: object) -> bytes:
        renders.append(threading.current_thread().name)
        return generate_latest(REGISTRY)

    monkeypatch.setattr(exposition_module, "generate_latest", counting)
    monkeypatch.setattr(exposition_module, "PROCESS_METRICS_MAX_AGE", 0.2)
    exposition = Exposition(Store(stale_after=300))
    exposition.start()  # renders the first, on this thread
    del renders[:]
    try:
        for rendered in range(1, 4):
            wait_until(lambda: len(renders) >= rendered, timeout=5, what="the process metrics rendered ahead")  # noqa: B023
            plain = b"".join(exposition.chunks())
            assert gzip.decompress(b"".join(exposition.gzip_chunks())) == plain
            assert b"# TYPE python_info gauge" in plain
    finally:
        exposition.stop()
    assert set(renders) == {"exposition-own"}
