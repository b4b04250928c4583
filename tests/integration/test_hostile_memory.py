"""max_response_size bounds memory (issue 21, 1): hostile answers within the size, in a child process.

Each test serves a hostile get-chats answer from this process and polls it from a fresh
interpreter (bench/bench_hostile_memory.py's child), then bounds the child's peak RSS
(VmHWM) above its start. Before the item count and the body budget, 16 MiB of ``{}``
chats or participants decoded into millions of dicts, and eight padded answers read at
once were all held together.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from helpers import REPO

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status"),
    pytest.mark.timing,  # peak RSS: alone, after the parallel tests (scripts/test)
]

MIB = 1 << 20

spec = importlib.util.spec_from_file_location("bench_hostile_memory", REPO / "bench/bench_hostile_memory.py")
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("case", ["empty", "participants", "minimal"])
def test_a_dense_answer_is_refused_before_it_is_decoded(case: str) -> None:
    size = 16 * MIB
    result = bench.run(case, size, 1)
    assert "error" not in result, result
    (outcome,) = result["outcomes"]
    assert outcome.startswith("PollError invalid_response: get-chats: answer holds"), outcome
    # The body (and its over-allocation while it grows) and nothing decoded from it.
    assert result["peak_mb"] - result["start_mb"] < 2.5 * size / MIB, result


def test_answers_read_at_once_share_one_budget() -> None:
    size, polls = 24 * MIB, 8
    result = bench.run("concurrent", size, polls, barrier_wait=1.0)
    assert "error" not in result, result
    assert result["outcomes"] == ["ok: 1 chats"], result
    # The shared pool (40 MiB) and one large answer, each possibly held twice while a body grows
    # and is joined: not eight answers (the code before the budget: 182 MiB over the start). The
    # bound without the doubling was under the design's own and failed CI once by 3 MiB.
    assert result["peak_mb"] - result["start_mb"] < 2 * (40 * MIB + size) / MIB, result
