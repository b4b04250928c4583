"""Unit tests for exporter.model: parsing the API's answers and the pure functions over chats."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pytest
from helpers import answer_chats, answer_sessions, one_chat
from hypothesis import given
from hypothesis import strategies as st

from exporter.model import CONTACT, GROUP, Chat, ChatsConfig, Group, Session
from exporter.snapshot.summary import TypeSummary, priority, select_chats, summarize
from exporter.whatsgate.parse import InvalidResponse

# The "Full response example" of get-chats.txt, verbatim (including "size": 0 with two participants).
DOCUMENTED_EXAMPLE = """
{
"result":"OK",
"data" : [
{
"id" : "79999999999@c.us",
"name" : "+7 999 999-99-99",
"isGroup" : false,
"isReadOnly" : false,
"unreadCount" : 0,
"timestamp" : 1662710454,
"pinned" : false,
"isMuted" : false,
"muteExpiration" : 0
},
{
"id" : "4239048293082@g.us",
"name" : "Test group",
"isGroup" : true,
"isReadOnly" : false,
"unreadCount" : 0,
"timestamp" : 1662616476,
"pinned" : false,
"isMuted" : false,
"muteExpiration" : 0,
"groupMetadata" : {
"id" : "4239048293082@g.us",
"creation" : 1658328976,
"owner" : "79999999999@c.us",
"size" : 0,
"participants" : [
{
"id" : "79999999999@c.us",
"isAdmin" : true,
"isSuperAdmin" : false
},
{
"id" : "79991112233@c.us",
"isAdmin" : false,
"isSuperAdmin":false
}
]
}
}
]
}
"""


def contact(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "79991112233@c.us",
        "name": "Vasily",
        "isGroup": False,
        "isReadOnly": False,
        "unreadCount": 0,
        "timestamp": 1662710454,
        "pinned": False,
        "isMuted": False,
        "muteExpiration": 0,
    }
    obj.update(overrides)
    return obj


def group(meta: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    default_meta: dict[str, Any] = {
        "id": "4239048293082@g.us",
        "creation": 1658328976,
        "owner": "79991112233@c.us",
        "size": 3,
        "participants": [
            {"id": "1@c.us", "isAdmin": True, "isSuperAdmin": False},
            {"id": "2@c.us", "isAdmin": False, "isSuperAdmin": False},
            {"id": "3@c.us", "isAdmin": False, "isSuperAdmin": False},
        ],
    }
    obj = contact(id="4239048293082@g.us", name="Test group", isGroup=True)
    obj["groupMetadata"] = default_meta if meta is None else meta
    obj.update(overrides)
    return obj


def invalid(obj: Any) -> str:
    with pytest.raises(InvalidResponse) as info:
        one_chat(obj)
    return str(info.value)


def make(
    chat_id: str,
    unread: int = 0,
    ts: int = 0,
    *,
    name: str | None = None,
    is_group: bool = False,
    read_only: bool = False,
    muted: bool = False,
    pinned: bool = False,
) -> Chat:
    return Chat(
        id=chat_id,
        name=chat_id if name is None else name,
        is_group=is_group,
        read_only=read_only,
        unread=unread,
        last_activity=ts,
        pinned=pinned,
        muted=muted,
        group=Group(created=0, participants=None, admins=None, size=2) if is_group else None,
    )


# --- the documented example -----------------------------------------------------


def test_documented_full_example_parses() -> None:
    chats = answer_chats(json.loads(DOCUMENTED_EXAMPLE))

    assert chats[0] == Chat(
        id="79999999999@c.us",
        name="+7 999 999-99-99",
        is_group=False,
        read_only=False,
        unread=0,
        last_activity=1662710454,
        pinned=False,
        muted=False,
        group=None,
    )
    assert chats[0].chat_type == CONTACT
    g = chats[1]
    assert g.chat_type == GROUP
    assert g.is_group is True
    assert g.last_activity == 1662616476
    assert g.group == Group(created=1658328976, participants=2, admins=1, size=0)
    assert g.group is not None
    assert g.group.member_count == 2  # size 0 is wrong: the participant list wins
    assert len(chats) == 2


# --- groups ----------------------------------------------------------------------


def test_participants_absent_member_count_is_size() -> None:
    chat = one_chat(group({"size": 7, "creation": 5}))
    assert chat.group == Group(created=5, participants=None, admins=None, size=7)
    assert chat.group is not None
    assert chat.group.member_count == 7


def test_participants_null_is_like_absent() -> None:
    chat = one_chat(group({"size": 4, "participants": None}))
    assert chat.group is not None
    assert chat.group.participants is None
    assert chat.group.admins is None
    assert chat.group.member_count == 4


def test_group_metadata_size_and_creation_optional() -> None:
    chat = one_chat(group({"participants": [{"id": "1@c.us", "isAdmin": True}]}))
    assert chat.group == Group(created=0, participants=1, admins=1, size=0)


@pytest.mark.parametrize(
    ("flags", "admins"),
    [
        ([(True, False), (False, False)], 1),
        ([(False, True), (False, False)], 1),  # super admin counts
        ([(True, True)], 1),  # both flags: one admin, not two
        ([(True, False), (False, True), (True, True), (False, False)], 3),
        ([(False, False)], 0),
    ],
)
def test_admin_count(flags: list[tuple[bool, bool]], admins: int) -> None:
    people = [{"id": f"{i}@c.us", "isAdmin": a, "isSuperAdmin": s} for i, (a, s) in enumerate(flags)]
    chat = one_chat(group({"size": 0, "participants": people}))
    assert chat.group is not None
    assert chat.group.admins == admins
    assert chat.group.participants == len(flags)
    assert chat.group.member_count == len(flags)


def test_missing_admin_flags_mean_not_admin() -> None:
    chat = one_chat(group({"size": 1, "participants": [{"id": "1@c.us"}]}))
    assert chat.group is not None
    assert chat.group.admins == 0


def test_member_count_property() -> None:
    assert Group(created=0, participants=5, admins=1, size=0).member_count == 5
    assert Group(created=0, participants=5, admins=1, size=9).member_count == 5
    assert Group(created=0, participants=None, admins=None, size=9).member_count == 9


def test_large_group() -> None:
    people = [{"id": f"{i}@c.us", "isAdmin": i < 3, "isSuperAdmin": i == 0} for i in range(1024)]
    chat = one_chat(group({"size": 1024, "participants": people}))
    assert chat.group == Group(created=0, participants=1024, admins=3, size=1024)


@pytest.mark.parametrize(
    ("meta", "where"),
    [
        ("not an object", "groupMetadata"),
        ({"participants": {"id": "1@c.us"}}, "groupMetadata.participants"),
        ({"participants": ["1@c.us"]}, "groupMetadata.participants[0]"),
        (
            {"participants": [{"id": "1", "isAdmin": False}, {"id": "2", "isAdmin": 1}]},
            "groupMetadata.participants[1]",
        ),
        ({"participants": [{"id": "1", "isSuperAdmin": "true"}]}, "groupMetadata.participants[0]"),
        ({"size": True}, "groupMetadata.size"),
        ({"size": "3"}, "groupMetadata.size"),
        ({"size": -1}, "groupMetadata.size"),
        ({"creation": "yesterday"}, "groupMetadata.creation"),
    ],
)
def test_bad_group_metadata(meta: Any, where: str) -> None:
    assert where in invalid(group(meta))


def test_group_without_metadata_is_invalid() -> None:
    obj = group()
    del obj["groupMetadata"]
    assert "groupMetadata: missing" in invalid(obj)


def test_contact_ignores_group_metadata() -> None:
    chat = one_chat(contact(groupMetadata="whatever"))
    assert chat.group is None


# --- required fields and types ---------------------------------------------------

REQUIRED = ["id", "name", "isGroup", "isReadOnly", "unreadCount", "timestamp", "pinned", "isMuted"]


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize("make_obj", [contact, group], ids=["contact", "group"])
def test_missing_required_field(field: str, make_obj: Any) -> None:
    obj = make_obj()
    del obj[field]
    message = invalid(obj)
    assert f".{field}: missing" in message


def test_mute_expiration_is_optional() -> None:
    obj = contact(isMuted=True)
    del obj["muteExpiration"]
    assert one_chat(obj).muted is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", 5),
        ("id", None),
        ("name", 5),
        ("name", None),
        ("name", ["a"]),
        ("isGroup", 1),
        ("isGroup", "false"),
        ("isGroup", None),
        ("isReadOnly", 0),
        ("pinned", 1),
        ("isMuted", "true"),
        ("unreadCount", True),
        ("unreadCount", False),
        ("unreadCount", "7"),
        ("unreadCount", None),
        ("unreadCount", [1]),
        ("timestamp", True),
        ("timestamp", "1662710454"),
        ("timestamp", {}),
    ],
)
def test_wrong_type(field: str, value: Any) -> None:
    message = invalid(contact(**{field: value}))
    assert f".{field}: expected" in message


def test_wrong_type_message_names_both_types() -> None:
    message = invalid(contact(unreadCount=True))
    assert "expected integer or number, got boolean" in message
    assert "expected boolean, got integer" in invalid(contact(pinned=1))


@pytest.mark.parametrize("field", ["unreadCount", "timestamp"])
def test_negative_numbers_are_invalid(field: str) -> None:
    message = invalid(contact(**{field: -1}))
    assert f".{field}: negative" in message


def test_integral_float_is_accepted() -> None:
    assert one_chat(contact(unreadCount=7.0)).unread == 7


def test_empty_id_is_invalid() -> None:
    assert "id: empty" in invalid(contact(id=""))


@pytest.mark.parametrize("obj", [None, [], "chat", 3])
def test_chat_not_an_object(obj: Any) -> None:
    assert "expected object" in invalid(obj)


def test_error_names_the_chat_id() -> None:
    assert "79991112233@c.us" in invalid(contact(pinned="no"))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_number_is_invalid_response(value: float) -> None:
    with pytest.raises(InvalidResponse):
        one_chat(contact(unreadCount=value))


# --- names kept verbatim --------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Семья 👨‍👩‍👧‍👦 🎉",
        "مرحبا بالعالم",
        "שלום \u202eevil\u202c",
        "He said \"hi\" and 'bye'",
        "line one\nline two\r\nline three",
        "back\\slash {braces} $dollar ${VAR}",
        "",
        "  padded  ",
        "x" * 5000,
    ],
    ids=["emoji", "arabic", "rtl-override", "quotes", "newlines", "specials", "empty", "padded", "long"],
)
def test_names_kept_verbatim(name: str) -> None:
    payload = json.loads(json.dumps({"result": "OK", "data": [contact(name=name), group(name=name)]}))
    chats = answer_chats(payload)
    assert [c.name for c in chats] == [name, name]


# --- whole answers ------------------------------------------------------------


def test_parse_chats_empty_list() -> None:
    assert answer_chats({"result": "OK", "data": []}) == []


def test_duplicate_chat_ids_are_invalid() -> None:
    with pytest.raises(InvalidResponse, match="appears twice"):
        answer_chats({"result": "OK", "data": [contact(), contact(id="x@c.us"), contact(name="other")]})


@pytest.mark.parametrize("data", [{}, None, "chats", 3, {"0": {}}])
def test_data_not_a_list(data: Any) -> None:
    with pytest.raises(InvalidResponse, match=r"^data: expected array"):
        answer_chats({"result": "OK", "data": data})


@pytest.mark.parametrize("payload", [[], None, "OK", 1])
def test_payload_not_an_object(payload: Any) -> None:
    with pytest.raises(InvalidResponse, match="expected a JSON object"):
        answer_chats(payload)


def test_payload_without_data() -> None:
    with pytest.raises(InvalidResponse, match="no 'data' field"):
        answer_chats({"result": "OK"})


def test_bad_chat_in_list_names_its_index() -> None:
    with pytest.raises(InvalidResponse, match=re.escape("data[2]")):
        answer_chats({"result": "OK", "data": [contact(id="a"), contact(id="b"), "oops"]})
    bad = contact(id="c")
    del bad["timestamp"]
    with pytest.raises(InvalidResponse, match=re.escape("data[1][id='c'].timestamp: missing")):
        answer_chats({"result": "OK", "data": [contact(id="a"), bad]})


def test_unknown_fields_are_ignored() -> None:
    chats = answer_chats({"result": "OK", "extra": 1, "data": [contact(newField={"a": 1}, unreadCount=2)]})
    assert chats[0].unread == 2


# --- sessions -----------------------------------------------------------------


def test_parse_sessions() -> None:
    payload = {
        "result": "OK",
        "pages": 3,
        "elements": 5,
        "page": 1,
        "data": [
            {"id": 1, "name": "main", "unique_id": "wa-1", "status": "READY", "status_name": "Working"},
            {"id": 2, "name": None, "unique_id": "wa-2", "status": "AUTH"},
            {"id": 3, "unique_id": "wa-3", "status": "READY"},
        ],
    }
    sessions, pages = answer_sessions(payload)
    assert sessions == [
        Session(whatsapp_id="wa-1", name="main", status="READY"),
        Session(whatsapp_id="wa-2", name="", status="AUTH"),
        Session(whatsapp_id="wa-3", name="", status="READY"),
    ]
    assert pages == 3


@pytest.mark.parametrize(
    ("pages", "expected"), [(None, 1), (0, 1), (-2, 1), (True, 1), ("3", 1), (2.0, 1), (7, 7)]
)
def test_parse_sessions_pages(pages: Any, expected: int) -> None:
    payload: dict[str, Any] = {"result": "OK", "data": []}
    if pages is not None:
        payload["pages"] = pages
    assert answer_sessions(payload) == ([], expected)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([{"status": "READY"}], r"data\[0\]\.unique_id: missing"),
        ([{"unique_id": 5, "status": "READY"}], r"data\[0\]\.unique_id: expected string"),
        ([{"unique_id": "x"}], r"data\[0\]\.status: missing"),
        (["wa-1"], r"data\[0\]: expected object"),
        ({}, "data: expected array"),
    ],
)
def test_parse_sessions_invalid(data: Any, match: str) -> None:
    with pytest.raises(InvalidResponse, match=match):
        answer_sessions({"result": "OK", "data": data})


# --- summarize ----------------------------------------------------------------


def test_summarize_counts_per_type() -> None:
    chats = [
        make("a@c.us", unread=3, pinned=True),
        make("b@c.us", unread=0, muted=True),
        make("c@c.us", unread=10, read_only=True, muted=True),
        make("d@c.us"),
        make("g1@g.us", is_group=True, unread=5, muted=True, pinned=True),
        make("g2@g.us", is_group=True, read_only=True),
    ]
    summary = summarize(chats)
    assert summary == {
        CONTACT: TypeSummary(chats=4, chats_unread=2, unread_messages=13, read_only=1, muted=2, pinned=1),
        GROUP: TypeSummary(chats=2, chats_unread=1, unread_messages=5, read_only=1, muted=1, pinned=1),
    }


def test_summarize_empty_has_both_types_at_zero() -> None:
    assert summarize([]) == {CONTACT: TypeSummary(), GROUP: TypeSummary()}
    assert TypeSummary() == TypeSummary(0, 0, 0, 0, 0, 0)


def test_summarize_accepts_an_iterator() -> None:
    summary = summarize(iter([make("a@c.us", unread=1), make("b@c.us", unread=2)]))
    assert summary[CONTACT].unread_messages == 3
    assert summary[GROUP].chats == 0


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 2**53), st.booleans(), st.booleans(), st.booleans()),
        max_size=40,
    )
)
def test_summarize_is_a_count_chat_by_chat(rows: list[tuple[bool, int, bool, bool, bool]]) -> None:
    """The column sums (every chat, then groups, contacts by difference) equal a plain loop."""
    chats = [
        make(f"{i}", unread, is_group=grp, read_only=ro, muted=mu, pinned=pi)
        for i, (grp, unread, ro, mu, pi) in enumerate(rows)
    ]
    expected = {}
    for chat_type in (CONTACT, GROUP):
        mine = [c for c in chats if c.chat_type == chat_type]
        expected[chat_type] = TypeSummary(
            chats=len(mine),
            chats_unread=len([c for c in mine if c.unread > 0]),
            unread_messages=sum(c.unread for c in mine),
            read_only=len([c for c in mine if c.read_only]),
            muted=len([c for c in mine if c.muted]),
            pinned=len([c for c in mine if c.pinned]),
        )
    assert summarize(chats) == expected


# --- select_chats ----------------------------------------------------------------


def rules(include: Sequence[str] = (), exclude: Sequence[str] = (), cap: int = 1000) -> ChatsConfig:
    return ChatsConfig(
        include=tuple(re.compile(p) for p in include),
        exclude=tuple(re.compile(p) for p in exclude),
        max_per_account=cap,
    )


CHATS = [
    make("1@c.us", unread=0, ts=100, name="Alice"),
    make("2@c.us", unread=5, ts=50, name="Bob"),
    make("3@g.us", unread=5, ts=200, name="Team VIP", is_group=True),
    make("4@g.us", unread=1, ts=300, name="Spam central", is_group=True),
    make("5@c.us", unread=0, ts=400, name="Carol"),
]


def ids(selection: Any) -> list[str]:
    return [c.id for c in selection.chats]


def test_select_all_without_rules_keeps_order() -> None:
    config = rules()
    selection = select_chats(CHATS, config.selects, config.max_per_account)
    assert ids(selection) == ["1@c.us", "2@c.us", "3@g.us", "4@g.us", "5@c.us"]
    assert selection.filtered == 0
    assert selection.over_limit == 0
    assert isinstance(selection.chats, tuple)


def test_include_matches_id_or_name() -> None:
    config = rules(include=[r"@g\.us$", "^Alice$"])
    selection = select_chats(CHATS, config.selects, config.max_per_account)
    assert ids(selection) == ["1@c.us", "3@g.us", "4@g.us"]
    assert selection.filtered == 2


def test_exclude_matches_id_or_name_and_wins_over_include() -> None:
    config = rules(include=[r"@g\.us$", "Alice"], exclude=["(?i)spam", r"^1@"])
    selection = select_chats(CHATS, config.selects, config.max_per_account)
    assert ids(selection) == ["3@g.us"]
    assert selection.filtered == 4
    assert selection.over_limit == 0


def test_cap_keeps_most_unread_then_most_recent() -> None:
    config = rules(cap=3)
    selection = select_chats(CHATS, config.selects, config.max_per_account)
    # 3@g.us and 2@c.us both have 5 unread: the more recent (ts 200) comes first.
    assert ids(selection) == ["3@g.us", "2@c.us", "4@g.us"]
    assert selection.over_limit == 2
    assert selection.filtered == 0


def test_cap_ties_on_unread_broken_by_recency() -> None:
    chats = [make("old", ts=1), make("new", ts=3), make("mid", ts=2)]
    assert ids(select_chats(chats, lambda i, n: True, 2)) == ["new", "mid"]


def test_filter_then_cap() -> None:
    config = rules(exclude=["Spam"], cap=2)
    selection = select_chats(CHATS, config.selects, config.max_per_account)
    assert ids(selection) == ["3@g.us", "2@c.us"]
    assert selection.filtered == 1
    assert selection.over_limit == 2


def test_cap_zero_means_no_cap() -> None:
    many = [make(f"{i}@c.us", unread=i % 7, ts=i) for i in range(2500)]
    selection = select_chats(many, lambda i, n: True, 0)
    assert len(selection.chats) == 2500
    assert selection.over_limit == 0
    assert [c.id for c in selection.chats] == [c.id for c in many]


def test_cap_equal_to_count_is_not_over() -> None:
    selection = select_chats(CHATS, lambda i, n: True, len(CHATS))
    assert selection.over_limit == 0
    assert len(selection.chats) == len(CHATS)


def test_select_does_not_mutate_input() -> None:
    chats = list(CHATS)
    select_chats(chats, lambda i, n: True, 2)
    assert chats == CHATS


def test_priority_order() -> None:
    assert priority(make("a", unread=5, ts=1)) < priority(make("b", unread=4, ts=999))
    assert priority(make("a", unread=5, ts=2)) < priority(make("b", unread=5, ts=1))
