"""The bounded scheduler: few threads for many jobs, no job run twice at once, honest lag."""

from __future__ import annotations

import threading
import time

import pytest

from exporter.poller import scheduler as scheduler_module
from exporter.poller.scheduler import Scheduler


def test_many_jobs_share_a_few_workers_and_none_runs_twice_at_once():
    scheduler = Scheduler(workers=4)
    running: set[str] = set()
    overlaps: list[str] = []
    runs: dict[str, int] = {}
    lock = threading.Lock()
    before = set(threading.enumerate())

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
        assert len(set(threading.enumerate()) - before) == 4
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


def test_stop_waits_for_a_run_under_way_within_its_grace_and_starts_no_new_one():
    scheduler = Scheduler(workers=2)
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    runs: list[float] = []

    def slow(_lag: float) -> float:
        runs.append(_lag)
        started.set()
        release.wait(5)
        finished.set()
        return 0.0  # due again at once: only stopping keeps it from running

    scheduler.add("a", slow)
    scheduler.start()
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    scheduler.stop(grace=5.0)
    assert finished.is_set() and len(runs) == 1


def test_stop_gives_up_on_a_run_that_outlasts_its_grace():
    scheduler = Scheduler(workers=1)
    started, release = threading.Event(), threading.Event()
    scheduler.add("a", lambda _lag: started.set() or release.wait(30) or 60.0)
    scheduler.start()
    assert started.wait(5)
    stopper = threading.Thread(target=scheduler.stop, args=(0.1,))
    stopper.start()
    stopper.join(10)
    hung = stopper.is_alive()
    release.set()
    assert not hung  # returned long before the run ended


def test_accounts_are_spread_over_the_interval_by_a_stable_phase():
    from exporter.poller.account import phase

    phases = [phase(f"7999{i:07d}", 60.0) for i in range(600)]
    assert phases == [phase(f"7999{i:07d}", 60.0) for i in range(600)]  # stable
    assert all(0 <= p < 60 for p in phases)
    per_ten_seconds = [sum(1 for p in phases if k * 10 <= p < (k + 1) * 10) for k in range(6)]
    assert min(per_ten_seconds) > 60, per_ten_seconds  # about 100 each: no lockstep


def run_weighted(weights: dict[str, int], budget: int, seconds: dict[str, float], until: int = 3):
    """Run one job per key on 4 workers; returns (runs, lags, snapshots of what ran together)."""
    scheduler = Scheduler(workers=4, budget=budget, weight=weights.__getitem__)
    lock = threading.Lock()
    running: set[str] = set()
    together: list[frozenset[str]] = []
    runs: dict[str, int] = {}
    lags: dict[str, list[float]] = {}

    def job(key: str):
        def run(lag: float) -> float:
            with lock:
                running.add(key)
                together.append(frozenset(running))
                runs[key] = runs.get(key, 0) + 1
                lags.setdefault(key, []).append(lag)
            time.sleep(seconds.get(key, 0.001))
            with lock:
                running.discard(key)
            return 0.02

        return run

    for key in weights:
        scheduler.add(key, job(key))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(runs.get(k, 0) for k in weights) < until:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    return runs, lags, together


def test_quick_heavy_jobs_run_one_at_a_time_beside_light_ones_and_none_starves():
    """Budget 100: heavy jobs (60) and a huge one (250, counted as the budget) each run alone among
    heavy jobs while they are quick (one answer held, not two); light jobs run beside them."""
    weights = {"heavy1": 60, "heavy2": 60, "heavy3": 60, "huge": 250, **{f"light{i}": 1 for i in range(3)}}
    runs, _, together = run_weighted(weights, 100, {k: 0.02 for k in weights})
    assert min(runs.values()) >= 3 and len(runs) == len(weights)  # every job ran: nothing starves
    heavy = [snapshot - {f"light{i}" for i in range(3)} for snapshot in together]
    assert max(map(len, heavy)) == 1, [h for h in heavy if len(h) > 1]
    assert any(len(h) == 1 and len(s) > 1 for h, s in zip(heavy, together, strict=True))  # light beside


def test_a_huge_job_starts_beside_light_jobs_that_never_all_stop():
    """Light jobs that always keep one running (the load never drops to 0): a job heavier than the
    budget still starts, beside them, as no heavy job runs."""
    weights = {"huge": 250, **{f"light{i}": 1 for i in range(3)}}
    seconds = {"huge": 0.01, **{f"light{i}": 0.05 * (i + 2) for i in range(3)}}
    runs, _, together = run_weighted(weights, 100, seconds, until=2)
    assert runs.get("huge", 0) >= 2, runs
    assert any("huge" in snapshot and len(snapshot) > 1 for snapshot in together)


@pytest.mark.timing  # asserts when a job started
def test_a_heavy_job_starts_beside_slow_ones_after_overlap_after_up_to_twice_the_budget(monkeypatch):
    """Heavy jobs of 70 that run 1 s (a slow gateway): the second starts once the first has run
    OVERLAP_AFTER (0.2 s here), not at once and not after it ended; the third waits for one to end
    (210 is above twice the budget of 100)."""
    monkeypatch.setattr(scheduler_module, "OVERLAP_AFTER", 0.2)
    scheduler = Scheduler(workers=4, budget=100, weight=lambda _key: 70)
    lock = threading.Lock()
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    running: list[int] = []
    live: set[str] = set()

    def job(key: str):
        def run(_lag: float) -> float:
            with lock:
                started.setdefault(key, time.monotonic())
                live.add(key)
                running.append(len(live))
            time.sleep(1.0)
            with lock:
                live.discard(key)
                ended.setdefault(key, time.monotonic())
            return 60.0

        return run

    for key in ("a", "b", "c"):
        scheduler.add(key, job(key))
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(ended) < 3:
            time.sleep(0.05)
    finally:
        scheduler.stop(grace=2)
    first, second, third = sorted(started, key=started.__getitem__)
    assert 0.2 <= started[second] - started[first] < 0.9, started
    assert started[third] >= min(ended.values()), (started, ended)
    assert max(running) == 2


@pytest.mark.timing  # a latency bound: it failed once among the parallel tests on a loaded machine
def test_light_jobs_are_not_held_behind_a_heavy_job_that_waits_for_the_budget():
    """Three heavy jobs of 60: the second and third wait for the one before (0.3 s each); a light
    job behind them does not."""
    weights = {"a": 60, "b": 60, "c": 60, "light": 1}
    _, lags, _ = run_weighted(weights, 100, {"a": 0.3, "b": 0.3, "c": 0.3}, until=2)
    assert max(lags["c"] + lags["a"] + lags["b"]) >= 0.2  # one heavy job did wait for the budget
    assert max(lags["light"]) < 0.1, lags["light"]


def test_a_failing_weight_counts_as_light_and_the_workers_survive():
    def weight(_key: str) -> int:
        raise RuntimeError("boom")

    scheduler = Scheduler(workers=2, budget=100, weight=weight)
    runs: list[float] = []
    scheduler.add("a", lambda lag: runs.append(lag) or 0.01)
    scheduler.start()
    time.sleep(0.3)
    scheduler.stop()
    assert len(runs) >= 3


def test_a_background_job_gives_way_to_due_jobs_for_its_patience_then_runs():
    """Issue 18: an account's events job waits behind due get-chats polls, but never starves."""
    scheduler = Scheduler(workers=1, patience=lambda: 0.2)
    order: list[str] = []
    lags: list[float] = []

    def busy(_lag: float) -> float:
        order.append("fg")
        time.sleep(0.005)
        return 0.0  # always due again: the worker never runs out of foreground work

    def background(lag: float) -> float:
        order.append("bg")
        lags.append(lag)
        return 10.0

    scheduler.add("bg", background, background=True)  # due first
    scheduler.add("fg", busy)
    scheduler.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "bg" not in order:
        time.sleep(0.02)
    scheduler.stop()
    assert order[0] == "fg" and "bg" in order, order[:5]
    assert lags[0] >= 0.15, lags


def test_an_account_s_two_jobs_cost_the_scheduler_a_few_hundred_bytes() -> None:
    """Every account has a get-chats job and a background events job for as long as it is polled:
    what the scheduler keeps for them (their entries and heap entries, the keys aside) is part of
    what each of 10,000 accounts costs between polls. Which queue a job is in says whether it is a
    background job: no set of the background keys beside (it cost 50 bytes an account)."""
    from test_chatids import held

    def job(_lag: float) -> float:
        return 1.0

    def build(accounts: int) -> Scheduler:
        scheduler = Scheduler(workers=1, clock=lambda: 0.0)
        for i in range(accounts):
            scheduler.add(f"W{i}", job)
            scheduler.add(f"W{i}#events", job, background=True)
        return scheduler

    keys = held(lambda: [f"W{i}{suffix}" for i in range(10_000) for suffix in ("", "#events")])
    per_account = (held(lambda: build(10_000)) - held(lambda: build(0)) - keys) / 10_000
    assert per_account < 340, per_account
