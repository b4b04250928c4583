"""responses_within: the share of responses answered within a target, over a window of past
snapshots (the reply-time histogram's increase)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...config.schema import format_duration
from ...metrics import definitions as d
from ...model import CHAT_TYPES
from ...snapshot.replies import RESPONSE_TYPES
from ...snapshot.state import AccountState
from ..templates import promql_string
from .base import Instance, Kind, Narrowing, account_labels, selector
from .history import History, increase


@dataclass(frozen=True)
class ResponsesWithin(Kind):
    """The share of responses answered within ``target`` over the last ``window``.

    PromQL: the increase of the histogram's bucket at ``target`` over that of its count, per
    account. The agent records the same two counters per series at each evaluation (its
    "scrapes"), and computes each series' increase with Prometheus's own extrapolation
    (:func:`~exporter.alerting.kinds.history.increase`). Differences that remain: its samples
    are taken at evaluations, not at scrapes, and thinned to MAX_SAMPLES per window, which moves
    the extrapolation by less than one sample interval; the range includes its start, as in
    Prometheus 2 (3 excludes it). No response in the window is 0/0 in PromQL, which compares
    false: no alert, in both modes.
    """

    windowed: bool = True

    def _series(self, t: Narrowing) -> list[tuple[str, str]]:
        types = t.chat_types or CHAT_TYPES
        responses = (t.response,) if t.response else RESPONSE_TYPES
        return [(chat_type, response) for chat_type in types for response in responses]

    def promql(self, t: Narrowing, bound: str, limit: float, exclude_accounts: tuple[str, ...] = ()) -> str:
        response = (f"response={promql_string(t.response)}",) if t.response else ()
        window = format_duration(t.window or 0.0)
        name = d.RESPONSE_DURATION.name
        within = selector(t, exclude_accounts, *response, f'le="{d.bucket_le(t.target or 0.0)}"')
        total = selector(t, exclude_accounts, *response)
        # Summed per series' labels less chat_type, response and le: the account's, with job and
        # instance, as the agent's alert (plus Prometheus's target labels).
        return (
            f"sum without (chat_type, response, le) (increase({name}_bucket{within}[{window}]))"
            f" / sum without (chat_type, response) (increase({name}_count{total}[{window}]))"
            f" {bound}"
        )

    def record(self, t: Narrowing, state: AccountState, now: float, past: History | None) -> History | None:
        replies = state.replies
        window = t.window or 0.0
        if replies is None:  # no series exported: no sample, as a failed scrape
            return None if past is None else History(tuple(s for s in past.samples if s[0] >= now - window))
        values: list[int] = []
        for key in self._series(t):
            histogram = replies.tracker.histograms[key]
            if t.target not in histogram.buckets:  # buckets changed on reload: not this series
                return past
            values += [histogram.counts[histogram.buckets.index(t.target)], histogram.count]
        return (past or History()).add(now, tuple(values), window)

    def measure_over(
        self, t: Narrowing, state: AccountState, now: float, history: History | None
    ) -> Iterator[Instance]:
        if history is None:
            return
        start = now - (t.window or 0.0)
        samples = [s for s in history.samples if start <= s[0] <= now]
        within = total = 0.0
        seen = False
        for i in range(len(self._series(t))):
            bucket = increase([(at, float(v[2 * i])) for at, v in samples], start, now)
            count = increase([(at, float(v[2 * i + 1])) for at, v in samples], start, now)
            if bucket is not None and count is not None:
                within, total, seen = within + bucket, total + count, True
        if seen and total > 0:  # else 0/0: NaN, which no comparison breaches in PromQL
            yield account_labels(state), within / total, {}
