"""The answer parser's refusals, pinned whole: the reason and the full location of the bad field.

An operator reads ``invalid_response: data[3][id='7999@c.us'].unreadCount: ...`` in the log and
in whatsgate_poll_errors_total's last error; a message that lost its ``data[3]``, the chat's id
or the ``.groupMetadata`` step says nothing about where to look. So each case below compares
the whole message, not a substring of it. Counts are whole numbers: a fractional ``unreadCount``
or group ``size`` is refused, naming the field, also through the client; a timestamp may come
as a float (documented).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from helpers import answer_chats, answer_sessions, chat_obj, group_obj

from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.parse import MAX_NUMBER, InvalidResponse, parse_chats

URL = "http://whatsgate.test/api/v1"
C = "data[1][id='2@c.us']"  # the second chat: the index and the id both in the path
G = "data[1][id='2@g.us'].groupMetadata"


def refusal(second: dict[str, Any]) -> str:
    with pytest.raises(InvalidResponse) as info:
        answer_chats({"result": "OK", "data": [chat_obj("1@c.us", 1), second]})
    return str(info.value)


def contact(**fields: Any) -> dict[str, Any]:
    return {**chat_obj("2@c.us", 1), **fields}


def group(**meta: Any) -> dict[str, Any]:
    obj = group_obj("2@g.us", 1, members=2, admins=1, size=2)
    obj["groupMetadata"] = {**obj["groupMetadata"], **meta}
    return obj


def without_metadata() -> dict[str, Any]:
    return {k: v for k, v in group().items() if k != "groupMetadata"}


@pytest.mark.parametrize(
    "second, message",
    [
        (contact(unreadCount=2.5), f"{C}.unreadCount: expected a whole number, got 2.5"),
        (contact(unreadCount=0.5), f"{C}.unreadCount: expected a whole number, got 0.5"),
        (contact(unreadCount=-1), f"{C}.unreadCount: negative value -1"),
        (contact(unreadCount=2**53 + 2), f"{C}.unreadCount: out of range (above 2**53)"),
        (contact(unreadCount="1"), f"{C}.unreadCount: expected integer or number, got string"),
        (contact(timestamp=float("inf")), f"{C}.timestamp: expected a whole number, got inf"),
        (contact(timestamp=-5), f"{C}.timestamp: negative value -5"),
        (contact(id=7), "data[1].id: expected string, got integer"),
        (contact(id=""), "data[1].id: empty"),
        (contact(id="\ud800"), "data[1].id: not valid Unicode (lone surrogate)"),
        (contact(id="7" * 80, pinned=1), "data[1].pinned: expected boolean, got integer"),
        (contact(name=None), f"{C}.name: expected string, got null"),
        (contact(name="a\udfff"), f"{C}.name: not valid Unicode (lone surrogate)"),
        (contact(name="\ud800", pinned=3), f"{C}.name: not valid Unicode (lone surrogate)"),
        (contact(isGroup="\ud800"), f"{C}.isGroup: expected boolean, got string"),
        (contact(unreadCount="\ud800"), f"{C}.unreadCount: expected integer or number, got string"),
        (contact(**{"\ud800": 1}, id=5), "data[1].id: expected string, got integer"),
        (contact(isGroup="no"), f"{C}.isGroup: expected boolean, got string"),
        (contact(isReadOnly=0), f"{C}.isReadOnly: expected boolean, got integer"),
        (contact(pinned=None), f"{C}.pinned: expected boolean, got null"),
        (contact(isMuted=[]), f"{C}.isMuted: expected boolean, got array"),
        ({k: v for k, v in contact().items() if k != "timestamp"}, f"{C}.timestamp: missing"),
        (group(size=2.5), f"{G}.size: expected a whole number, got 2.5"),
        (group(size=-2), f"{G}.size: negative value -2"),
        (group(creation="x"), f"{G}.creation: expected integer or number, got string"),
        (group(participants={}), f"{G}.participants: expected array, got object"),
        (group(participants=[{}, 3]), f"{G}.participants[1]: expected object, got integer"),
        (
            group(participants=[{}, {"isAdmin": 1}]),
            f"{G}.participants[1]: isAdmin/isSuperAdmin must be booleans",
        ),
        ({**group(), "groupMetadata": 5}, "data[1][id='2@g.us'].groupMetadata: expected object, got integer"),
        ({**group(), "groupMetadata": None}, "data[1][id='2@g.us'].groupMetadata: expected object, got null"),
        (without_metadata(), "data[1][id='2@g.us'].groupMetadata: missing"),
        ({**without_metadata(), "id": "7" * 80}, "data[1].groupMetadata: missing"),
        (
            group(participants=[{}, {"isSuperAdmin": "yes"}]),
            f"{G}.participants[1]: isAdmin/isSuperAdmin must be booleans",
        ),
        (contact(timestamp=-1.5), f"{C}.timestamp: negative value -1.5"),
        (contact(pinned=1.5), f"{C}.pinned: expected boolean, got number"),
        ("chat", "data[1]: expected object, got string"),
    ],
)
def test_a_refusal_names_the_reason_and_the_whole_path(second: Any, message: str):
    assert refusal(second) == message


def test_2_to_the_53_is_the_largest_number_taken():
    (chat,) = answer_chats({"result": "OK", "data": [chat_obj("1@c.us", MAX_NUMBER, ts=MAX_NUMBER)]})
    assert (chat.unread, chat.last_activity) == (2**53, 2**53)


def test_a_fractional_float_timestamp_is_taken_but_a_fractional_count_never():
    (chat,) = answer_chats({"result": "OK", "data": [chat_obj("1@c.us", 1, ts=1_700_000_000.75)]})
    assert chat.last_activity == 1_700_000_000
    # A whole float is a whole number, count or not.
    (chat,) = answer_chats({"result": "OK", "data": [{**chat_obj("1@c.us"), "unreadCount": 3.0}]})
    assert chat.unread == 3 and type(chat.unread) is int and type(chat.last_activity) is int


@pytest.mark.parametrize(
    "obj, where",
    [
        (contact(unreadCount=2.5), f"{C}.unreadCount"),
        (contact(unreadCount=1e-300), f"{C}.unreadCount"),
        (group(size=0.25), f"{G}.size"),
    ],
)
def test_a_fractional_count_is_refused_through_the_client_naming_the_field(obj: dict, where: str):
    body = json.dumps({"result": "OK", "data": [chat_obj("1@c.us", 1), obj]}).encode()
    client = WhatsGateClient(URL, "k")
    with responses.RequestsMock() as mock:
        mock.post(f"{URL}/get-chats", body=body, content_type="application/json")
        with pytest.raises(PollError) as caught:
            client.get_chats("W1")
    assert caught.value.reason == "invalid_response"
    assert f"{where}: expected a whole number, got " in caught.value.detail


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "answer: expected a JSON object, got array"),
        ({"result": "OK"}, "answer: no 'data' field"),
        ({"data": {}}, "data: expected array, got object"),
        ({"data": [{}, 5]}, "data[0].unique_id: missing"),
        ({"data": [{"unique_id": "W1", "status": "READY"}, 5]}, "data[1]: expected object, got integer"),
        ({"data": [{"unique_id": "W1", "status": None}]}, "data[0].status: expected string, got null"),
    ],
)
def test_sessions_refusals_name_the_path(payload: Any, message: str):
    with pytest.raises(InvalidResponse) as info:
        answer_sessions(payload)
    assert str(info.value) == message


def test_duplicate_ids_name_the_id():
    with pytest.raises(InvalidResponse) as info:
        answer_chats({"result": "OK", "data": [chat_obj("1@c.us"), chat_obj("2@c.us"), chat_obj("1@c.us")]})
    assert str(info.value) == "data: chat id '1@c.us' appears twice"
    with pytest.raises(InvalidResponse) as info:
        answer_chats({"result": "OK", "data": [chat_obj("2@c.us"), chat_obj("1@c.us"), chat_obj("1@c.us")]})
    assert str(info.value) == "data: chat id '1@c.us' appears twice"


def test_a_lone_surrogate_escaped_in_capitals_is_found_too():
    text = json.dumps({"result": "OK", "data": [chat_obj("1@c.us", name="NAME")]}).replace("NAME", "x\\uDFFF")
    with pytest.raises(InvalidResponse) as info:
        parse_chats(text.encode())
    assert str(info.value) == "data[0][id='1@c.us'].name: not valid Unicode (lone surrogate)"


def test_a_bad_data_is_named():
    with pytest.raises(InvalidResponse) as info:
        answer_chats({"result": "OK", "data": {"0": chat_obj("1@c.us")}})
    assert str(info.value) == "data: expected array, got object"
