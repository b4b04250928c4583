"""The bounds that make max_response_size bound memory (issue 21, 1): items and bodies in flight."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import responses
from helpers import chat_obj, group_obj

from exporter.whatsgate.budget import BodyBudget, count_items, too_many_items
from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.parse import MAX_CHATS, MAX_PARTICIPANTS, InvalidResponse, parse_chats

URL = "http://whatsgate.test/api/v1"
MIB = 1 << 20


def answer(chats: list[dict]) -> bytes:
    return json.dumps({"result": "OK", "data": chats}, separators=(",", ":")).encode()


def test_items_are_counted_as_an_upper_bound_without_decoding() -> None:
    assert count_items(b'{"data":[{},{},{}]}') >= 5
    assert count_items(b"[]") == 2


def test_an_ordinary_answer_passes_the_item_count() -> None:
    chats = [chat_obj(f"{i}@c.us") for i in range(2000)] + [group_obj("1@g.us", members=500)]
    assert too_many_items(answer(chats), 64 * MIB) is None
    assert too_many_items(b'{"result":"OK","data":[]}', 64 * MIB) is None


def test_a_dense_answer_is_refused_by_density_and_a_long_one_by_the_cap() -> None:
    dense = b'{"result":"OK","data":[' + b",".join([b"{}"] * 100_000) + b"]}"
    assert "at most one per 8 bytes" in (too_many_items(dense, 64 * MIB) or "")
    assert "of max_response_size" in (too_many_items(dense, 1 * MIB) or "")


@responses.activate
def test_the_client_refuses_a_dense_answer_before_decoding_it() -> None:
    # 300,000 {} chats: the old client decoded every one of them before it refused the first.
    body = b'{"result":"OK","data":[' + b",".join([b"{}"] * 300_000) + b"]}"
    responses.post(f"{URL}/get-chats", body=body)
    client = WhatsGateClient(URL, "k", max_response_size=4 * MIB)
    with pytest.raises(PollError) as info:
        client.get_chats("a")
    assert info.value.reason == "invalid_response"
    assert "JSON items" in info.value.detail


@responses.activate
def test_the_client_refuses_a_group_of_empty_participants() -> None:
    # The old client accepted it (up 1), with a million-odd participants counted.
    group = group_obj("1@g.us", members=0)
    group["groupMetadata"]["participants"] = "PLACEHOLDER"
    body = answer([group]).replace(b'"PLACEHOLDER"', b"[" + b",".join([b"{}"] * 300_000) + b"]")
    responses.post(f"{URL}/get-chats", body=body)
    client = WhatsGateClient(URL, "k", max_response_size=4 * MIB)
    with pytest.raises(PollError) as info:
        client.get_chats("a")
    assert info.value.reason == "invalid_response"


def test_too_many_chats_are_refused() -> None:
    body = answer([chat_obj(f"{i}@c.us") for i in range(MAX_CHATS + 1)])
    with pytest.raises(InvalidResponse, match=r"^data: more than 100000 chats$"):
        parse_chats(body)
    assert len(parse_chats(answer([chat_obj(f"{i}@c.us") for i in range(MAX_CHATS)]))) == MAX_CHATS


def test_too_many_participants_are_refused() -> None:
    body = answer([group_obj("1@g.us", members=MAX_PARTICIPANTS + 1)])
    where = re.escape("data[0][id='1@g.us'].groupMetadata.participants")
    with pytest.raises(InvalidResponse, match=rf"^{where}: more than 10000 participants$"):
        parse_chats(body)
    (group,) = parse_chats(answer([group_obj("1@g.us", members=MAX_PARTICIPANTS)]))
    assert group.group is not None and group.group.participants == MAX_PARTICIPANTS


def test_bodies_share_the_pool_and_one_answer_at_a_time_may_exceed_it() -> None:
    budget = BodyBudget(shared=1000)
    first, second, third = budget.ticket(), budget.ticket(), budget.ticket()
    assert first.grow(600, 0) and second.grow(300, 0)
    assert budget.free == 100
    assert first.grow(600, 0) and first.large  # past the pool: the large slot
    assert budget.free == 700  # its pool bytes given back: the slot covers its whole body
    assert third.grow(500, 0) and not third.large
    assert not second.grow(800, 0.05)  # the slot is taken and the pool spent: no memory
    first.release()
    assert second.grow(800, 0) and second.large
    second.release()
    third.release()
    assert budget.free == 1000


def test_a_waiting_answer_gets_the_large_slot_when_it_is_released() -> None:
    budget = BodyBudget(shared=10)
    holder, waiter = budget.ticket(), budget.ticket()
    assert holder.grow(100, 0)
    threading.Timer(0.05, holder.release).start()
    started = time.monotonic()
    assert waiter.grow(100, 5)
    assert time.monotonic() - started < 4
    waiter.release()


@responses.activate
def test_a_poll_that_cannot_get_memory_is_a_timeout_saying_so() -> None:
    budget = BodyBudget(shared=1024)
    hog = budget.ticket()
    assert hog.grow(2048, 0) and hog.large  # another answer holds the large slot
    responses.post(f"{URL}/get-chats", body=answer([chat_obj(f"{i}@c.us") for i in range(100)]))
    client = WhatsGateClient(URL, "k", timeout=0.3, bodies=budget)
    with pytest.raises(PollError) as info:
        client.get_chats("a")
    assert info.value.reason == "timeout"
    assert "waited for memory" in info.value.detail
    hog.release()
    assert budget.free == 1024  # the failed poll gave its share back
    assert len(client.get_chats("a")) == 100
