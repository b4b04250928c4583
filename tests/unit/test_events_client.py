"""The client's events-get and get-history (HTTP faked by ``responses``, as only here)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from responses import matchers

from exporter.model import API_ERROR, INVALID_RESPONSE, UNAUTHORIZED
from exporter.snapshot.replies import Message
from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.events import Event, EventsPage, decode_events

URL = "https://gw.test/api/v1"
KEY = "SECRET-abc123"
MARKER = "BODY-MARKER-7f3a"
NOW = int(time.time())


@pytest.fixture
def client() -> Iterator[WhatsGateClient]:
    with responses.RequestsMock() as rsps:
        c = WhatsGateClient(URL, KEY, timeout=5)
        c.rsps = rsps  # type: ignore[attr-defined]
        yield c
        c.close()


def message(msg_id: str, ts: Any = NOW - 60, **extra: Any) -> dict[str, Any]:
    return {
        "_id": "3EB0",
        "id": msg_id,
        "ack": 1,
        "hasMedia": True,
        "mediaKey": f"{MARKER}-key",
        "body": f"hello {MARKER}",
        "caption": MARKER,
        "type": "chat",
        "timestamp": ts,
        "from": "79991112233@c.us",
        "to": "79999999999@c.us",
        "isForwarded": False,
    } | extra


def event(event_id: Any, action: str, data: Any, date: Any = "2026-12-04 10:00:00") -> dict[str, Any]:
    return {
        "id": event_id,
        "whatsapp_id": "W1",
        "event_action": action,
        "event_date": date,
        "status_code": None,
        "event_data": data,
    }


def answer(events: list[Any], pages: Any = 1, page: Any = 1) -> dict[str, Any]:
    return {"result": "OK", "pages": pages, "elements": len(events), "page": page, "data": events}


def serve(client: WhatsGateClient, command: str, body: Any, status: int = 200, **kw: Any) -> None:
    client.rsps.add(  # type: ignore[attr-defined]
        responses.POST,
        f"{URL}/{command}",
        body=body if isinstance(body, bytes) else json.dumps(body),
        status=status,
        **kw,
    )


def test_events_request_and_decoding(client: WhatsGateClient) -> None:
    events = [
        event(18, "message", {"message": message("false_79991112233@c.us_3EB0A")}),
        event(19, "create", {"message": message("true_79991112233@c.us_3EB0B", NOW - 30)}),
        event(20, "message", {"message": message("false_120363001@g.us_3EB0C_79991112233@c.us", NOW - 20)}),
        event(21, "disconnect", {"reason": "NAVIGATION"}),
        event(22, "message", {"message": message("false__3EB0D", NOW - 10)}),  # no chat part: from
        event(23, "ack", {"ack": 3}),
    ]
    client.rsps.add(  # type: ignore[attr-defined]
        responses.POST,
        f"{URL}/events-get",
        json=answer(events, pages=3, page=2),
        match=[
            matchers.json_params_matcher(
                {"WhatsappID": "W1", "page_cnt": 100, "page": 2, "date": "2026-12-04 09:00:00"}
            ),
            matchers.header_matcher({"X-Api-Key": KEY}),
        ],
    )
    page = client.events_page("W1", "2026-12-04 09:00:00", 2)
    assert page == EventsPage(
        (
            Event(18, "2026-12-04 10:00:00", "message", Message("79991112233@c.us", False, NOW - 60, 18)),
            Event(19, "2026-12-04 10:00:00", "create", Message("79991112233@c.us", True, NOW - 30, 19)),
            Event(20, "2026-12-04 10:00:00", "message", Message("120363001@g.us", False, NOW - 20, 20)),
            Event(21, "2026-12-04 10:00:00", "disconnect", None),
            Event(22, "2026-12-04 10:00:00", "message", Message("79991112233@c.us", False, NOW - 10, 22)),
            Event(23, "2026-12-04 10:00:00", "ack", None),
        ),
        page=2,
        pages=3,
        skipped=0,
    )
    assert MARKER not in repr(page)


def test_first_read_sends_no_date(client: WhatsGateClient) -> None:
    client.rsps.add(  # type: ignore[attr-defined]
        responses.POST,
        f"{URL}/events-get",
        json=answer([]),
        match=[matchers.json_params_matcher({"WhatsappID": "W1", "page_cnt": 100, "page": 1})],
    )
    assert client.events_page("W1", None, 1) == EventsPage((), 1, 1, 0)


@pytest.mark.parametrize(
    "bad",
    [
        message("maybe_79991112233@c.us_X"),  # neither direction
        message("false_79991112233_X", **{"from": None}),  # no @: not a chat
        message("false_7999\u00001@c.us_X"),  # not printable
        message("false_79991112233@c.us_X", ts=NOW + 3600),  # from the future
        message("false_79991112233@c.us_X", ts=-5),
        message("false_79991112233@c.us_X", ts=0),
        message("false_79991112233@c.us_X", ts=True),
        message("false_79991112233@c.us_X", ts="yesterday"),
        message(42),  # type: ignore[arg-type]
        None,
        "text",
    ],
)
def test_an_unusable_message_keeps_its_event_id_without_a_message(client: WhatsGateClient, bad: Any) -> None:
    serve(client, "events-get", answer([event(5, "create", {"message": bad})]))
    page = client.events_page("W1", None, 1)
    assert page.events == (Event(5, "2026-12-04 10:00:00", "create", None),)


@pytest.mark.parametrize(
    "bad",
    [
        event("5", "message", {}),
        event(None, "message", {}),
        event(5.5, "message", {}),
        event(5, "message", {}, date=None),
        event(5, "message", {}, date=""),
        event(5, "message", {}, date="2026\n"),
        f"event 5: {MARKER}",
        [1, 2],
    ],
)
def test_an_event_without_id_or_date_is_skipped_and_counted(client: WhatsGateClient, bad: Any) -> None:
    good = event(6, "disconnect", None)
    serve(client, "events-get", answer([bad, good]))
    page = client.events_page("W1", None, 1)
    assert page.events == (Event(6, "2026-12-04 10:00:00", "disconnect", None),) and page.skipped == 1


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        ([], INVALID_RESPONSE, "body is not a JSON object"),
        ({"result": "OK", "data": []}, INVALID_RESPONSE, "pages: expected a whole number, got null"),
        (
            {"result": "OK", "pages": "2", "page": 1, "data": []},
            INVALID_RESPONSE,
            "pages: expected a whole number",
        ),
        (
            {"result": "OK", "pages": 1, "page": -1, "data": []},
            INVALID_RESPONSE,
            "page: expected a whole number",
        ),
        (
            {"result": "OK", "pages": 1, "page": 1, "data": {"events": []}},
            INVALID_RESPONSE,
            "data: expected an array",
        ),
        ({"result": "ERROR", "message": "no session"}, API_ERROR, "result is 'ERROR': no session"),
    ],
)
def test_not_the_envelope_is_a_failed_poll(
    client: WhatsGateClient, body: Any, reason: str, says: str
) -> None:
    serve(client, "events-get", body)
    with pytest.raises(PollError) as err:
        client.events_page("W1", None, 1)
    assert err.value.reason == reason and says in err.value.detail
    assert err.value.detail.startswith("events-get: ")


def test_unauthorized_and_the_key_is_never_in_the_error(client: WhatsGateClient) -> None:
    serve(client, "get-history", {"name": "Unauthorized", "message": f"bad key {KEY}"}, status=401)
    with pytest.raises(PollError) as err:
        client.history("W1", "79991112233@c.us")
    assert err.value.reason == UNAUTHORIZED and KEY not in str(err.value)


def test_history_request_and_decoding(client: WhatsGateClient) -> None:
    data = [
        message("true_79991112233@c.us_A", NOW - 50),
        message("false_79991112233@c.us_B", NOW - 40),
        message("false_79990000000@c.us_C", NOW - 30),  # another chat: not this one's
        {"id": "false_79991112233@c.us_D"},  # no timestamp
    ]
    client.rsps.add(  # type: ignore[attr-defined]
        responses.POST,
        f"{URL}/get-history",
        json={"result": "OK", "data": data},
        match=[matchers.json_params_matcher({"WhatsappID": "W1", "recipient": {"id": "79991112233@c.us"}})],
    )
    found = client.history("W1", "79991112233@c.us")
    assert found == (
        (
            Message("79991112233@c.us", True, NOW - 50, None),
            Message("79991112233@c.us", False, NOW - 40, None),
        ),
        2,
    )
    assert MARKER not in repr(found)


def test_history_not_the_envelope(client: WhatsGateClient) -> None:
    serve(client, "get-history", {"result": "OK", "data": {"messages": []}})
    with pytest.raises(PollError) as err:
        client.history("W1", "79991112233@c.us")
    assert err.value.reason == INVALID_RESPONSE and "data: expected an array" in err.value.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers() | json_values,
        "event_date": st.text(max_size=20) | json_values,
        "event_action": st.sampled_from(["message", "create", "disconnect", "x"]) | json_values,
        "event_data": st.fixed_dictionaries({}, optional={"message": json_values}) | json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries(
        {"result": st.just("OK") | json_values},
        optional={
            "pages": st.integers(-1, 5) | json_values,
            "page": st.integers(-1, 5) | json_values,
            "data": st.lists(event_like | json_values, max_size=5) | json_values,
        },
    )
)
def test_any_answer_decodes_or_fails_as_a_poll(client: WhatsGateClient, body: dict[str, Any]) -> None:
    client.rsps.reset()  # type: ignore[attr-defined]
    serve(client, "events-get", body)
    try:
        page = client.events_page("W1", None, 1)
    except PollError as exc:
        assert exc.reason in (INVALID_RESPONSE, API_ERROR)
        return
    assert len(page.events) + page.skipped == len(body["data"])
    for e in page.events:
        assert type(e.id) is int and e.date and (e.message is None or e.message.event_id == e.id)


def test_a_lone_surrogate_in_one_body_does_not_fail_the_page(client: WhatsGateClient) -> None:
    # An emoji cut in half in a customer's text: msgspec refuses the whole answer, json.loads not.
    good = event(8, "message", {"message": message("false_79991112233@c.us_A", NOW - 9)})
    broken = event(9, "create", {"message": message("true_79991112233@c.us_B", NOW - 5)})
    text = json.dumps(answer([good, broken])).replace(f"hello {MARKER}", "cut \\ud83d", 1)
    assert "\\ud83d" in text
    serve(client, "events-get", text.encode())
    page = client.events_page("W1", None, 1)
    assert [e.id for e in page.events] == [8, 9] and page.skipped == 0
    assert page.events[0].message == Message("79991112233@c.us", False, NOW - 9, 8)
    history = {"result": "OK", "data": [message("false_79991112233@c.us_A", NOW - 9)]}
    serve(client, "get-history", json.dumps(history).replace(MARKER, "\\udc00", 1).encode())
    assert client.history("W1", "79991112233@c.us") == (
        (Message("79991112233@c.us", False, NOW - 9, None),),
        0,
    )


@pytest.mark.parametrize("command", ["events-get", "get-history"])
def test_an_answer_cut_in_a_body_shows_none_of_it(client: WhatsGateClient, command: str) -> None:
    cut = '{"result":"OK","data":[{"id":8,"event_data":{"message":{"body":"hello ' + MARKER + " my card"
    serve(client, command, cut.encode())
    with pytest.raises(PollError) as err:
        if command == "events-get":
            client.events_page("W1", None, 1)
        else:
            client.history("W1", "79991112233@c.us")
    assert err.value.reason == INVALID_RESPONSE and "not JSON" in err.value.detail
    assert MARKER not in str(err.value) and "hello" not in str(err.value)


def test_a_lone_surrogate_where_no_string_belongs_skips_only_its_event(client: WhatsGateClient) -> None:
    # msgspec.convert cannot even report a lone surrogate where a number belongs (it raised
    # UnicodeEncodeError, and the whole events poll failed as the exporter's own error).
    good = event(8, "message", {"message": message("false_79991112233@c.us_A", NOW - 9)})
    text = json.dumps(answer([good, event("BAD-ID", "disconnect", None)])).replace("BAD-ID", "\\ud800")
    serve(client, "events-get", text.encode())
    page = client.events_page("W1", None, 1)
    assert [e.id for e in page.events] == [8] and page.skipped == 1
    kept = event(9, "create", {"message": message("true_79991112233@c.us_B", "BAD-TS")})
    serve(client, "events-get", json.dumps(answer([kept])).replace("BAD-TS", "\\udc00").encode())
    assert client.events_page("W1", None, 1).events == (Event(9, "2026-12-04 10:00:00", "create", None),)
    history = {"result": "OK", "data": [message("false_79991112233@c.us_A", "BAD-TS")]}
    serve(client, "get-history", json.dumps(history).replace("BAD-TS", "\\udc00").encode())
    assert client.history("W1", "79991112233@c.us") == ((), 1)
    serve(client, "events-get", json.dumps(answer([good])).replace('"page"', '"\\ud800"').encode())
    with pytest.raises(PollError) as err:  # the envelope's page missing, its key a lone surrogate
        client.events_page("W1", None, 1)
    assert err.value.reason == INVALID_RESPONSE


@pytest.mark.parametrize("surrogate", [False, True])  # msgspec's whole answer, or json.loads item by item
def test_dates_and_times_ahead_are_taken_up_to_their_bounds(
    monkeypatch: pytest.MonkeyPatch, surrogate: bool
) -> None:
    # This machine's clock at 2026-03-01 00:30:00 UTC: an event_date up to a day ahead (local time
    # of an undocumented zone) is taken, a message up to FUTURE (300 s) ahead too; beyond, skipped.
    now = 1772325000
    monkeypatch.setattr(time, "time", lambda: float(now))
    chat = "79991112233@c.us"
    body = json.dumps(
        answer(
            [
                event(1, "message", {"message": message(f"false_{chat}_A", now)}, "2026-03-01 12:00:00"),
                event(2, "create", {"message": message(f"true_{chat}_B", now + 300)}, "2026-03-02 00:30:00"),
                event(3, "create", {"message": message(f"true_{chat}_C", now + 301)}, "2026-03-02 00:30:00"),
                event(4, "error", {}, "2026-03-02 00:30:01"),
                event(5, "error", {}, "2026-03-05 00:00:00"),
            ],
            pages=4,
            page=2,
        )
    )
    if surrogate:
        body = body.replace(f"hello {MARKER}", "cut \\ud83d", 1)
    page = decode_events(body.encode())
    assert [(e.id, e.message) for e in page.events] == [
        (1, Message(chat, False, now, 1)),
        (2, Message(chat, True, now + 300, 2)),
        (3, None),  # its event kept at the cursor, its message skipped
    ]
    assert (page.page, page.pages, page.skipped) == (2, 4, 2)
