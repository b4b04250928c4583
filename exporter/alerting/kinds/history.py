"""A window of past samples, as the agent keeps it for a windowed kind, and Prometheus's
``increase()`` over it: what the agent has in place of a range vector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# At most this many samples per window and threshold and account (a day at one per 86 s):
# evaluations come every 15 s, and keeping each would hold 5,760 per day for nothing a
# 1%-precision share needs.
MAX_SAMPLES = 1000

# One evaluation's view of the histogram series a threshold reads, in a fixed series order:
# (bucket count at target, count) per series, flattened.
Sample = tuple[float, tuple[int, ...]]


@dataclass(frozen=True)
class History:
    """The samples of one threshold on one account within its window, oldest first (immutable)."""

    samples: tuple[Sample, ...] = ()

    def add(self, now: float, values: tuple[int, ...], window: float) -> History:
        """Samples older than the window are dropped, and the newest one is replaced rather than
        kept while it is closer than window / MAX_SAMPLES to the one before it."""
        kept = [s for s in self.samples if s[0] >= now - window and s[0] < now]
        if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < window / MAX_SAMPLES:
            kept.pop()
        return History((*kept, (now, values)))


def increase(points: Sequence[tuple[float, float]], start: float, end: float) -> float | None:
    """Prometheus's ``increase()`` of one counter over the range [start, end] (2.x's extrapolatedRate,
    float samples): None with fewer than two samples."""
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    prev = points[0][1]
    for _, value in points[1:]:
        if value < prev:  # a counter reset: the counter started again from 0
            result += prev
        prev = value
    to_start = points[0][0] - start
    to_end = end - points[-1][0]
    sampled = points[-1][0] - points[0][0]
    average = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        # Counters are never negative: extrapolate no further back than where this one was 0.
        to_zero = sampled * (points[0][1] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    extrapolated = sampled
    extrapolated += to_start if to_start < threshold else average / 2
    extrapolated += to_end if to_end < threshold else average / 2
    return result * (extrapolated / sampled)
