"""The bounded scheduler: few threads for many jobs, no job run twice at once, honest lag."""

from __future__ import annotations

import threading
import time

from exporter.poller.scheduler import Scheduler


def test_many_jobs_share_a_few_workers_and_none_runs_twice_at_once():
    scheduler = Scheduler(workers=4)
    running: set[str] = set()
    overlaps: list[str] = []
    runs: dict[str, int] = {}
    lock = threading.Lock()
    before = threading.active_count()

    def job(key: str):
        def run(_lag: float) -> float:
            with lock:
                if key in running:
                    overlaps.append(key)
                running.add(key)
                runs[key] = runs.get(key, 0) + 1
            time.sleep(0.001)
            with lock:
                running.discard(key)
            return 0.05

        return run

    for i in range(500):
        scheduler.add(f"k{i}", job(f"k{i}"))
    scheduler.start()
    try:
        assert threading.active_count() - before == 4
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(runs.get(f"k{i}", 0) for i in range(500)) < 2:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert min(runs.values()) >= 2 and len(runs) == 500
    assert not overlaps


def test_lag_is_reported_when_workers_cannot_keep_up():
    scheduler = Scheduler(workers=1)
    lags: list[float] = []

    def slow(lag: float) -> float:
        lags.append(lag)
        time.sleep(0.2)
        return 0.01

    scheduler.add("a", slow)
    scheduler.add("b", slow)
    scheduler.start()
    time.sleep(1.0)
    scheduler.stop()
    assert max(lags) >= 0.15  # each waits for the other's 0.2 s run


def test_removed_job_is_not_run_again():
    scheduler = Scheduler(workers=2)
    runs: list[float] = []
    scheduler.add("a", lambda lag: runs.append(lag) or 0.01)
    scheduler.start()
    time.sleep(0.2)
    scheduler.remove("a")
    time.sleep(0.05)
    count = len(runs)
    time.sleep(0.2)
    scheduler.stop()
    assert count >= 2 and len(runs) == count
