"""The one answer parser on generated answers, valid and broken, against the documentation.

For every generated get-chats answer, ``parse_chats`` either returns exactly the records the
documentation gives (computed here, independently, from the JSON) or, when the answer breaks
the documentation, raises InvalidResponse naming a broken chat (``data[i]...``) or the
duplicate id; never another exception, never records from a broken answer. Then what the
parser decides that no type says: an error object in a 200 answer, invalid UTF-8 and encoded
surrogates where msgspec does not look.
"""

from __future__ import annotations

import json
import math
import re
import tracemalloc
from typing import Any

import pytest
import responses
from helpers import chat_obj, group_obj
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.model import Chat, Group
from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.parse import MAX_NUMBER, MAX_PARTICIPANTS, InvalidResponse, parse_chats

URL = "http://whatsgate.test/api/v1"


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


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.encode("utf-8", "surrogatepass") == value.encode(
        "utf-8", "replace"
    )


def _number(value: Any, whole: bool) -> bool:
    if type(value) not in (int, float) or not 0 <= value <= MAX_NUMBER or not math.isfinite(value):
        return False
    return not whole or value == int(value)


def _group(meta: Any) -> Group | None:
    """The documented group metadata as a record, or None when it breaks the documentation."""
    if not isinstance(meta, dict):
        return None
    size, creation, people = meta.get("size", 0), meta.get("creation", 0), meta.get("participants")
    if not (_number(size, whole=True) and _number(creation, whole=False)):
        return None
    if people is None:
        return Group(int(creation), None, None, int(size))
    if not isinstance(people, list) or len(people) > MAX_PARTICIPANTS:
        return None
    flags = [[p.get(k, False) for k in ("isAdmin", "isSuperAdmin")] for p in people if isinstance(p, dict)]
    if len(flags) != len(people) or any(type(f) is not bool for pair in flags for f in pair):
        return None
    return Group(int(creation), len(people), sum(any(pair) for pair in flags), int(size))


def documented(obj: Any) -> Chat | None:
    """A chat object as the documentation reads it, or None when it breaks the documentation."""
    if not isinstance(obj, dict):
        return None
    flags = [obj.get(k) for k in ("isGroup", "isReadOnly", "pinned", "isMuted")]
    if any(type(f) is not bool for f in flags) or not (_text(obj.get("id")) and obj["id"]):
        return None
    if not (_text(obj.get("name")) and _number(obj.get("unreadCount"), whole=True)):
        return None
    if not _number(obj.get("timestamp"), whole=False):
        return None
    group = _group(obj.get("groupMetadata")) if obj["isGroup"] else None
    if obj["isGroup"] and group is None:
        return None
    is_group, read_only, pinned, muted = flags
    unread, ts = int(obj["unreadCount"]), int(obj["timestamp"])
    return Chat(obj["id"], obj["name"], is_group, read_only, unread, ts, pinned, muted, group)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer())
def test_the_parser_gives_the_documented_records_or_names_a_broken_chat(body: bytes) -> None:
    payload = json.loads(body)
    data = payload.get("data") if isinstance(payload, dict) and payload.get("result") == "OK" else None
    if not isinstance(data, list):
        with pytest.raises(InvalidResponse):
            parse_chats(body)
        return
    records = [documented(obj) for obj in data]
    broken = {f"data[{i}]" for i, record in enumerate(records) if record is None}
    ids = [obj["id"] for obj in data if isinstance(obj, dict) and "id" in obj]
    if not broken and len(set(ids)) == len(ids):
        assert parse_chats(body) == records
        return
    with pytest.raises(InvalidResponse) as refused:
        parse_chats(body)
    message = str(refused.value)
    named = re.match(r"data\[\d+\]", message)  # the chat's index, whatever its id holds
    assert message.startswith("data: chat id ") or (named is not None and named[0] in broken), message


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, MAX_NUMBER), st.text()), max_size=8))
def test_well_formed_answers_are_taken_whole(rows: list[tuple[bool, int, str]]) -> None:
    data = [
        group_obj(f"{i}@g.us", n % 7, members=3, admins=1, size=n)
        if is_group
        else chat_obj(f"{i}@c.us", n, n, name)
        for i, (is_group, n, name) in enumerate(rows)
        if is_group or not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name)
    ]
    body = json.dumps({"result": "OK", "data": data}).encode()
    assert parse_chats(body) == [documented(obj) for obj in data]


# --- what no type says ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "reason", "says"),
    [
        ({"result": "OK", "name": "Unauthorized", "message": "bad key"}, "unauthorized", "bad key"),
        ({"result": "ERROR", "message": "no session"}, "api_error", "result is 'ERROR': no session"),
        ({"result": "OK", "name": "Other", "message": "m"}, "invalid_response", "data[0]: expected object"),
        ({"result": "OK"}, "invalid_response", "data[0]: expected object, got string"),
    ],
)
@pytest.mark.parametrize("data", [[], ["broken"]], ids=["empty", "broken"])
def test_an_answer_that_is_not_ok_is_classified_whatever_its_data(
    envelope: dict[str, Any], reason: str, says: str, data: list[Any]
) -> None:
    """An error object or a result not OK is named as such, before any bad chat."""
    client = WhatsGateClient(URL, "k")
    with responses.RequestsMock() as mock:
        mock.post(f"{URL}/get-chats", body=json.dumps({**envelope, "data": data}))
        if not data and reason == "invalid_response":  # a foreign error object beside result OK
            assert client.get_chats("W1") == []
            return
        with pytest.raises(PollError) as caught:
            client.get_chats("W1")
    assert caught.value.reason == reason and says in caught.value.detail


@pytest.mark.parametrize(
    "extra",
    [b'"\xff":1', b'"x":"\xff"', b'"x":{"\xc3":[1]}', b'"muteExpiration":"\xe2\x82"'],
    ids=["key", "value", "nested-key", "cut-sequence"],
)
def test_invalid_utf8_where_msgspec_does_not_look_is_refused(extra: bytes) -> None:
    # msgspec checks the UTF-8 of the strings it keeps, not of an unknown field it skips;
    # json.loads, and so the API's JSON, refuses the whole answer.
    chat = json.dumps(chat_obj("1@c.us"), separators=(",", ":")).encode()
    for body in (
        b'{"result":"OK",' + extra + b',"data":[' + chat + b"]}",
        b'{"result":"OK","data":[' + chat[:-1] + b"," + extra + b"}]}",
    ):
        with pytest.raises(InvalidResponse):
            parse_chats(body)


def test_encoded_surrogates_where_msgspec_does_not_look_are_accepted() -> None:
    # json.loads reads bytes with "surrogatepass": an unknown field's ED A0 80 does not refuse it.
    body = b'{"result":"OK","data":[],"x":"\xed\xa0\x80","\xc3\xa9":1}'
    assert parse_chats(body) == []
    # Nor a lone surrogate in an unknown key, of the answer or of a chat.
    chat = json.dumps(chat_obj("1@c.us")).encode()
    body = b'{"result":"OK","\\ud800":1,"data":[' + chat[:-1] + b',"\\udc00":{"\\ud800":2}}]}'
    assert [c.id for c in parse_chats(body)] == ["1@c.us"]


def test_a_large_answer_is_decoded_without_holding_its_chats_twice() -> None:
    """Decoding a 10,000-chat answer peaks (above its bytes) near what its records keep: each
    decoded chat is freed as its record is made, and the UTF-8 check decodes a small slice of
    the bytes at a time beside them, not a megabyte (each was most of a 10,000-chat poll's peak)."""
    data = [
        group_obj(f"{i}@g.us", 1, members=20, name=f"Группа {i}")
        if i % 10 == 0
        else chat_obj(f"7999{i:07d}@c.us", i % 3, name=f"Чат {i} \U0001f642")
        for i in range(10_000)
    ]
    body = json.dumps({"result": "OK", "data": data}, ensure_ascii=False).encode()
    parse_chats(body)  # once before: what the first decode caches is not this one's
    tracemalloc.start()
    try:
        chats = parse_chats(body)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(chats) == 10_000 and chats[1].name == "Чат 1 \U0001f642"
    assert peak < 1.6 * kept, (peak, kept)
