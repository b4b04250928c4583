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


def test_accounts_are_spread_over_the_interval_by_a_stable_phase():
    from exporter.poller.account import phase

    phases = [phase(f"7999{i:07d}", 60.0) for i in range(600)]
    assert phases == [phase(f"7999{i:07d}", 60.0) for i in range(600)]  # stable
    assert all(0 <= p < 60 for p in phases)
    per_ten_seconds = [sum(1 for p in phases if k * 10 <= p < (k + 1) * 10) for k in range(6)]
    assert min(per_ten_seconds) > 60, per_ten_seconds  # about 100 each: no lockstep


def test_the_budget_bounds_the_weight_of_running_jobs_and_small_jobs_still_run_together():
    """Heavy jobs (weight 6, budget 10) run one at a time; light ones (1) side by side;
    a job heavier than the whole budget still runs, alone."""
    weights = {"heavy1": 6, "heavy2": 6, "heavy3": 6, "huge": 25, **{f"light{i}": 1 for i in range(4)}}
    scheduler = Scheduler(workers=4, budget=10, weight=weights.__getitem__)
    lock = threading.Lock()
    running: dict[str, int] = {}
    loads: list[int] = []
    together: list[int] = []
    runs: dict[str, int] = {}

    def job(key: str):
        def run(_lag: float) -> float:
            with lock:
                running[key] = weights[key]
                loads.append(sum(running.values()))
                together.append(len(running))
                runs[key] = runs.get(key, 0) + 1
            time.sleep(0.02)
            with lock:
                del running[key]
            return 0.01

        return run

    for key in weights:
        scheduler.add(key, job(key))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(runs.get(k, 0) for k in weights) < 3:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert min(runs.values()) >= 3  # every job ran, the huge one included: nothing starves
    over = [load for load in loads if load > 10]
    assert all(load == 25 for load in over), over  # only the huge job, running alone, is over
    assert max(together) >= 3  # light jobs ran side by side
