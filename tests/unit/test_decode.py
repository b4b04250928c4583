"""The fast decoder against the reference parser, and what a lone surrogate or a huge number does.

Differential: for generated answers, valid and broken, decode.py never accepts what
the slow path (json.loads + parse.py, as the client runs it) rejects, and when it
accepts, its records are the parser's. Then the two documented refusals, end to end
from the answer's bytes through the poller to a rendered /metrics.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from helpers import chat_obj, group_obj
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.decode import decode_chats
from exporter.whatsgate.parse import MAX_NUMBER, InvalidResponse, parse_chats

URL = "http://whatsgate.test/api/v1"


def reference(body: bytes) -> list | None:
    """What the client's slow path makes of a 200 answer: records, or None for a rejection."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("result") != "OK":
        return None
    if isinstance(payload.get("name"), str) and "message" in payload:
        return None
    try:
        return parse_chats(payload)
    except InvalidResponse:
        return None


# Values a field may be replaced by: every JSON type, and the edge cases of each.
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 3.0, 2.5, -0.0, 1e300, MAX_NUMBER, MAX_NUMBER + 1, 10**400, 2**64]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["", "\ud800", "a\udfffb", "😀", "\\", '"']),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["isAdmin", "size", "x"]), st.booleans(), max_size=2),
)
FIELDS = ["id", "name", "isGroup", "isReadOnly", "unreadCount", "timestamp", "pinned", "isMuted"]
META = ["size", "creation", "participants"]


@st.composite
def chat(draw: st.DrawFn, index: int) -> dict[str, Any]:
    if draw(st.booleans()):
        obj = group_obj(
            f"{index}@g.us",
            draw(st.integers(0, 5)),
            members=draw(st.integers(0, 4)),
            admins=draw(st.integers(0, 2)),
            size=draw(st.integers(0, 30)),
        )
    else:
        obj = chat_obj(f"{index}@c.us", draw(st.integers(0, 5)), name=draw(st.text(max_size=8)))
    for _ in range(draw(st.integers(0, 2))):  # break (or keep) a few fields
        field = draw(st.sampled_from([*FIELDS, "groupMetadata", "dup"]))
        if field == "dup":
            obj["id"] = "0@c.us"
        elif draw(st.booleans()) and field in obj:
            del obj[field]
        elif field == "groupMetadata" and isinstance(obj.get(field), dict) and draw(st.booleans()):
            obj[field][draw(st.sampled_from(META))] = draw(ODD)
        else:
            obj[field] = draw(ODD)
    return obj


@st.composite
def answer(draw: st.DrawFn) -> bytes:
    data = [draw(chat(i)) for i in range(draw(st.integers(0, 6)))]
    payload: Any = {"result": draw(st.sampled_from(["OK", "OK", "OK", "ERROR", None])), "data": data}
    if draw(st.integers(0, 9)) == 0:
        payload = draw(st.sampled_from([data, {"result": "OK"}, {"result": "OK", "data": {}}]))
    text = json.dumps(payload, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")  # raw ED A0 80 when not ASCII-escaped


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer())
def test_fast_decoder_agrees_with_parser(body: bytes) -> None:
    fast, slow = decode_chats(body), reference(body)
    if fast is not None:  # the fast path may defer to the slow one, never overrule it
        assert slow is not None, "fast path accepted what the parser rejects"
        assert fast == slow


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, MAX_NUMBER), st.text()), max_size=8))
def test_fast_decoder_accepts_well_formed_answers(rows: list[tuple[bool, int, str]]) -> None:
    data = [
        group_obj(f"{i}@g.us", n % 7, members=3, admins=1, size=n)
        if is_group
        else chat_obj(f"{i}@c.us", n, n, name)
        for i, (is_group, n, name) in enumerate(rows)
        if is_group or not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name)
    ]
    body = json.dumps({"result": "OK", "data": data}).encode()
    fast = decode_chats(body)
    assert fast is not None and fast == reference(body)


# --- surrogates and out-of-range numbers: rejected with the field's path -----------------------


def test_client_fast_path_keeps_error_classification() -> None:
    """An error object in a 200 answer still goes through the slow path's classification."""
    client = WhatsGateClient(URL, "k")
    body = json.dumps({"result": "OK", "data": [], "name": "Unauthorized", "message": "bad key"})
    with responses.RequestsMock() as mock:
        mock.post(f"{URL}/get-chats", body=body, content_type="application/json")
        with pytest.raises(PollError) as caught:
            client.get_chats("W1")
    assert caught.value.reason == "unauthorized"


@pytest.mark.parametrize(
    "extra",
    [b'"\xff":1', b'"x":"\xff"', b'"x":{"\xc3":[1]}', b'"muteExpiration":"\xe2\x82"'],
    ids=["key", "value", "nested-key", "cut-sequence"],
)
def test_invalid_utf8_where_msgspec_does_not_look_is_refused_as_the_reference_does(extra: bytes) -> None:
    # msgspec checks the UTF-8 of the strings it keeps, not of an unknown field it skips;
    # json.loads refuses the whole answer: one verdict, the reference's.
    chat = json.dumps(chat_obj("1@c.us"), separators=(",", ":")).encode()
    for body in (
        b'{"result":"OK",' + extra + b',"data":[' + chat + b"]}",
        b'{"result":"OK","data":[' + chat[:-1] + b"," + extra + b"}]}",
    ):
        assert reference(body) is None
        assert decode_chats(body) is None


def test_encoded_surrogates_where_msgspec_does_not_look_are_accepted_as_the_reference_does() -> None:
    # json.loads reads bytes with "surrogatepass": an unknown field's ED A0 80 does not refuse it.
    body = b'{"result":"OK","data":[],"x":"\xed\xa0\x80","\xc3\xa9":1}'
    assert reference(body) == []
    assert decode_chats(body) == []
