"""A bounded pool of worker threads running jobs on their own schedules.

Thousands of accounts must not mean thousands of threads: each account is a
job in one priority queue (by due time), and a fixed number of workers take
the job that is due first. A job is in the queue at most once, so one account
is never polled twice at the same time, and a slow account holds one worker,
not the others. How late each run starts behind its schedule (the lag) is
handed to the job, so an overloaded exporter says so instead of silently
polling less often.

Workers bound the number of polls at once; a *budget* bounds what they hold.
Each job has a weight (an account's chats at its last poll). An answer is held
whole in memory from its last byte until it is decoded, and decoding is one
account at a time (memory.HEAVY_WORK): without the budget, eight workers
polling large accounts back to back held eight large answers at once while
waiting their turn. So a *heavy* job (weight above an eighth of the budget)
starts only if the running jobs and it together weigh at most the budget (a
job heavier than the budget counts as the budget). Against a gateway that
answers at once, a heavy poll is over in a fraction of a second, and the next
one waits for it: one answer held, not one decoding and one waiting. Against a
slow one, a heavy poll that has run :data:`OVERLAP_AFTER` seconds is waiting
for the network, not holding memory: then another may start beside it, up to
twice the budget, so slow answers are still awaited side by side (the load
allowed before, which also keeps a huge account from waiting for the light
load to vanish). Heavy jobs start in due order, so none starves. Light jobs
(most accounts) have a queue of their own and are never held back, though
they count in the load. A heavy job that waits does so before its request
starts (its deadline is not running), and the wait shows as lag.

A *background* job (an account's event log) gives way to due foreground jobs (get-chats
polls): it ranks as if due ``patience`` seconds later. When every account starts at once,
thousands of first get-chats polls are due together, and each account's first events poll
(an events-get and up to ``replies.history_per_poll`` get-history calls) would otherwise
take its turn between them: /ready, which waits for every get-chats poll, came after all
of that work too. A background job that has waited ``patience`` longer than a due
foreground job goes first, so none starves; its lag shows as for any job.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A job gets the lag of this run (seconds behind its due time) and returns the
# delay until its next run, counted from this run's due time.
Job = Callable[[float], float]

# Seconds after which the heavy jobs running are taken to wait on the network, so that another may
# start beside them (see the module's documentation): several times what a 10,000-chat poll's own
# work takes (its decode, snapshot and render: bench/RESULTS.md), well below a poll's timeout.
OVERLAP_AFTER = 1.0


class Scheduler:
    def __init__(
        self,
        workers: int,
        clock: Callable[[], float] = time.monotonic,
        budget: int = 0,
        weight: Callable[[str], int] = lambda _key: 0,
        patience: Callable[[], float] = lambda: 60.0,
    ) -> None:
        """``budget``: the most that running jobs may weigh together (0: no limit);
        ``weight(key)``: a job's weight, read under the scheduler's lock (keep it cheap);
        ``patience()``: how long a due background job gives way to due foreground jobs."""
        self.workers = workers
        self.clock = clock
        self.budget = budget
        self.weight = weight
        self.patience = patience
        self._load = 0  # the weight of the running jobs
        # When each running heavy job started, by its generation (one run of it at a time).
        self._heavy_since: dict[int, float] = {}
        # Due time, insertion order, key: one heap for light jobs, one for heavy ones, and one for
        # background jobs (light, whatever they weigh: an events poll holds no chat list).
        self._light: list[tuple[float, int, str]] = []
        self._heavy: list[tuple[float, int, str]] = []
        self._background: list[tuple[float, int, str]] = []
        self._jobs: dict[str, Job] = {}
        self._generation: dict[str, int] = {}  # a removed and re-added key must not run twice
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def _weigh(self, key: str) -> int:
        try:
            return max(0, int(self.weight(key)))
        except Exception:  # a bad weight must not kill a worker: then no job would run
            log.exception("weighing a job failed", extra={"fields": {"job": key}})
            return 0

    def _push(self, due: float, generation: int, key: str, background: bool) -> None:
        if background:
            queue = self._background
        elif self.budget > 0 and self._weigh(key) > self.budget // 8:
            queue = self._heavy
        else:
            queue = self._light
        heapq.heappush(queue, (due, generation, key))

    def add(self, key: str, job: Job, delay: float = 0.0, *, background: bool = False) -> None:
        """Run ``job`` after ``delay`` seconds, then as often as it says; a ``background`` job
        gives way to due foreground jobs (see the module's documentation)."""
        with self._cond:
            if key in self._jobs:
                return
            self._jobs[key] = job
            generation = next(self._order)
            self._generation[key] = generation
            self._push(self.clock() + delay, generation, key, background)
            self._cond.notify_all()

    def remove(self, key: str) -> None:
        """No new run starts; a run under way finishes and is not rescheduled."""
        with self._cond:
            self._jobs.pop(key, None)
            self._generation.pop(key, None)
            self._cond.notify_all()  # it may have been the heavy job the others waited behind

    def keys(self) -> set[str]:
        with self._cond:
            return set(self._jobs)

    def start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"poll-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 0.0) -> None:
        """No new run starts; runs under way get up to ``grace`` seconds in all to finish."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + grace  # real time: ``clock`` may be a test's
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _head(self, queue: list[tuple[float, int, str]]) -> tuple[float, int, str] | None:
        """The first entry of a queue that is still current (removed jobs are dropped)."""
        while queue and self._generation.get(queue[0][2]) != queue[0][1]:
            heapq.heappop(queue)
        return queue[0] if queue else None

    def _overlap_from(self, weight: int) -> float | None:
        """When a heavy job of ``weight`` may start beside the jobs running (every heavy one then
        :data:`OVERLAP_AFTER` seconds into its run; at once beside light ones only); None: not
        before one ends. The caller holds the lock."""
        if self._load + weight > 2 * self.budget:
            return None
        return max(self._heavy_since.values(), default=-math.inf) + OVERLAP_AFTER

    def _next(self) -> tuple[str, Job, float, int, int, bool] | None:
        """Wait for the first due job that may start, and whether it is a background job (which
        queue it is in says so: no set of keys beside); None when stopping."""
        with self._cond:
            while not self._stopping:
                now = self.clock()
                soonest: float | None = None
                # rank (the due time, a background job's moved back by patience), queue, weight
                chosen: tuple[float, list[tuple[float, int, str]], int] | None = None
                for queue in (self._light, self._heavy, self._background):
                    head = self._head(queue)
                    if head is None:
                        continue
                    due, _, key = head
                    if due > now:
                        soonest = due if soonest is None else min(soonest, due)
                        continue
                    weight, rank = self._weigh(key), due
                    if queue is self._heavy:
                        weight = min(weight, self.budget)
                        if self._load + weight > self.budget:
                            overlap = self._overlap_from(weight)
                            if overlap is None:
                                continue  # a job ending notifies
                            if overlap > now:
                                soonest = overlap if soonest is None else min(soonest, overlap)
                                continue
                    elif queue is self._background:
                        rank = due + self.patience()
                    if chosen is None or rank < chosen[0]:
                        chosen = (rank, queue, weight)
                if chosen is not None:
                    _, queue, weight = chosen
                    due, generation, key = heapq.heappop(queue)
                    self._load += weight
                    if queue is self._heavy:
                        self._heavy_since[generation] = now
                    return key, self._jobs[key], due, generation, weight, queue is self._background
                self._cond.wait(None if soonest is None else soonest - now)
            return None

    def _work(self) -> None:
        while (task := self._next()) is not None:
            key, job, due, generation, weight, background = task
            lag = max(0.0, self.clock() - due)
            delay = 60.0
            try:
                delay = job(lag)
            except Exception:  # jobs handle their own errors; this is the last line of defence
                log.exception("scheduled job crashed", extra={"fields": {"job": key}})
            finally:
                with self._cond:
                    self._load -= weight
                    self._heavy_since.pop(generation, None)
                    if self._generation.get(key) == generation:
                        # Keep the cadence from the due time, so a late run shows as lag on the
                        # next one too; but after falling more than a whole period behind (a
                        # stall, a suspended host), start afresh rather than catch up in a burst.
                        now = self.clock()
                        due = due + delay if due + delay >= now - delay else now
                        self._push(due, generation, key, background)  # light or heavy: latest weight
                    self._cond.notify_all()  # a heavy job held back by the budget may fit now
