"""Keep the process's memory flat on glibc, where most deployments run.

Three glibc behaviours cost tens of MB at 10,000 chats per account:
- every thread that allocates gets its own malloc arena (up to 8 per core), so
  memory freed after one account's poll is not reused by the next account's
  thread, and the process grows by one transient per worker;
- freed memory in the middle of the heap stays resident until trimmed;
- the threshold above which a block gets a mapping of its own rises to the size
  of every mapped block freed, so after the first poll the large transients
  (answer bodies, rendered families) come from the heap too, where the
  long-lived objects allocated meanwhile keep it from shrinking.
So the heavy work is done one account at a time, the arena count is capped and
the mmap threshold fixed before any worker starts, and the heap is trimmed once
a poll's transient (decoded JSON, rendering) is freed, at most once a second.
Elsewhere (musl, macOS) the last three are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

# Decoding an answer and rendering its snapshot are CPU-bound and hold the GIL,
# so accounts gain nothing by doing them at the same time. Taking this lock for
# both bounds the transient memory to one account's worth (tens of MB at
# 10,000 chats), instead of one per worker. Reentrant: a get-chats poll keeps it from
# its decode to the end of its render (WhatsGateClient.held), and the render takes it
# again inside. Taken after an account's lock (AccountPoller.lock), never before it.
HEAVY_WORK = threading.RLock()

_M_ARENA_MAX = -8  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - probe: glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


# One arena: the big allocations (bodies, rendered text) are made under HEAVY_WORK one
# account at a time anyway, so more arenas only add fragmentation: a lower peak RSS than
# two, for the same CPU per cycle (bench/RESULTS.md, memory.py).
ARENAS = 1


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (what MALLOC_ARENA_MAX does); call before starting threads."""
    return bool(_LIBC and _LIBC.mallopt(_M_ARENA_MAX, count))


# Blocks from this size up are mapped on their own and unmapped when freed. glibc starts at
# a smaller threshold and raises it as mapped blocks are freed; fixed, the answer bodies and
# rendered families of every poll stay out of the heap. The price: a mapped block is faulted
# in afresh each time, which a poll pays in CPU. Not lower: the scrapes' writes would then be
# mapped too, which showed as scrape latency; higher kept half the saving for less CPU
# (bench/RESULTS.md, memory.py).
MMAP_THRESHOLD = 512 * 1024


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold (what MALLOC_MMAP_THRESHOLD_ does); call before starting threads."""
    return bool(_LIBC and _LIBC.mallopt(_M_MMAP_THRESHOLD, size))


# malloc_trim hands the freed pages of a poll back to the system, and the next poll faults
# them in again, at a cost in system and user time per poll. At most one trim a second keeps
# the steady-state peak where it was and drops that cost while polls come in bursts
# (bench/RESULTS.md, memory.py). A trim skipped in a burst
# is made up once the second is over (a one-shot timer), so what the burst's last polls
# freed is not held until the next publish, which at start-up may be a poll interval away.
TRIM_INTERVAL = 1.0
_last_trim = -TRIM_INTERVAL
_trim_lock = threading.Lock()
_trailing: threading.Timer | None = None


def trim(now: float | None = None) -> bool:
    """Give freed heap pages back to the system, at most once per TRIM_INTERVAL; whether it did.

    A call within the interval of the last trim schedules one trim for its end instead.
    """
    global _last_trim, _trailing
    if _LIBC is None:
        return False
    now = time.monotonic() if now is None else now
    with _trim_lock:
        wait = _last_trim + TRIM_INTERVAL - now
        if wait > 0:
            if _trailing is None:
                _trailing = threading.Timer(wait, _trim_later)
                _trailing.daemon = True  # never keeps the process from exiting
                _trailing.start()
            return False
        _last_trim = now
    _LIBC.malloc_trim(0)
    return True


def _trim_later() -> None:
    global _trailing
    with _trim_lock:
        _trailing = None
    trim()
