"""Sharding: a stable split, every account owned by exactly one shard."""

from __future__ import annotations

import pytest

from exporter.config.schema import ConfigError
from exporter.config.settings import parse_config
from exporter.config.sharding import Shard, parse_flag, shard_of


def test_the_hash_is_the_documented_one_and_stable():
    # sha256("79990001122") starts with 0x2b09e6ba...: fixed across processes and versions.
    import hashlib

    digest = hashlib.sha256(b"79990001122").digest()
    assert shard_of("79990001122", 7) == int.from_bytes(digest[:8], "big") % 7
    assert [shard_of(f"wa-{i}", 3) for i in range(6)] == [shard_of(f"wa-{i}", 3) for i in range(6)]


def test_every_account_is_owned_by_exactly_one_shard_and_the_split_is_even():
    ids = [f"7999{i:07d}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if s.owns(i)] for i in ids]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(3)]
    assert min(sizes) > 900, sizes


def test_flag_and_config():
    assert parse_flag("1/3") == Shard(1, 3)
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError):
            parse_flag(bad)
    assert parse_config({"shard": {"index": 2, "total": 4}}, polling=False).shard == Shard(2, 4)
    with pytest.raises(ConfigError, match=r"shard\.index: must be less than shard\.total \(2\)"):
        parse_config({"shard": {"index": 2, "total": 2}}, polling=False)
    with pytest.raises(ConfigError, match=r"shard\.size: unknown key"):
        parse_config({"shard": {"size": 2}}, polling=False)
