"""The one exception every failed WhatsGate call becomes (see :mod:`.client`)."""

from __future__ import annotations


class PollError(Exception):
    """A failed call, classified. ``str()`` is a one-line, secret-free description."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
