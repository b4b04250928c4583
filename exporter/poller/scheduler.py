"""A bounded pool of worker threads running jobs on their own schedules.

Thousands of accounts must not mean thousands of threads: each account is a
job in one priority queue (by due time), and a fixed number of workers take
the job that is due first. A job is in the queue at most once, so one account
is never polled twice at the same time, and a slow account holds one worker,
not the others. How late each run starts behind its schedule (the lag) is
handed to the job, so an overloaded exporter says so instead of silently
polling less often.

Workers bound the number of polls at once; a *budget* bounds what they hold.
Each job has a weight (an account's chats at its last poll) and a job starts
only while the running ones weigh less than the budget, or when none runs. An
answer is held whole in memory from its last byte until it is decoded, and
decoding is one account at a time (memory.HEAVY_WORK): without the budget,
eight workers polling large accounts back to back held eight answers of
3.5 MB each while waiting their turn. Small accounts weigh little, so the
budget never binds for them; a large account that is due waits, before its
request starts (its deadline is not running), and the wait shows as lag.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A job gets the lag of this run (seconds behind its due time) and returns the
# delay until its next run, counted from this run's due time.
Job = Callable[[float], float]


class Scheduler:
    def __init__(
        self,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
        budget: int = 0,
        weight: Callable[[str], int] = lambda _key: 0,
    ) -> None:
        """``budget``: the most that running jobs may weigh together (0: no limit);
        ``weight(key)``: a job's weight, read under the scheduler's lock (keep it cheap)."""
        self.workers = workers
        self.clock = clock
        self.budget = budget
        self.weight = weight
        self._load = 0  # the weight of the running jobs
        self._running = 0
        self._queue: list[tuple[float, int, str]] = []
        self._jobs: dict[str, Job] = {}
        self._generation: dict[str, int] = {}  # a removed and re-added key must not run twice
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def add(self, key: str, job: Job, delay: float = 0.0) -> None:
        """Run ``job`` after ``delay`` seconds, then as often as it says."""
        with self._cond:
            if key in self._jobs:
                return
            self._jobs[key] = job
            generation = next(self._order)
            self._generation[key] = generation
            heapq.heappush(self._queue, (self.clock() + delay, generation, key))
            self._cond.notify()

    def remove(self, key: str) -> None:
        """No new run starts; a run under way finishes and is not rescheduled."""
        with self._cond:
            self._jobs.pop(key, None)
            self._generation.pop(key, None)

    def keys(self) -> set[str]:
        with self._cond:
            return set(self._jobs)

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"poll-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _next(self) -> tuple[str, Job, float, int, int] | None:
        """Wait for the first due job that fits the budget; None when stopping."""
        with self._cond:
            while not self._stopping:
                if not self._queue:
                    self._cond.wait()
                    continue
                due, generation, key = self._queue[0]
                if self._generation.get(key) != generation:
                    heapq.heappop(self._queue)  # removed (or re-added) since it was queued
                    continue
                wait = due - self.clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                weight = self.weight(key)
                if self.budget and self._running and self._load + weight > self.budget:
                    # First due, first to start: later jobs wait too, so a large one never starves.
                    self._cond.wait()  # a job finishing notifies
                    continue
                heapq.heappop(self._queue)
                self._load += weight
                self._running += 1
                return key, self._jobs[key], due, generation, weight
            return None

    def _work(self) -> None:
        while (task := self._next()) is not None:
            key, job, due, generation, weight = task
            lag = max(0.0, self.clock() - due)
            try:
                delay = job(lag)
            except Exception:  # jobs handle their own errors; this is the last line of defence
                log.exception("scheduled job crashed", extra={"fields": {"job": key}})
                delay = 60.0
            with self._cond:
                self._load -= weight
                self._running -= 1
                self._cond.notify_all()  # a job held back by the budget may fit now
                if self._generation.get(key) == generation:
                    # Keep the cadence from the due time, so a late run shows as lag on the next
                    # one too; but after falling more than a whole period behind (a stall, a
                    # suspended host), start afresh rather than catch up in a burst.
                    now = self.clock()
                    due = due + delay if due + delay >= now - delay else now
                    heapq.heappush(self._queue, (due, generation, key))
                    self._cond.notify()
