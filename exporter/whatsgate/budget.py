"""What answers may cost in memory: bytes of bodies in flight, and items per answer.

``max_response_size`` bounds one answer's bytes, not what the process holds: eight
polls at once each reading an answer of that size held eight bodies, and one answer of
nothing but ``{}`` decoded into one dict per three bytes (issue 21; the figures are in
bench/RESULTS.md, "Hostile answers within max_response_size"). Two bounds make it real:

- :class:`BodyBudget`: the bodies being read or waiting to be decoded share one pool
  (:data:`SHARED_BYTES`), counted chunk by chunk as bytes arrive. A body that needs more
  than the pool can give takes the single *large* slot, which lets it grow up to
  ``max_response_size`` and is held until the answer is decoded; a second large answer
  waits for the slot within its poll's deadline, and fails as a timeout saying so. The
  bodies held at once are so at most ``SHARED_BYTES + max_response_size``, whatever
  ``poll_concurrency``.
- :func:`too_many_items`: before an answer is decoded, its JSON items (an upper bound:
  the ``{``, ``[`` and ``,`` bytes) are counted in one pass without allocating. An answer
  may carry one item per :data:`BYTES_PER_ITEM` of its bytes (or :data:`SMALL_ITEMS`) and at most one per
  :data:`MAX_BYTES_PER_ITEM_CAP` of ``max_response_size``. What json.loads costs per item
  (its worst shape: distinct keys with distinct short values) bounds one answer's decoding
  to a small multiple of its bytes and of ``max_response_size`` (the factor is in
  bench/RESULTS.md), and answers are decoded one at a time (memory.HEAVY_WORK). Real
  answers are far sparser than the density refused.
"""

from __future__ import annotations

import threading

# The pool every body draws from before it needs the large slot: eight 10,000-chat answers
# with groups read at once without waiting.
SHARED_BYTES = 40 * 1024 * 1024
# An answer denser than one item per this many bytes is refused (real ones are about twice as sparse).
BYTES_PER_ITEM = 8
# Below this many items an answer costs little whatever its density (`{"data":[]}` is 3 items
# in 11 bytes).
SMALL_ITEMS = 65_536
# And no answer carries more than one item per this many bytes of max_response_size (at the
# default: about 50,000 contacts, or twice the bench's large account of 10,000 chats, a fifth
# of them groups of 20).
MAX_BYTES_PER_ITEM_CAP = 128


def count_items(content: bytes | bytearray) -> int:
    """An upper bound on the values in a JSON text: every value but a container's first follows a
    comma, and a first one follows its container's opening bracket (brackets in strings only
    add to the bound)."""
    return content.count(b"{") + content.count(b"[") + content.count(b",") + 1


def too_many_items(content: bytes | bytearray, max_size: int) -> str | None:
    """Why the answer holds too many items to be decoded, or None."""
    items = count_items(content)
    cap = max(max_size // MAX_BYTES_PER_ITEM_CAP, 1)
    if items > cap:
        per = MAX_BYTES_PER_ITEM_CAP
        return f"more than {cap} JSON items ({items}; one per {per} bytes of max_response_size)"
    if items > SMALL_ITEMS and items * BYTES_PER_ITEM > len(content):
        return f"{items} JSON items in {len(content)} bytes (at most one per {BYTES_PER_ITEM} bytes)"
    return None


class BodyBudget:
    """Bytes of answer bodies held at once, process-wide (see the module's docstring)."""

    def __init__(self, shared: int = SHARED_BYTES) -> None:
        self.shared = shared
        self._free = shared
        self._lock = threading.Lock()
        self._large = threading.Lock()

    def ticket(self) -> Ticket:
        return Ticket(self)

    @property
    def free(self) -> int:
        return self._free


class Ticket:
    """One answer's share of a :class:`BodyBudget`; :meth:`release` once the answer is decoded."""

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self.held = 0
        self.large = False

    def grow(self, n: int, wait: float) -> bool:
        """Account for ``n`` more bytes; False if they cannot be had within ``wait`` seconds."""
        budget = self._budget
        if self.large:
            return True
        with budget._lock:
            if budget._free >= n:
                budget._free -= n
                self.held += n
                return True
        # The pool is spent: this answer needs the large slot. The slot's holder never waits for
        # the pool, nor for anything a waiter holds, so waiting cannot deadlock.
        if not budget._large.acquire(timeout=max(wait, 0.0)):
            return False
        self.large = True
        self._give_back()  # the pool's bytes are not needed: the slot covers the whole body
        return True

    def _give_back(self) -> None:
        with self._budget._lock:
            self._budget._free += self.held
            self.held = 0

    def release(self) -> None:
        self._give_back()
        if self.large:
            self.large = False
            self._budget._large.release()
