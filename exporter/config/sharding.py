"""Sharding: N exporters split the accounts of one API key between them, each polled exactly once.

An account belongs to shard ``index`` of ``total`` when the first 8 bytes of
the SHA-256 of its WhatsappID (UTF-8), read as a big-endian unsigned integer,
modulo ``total`` equal ``index``. The hash is stable across processes,
versions and platforms (unlike Python's ``hash()``), so every replica agrees
without talking to the others. Being a modulo, it is not consistent hashing:
going from N to N+1 shards moves about N/(N+1) of the accounts to another
shard (the README's resharding notes say what that does to their waits).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_FLAG_RE = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.index < self.total:
            raise ValueError(f"shard index must be in 0..{self.total - 1} and total at least 1")

    def owns(self, whatsapp_id: str) -> bool:
        return self.total == 1 or shard_of(whatsapp_id, self.total) == self.index


def shard_of(whatsapp_id: str, total: int) -> int:
    digest = hashlib.sha256(whatsapp_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % total


def parse_flag(value: str) -> Shard:
    """``--shard I/N``: this exporter is shard I (counted from 0) of N."""
    match = _FLAG_RE.match(value.strip())
    if not match:
        raise ValueError(f"expected INDEX/TOTAL such as 0/3, got {value!r}")
    return Shard(int(match.group(1)), int(match.group(2)))
