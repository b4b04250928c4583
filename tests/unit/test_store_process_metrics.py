"""The process metrics are rendered at most once per PROCESS_METRICS_MAX_AGE, shared by scrapes."""

from __future__ import annotations

import pytest

from exporter.metrics import store as store_module
from exporter.metrics.store import Store


def test_scrapes_close_together_share_one_rendering_of_the_process_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store(stale_after=300)
    renders: list[int] = []
    render = store._render_process

    def counting() -> bytes:
        renders.append(1)
        return render()

    store._render_process = counting  # type: ignore[assignment]
    first = b"".join(store.chunks())
    assert b"process_cpu_seconds_total" in first or b"python_info" in first
    assert b"".join(store.gzip_chunks())  # the same rendering, deflated
    assert len(renders) == 1
    monkeypatch.setattr(store_module, "PROCESS_METRICS_MAX_AGE", 0.0)  # now every scrape renders
    store.chunks()
    assert len(renders) == 2
