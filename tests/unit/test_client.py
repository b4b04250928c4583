"""Unit tests for exporter.whatsgate.client, with HTTP faked by ``responses``."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from exporter import memory
from exporter.config.schema import ConfigError
from exporter.config.settings import parse_config
from exporter.model import REASONS, Chat, Group, Session
from exporter.whatsgate.client import PollError, WhatsGateClient

URL = "https://gw.test/api/v1"
KEY = "SECRET-abc123"
CHATS_URL = f"{URL}/get-chats"
SESSIONS_URL = f"{URL}/sessions-get"

UNAUTHORIZED = {
    "name": "Unauthorized",
    "message": "Your request was made with invalid credentials.",
    "code": 0,
}
HTML = "<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>\n</body></html>"


def chat_obj(**overrides: Any) -> dict[str, Any]:
    obj = {
        "id": "79991112233@c.us",
        "name": "Vasily",
        "isGroup": False,
        "isReadOnly": False,
        "unreadCount": 3,
        "timestamp": 1662710454,
        "pinned": True,
        "isMuted": False,
        "muteExpiration": 0,
    }
    obj.update(overrides)
    return obj


GROUP_OBJ = chat_obj(
    id="4239048293082@g.us",
    name="Test group",
    isGroup=True,
    unreadCount=0,
    pinned=False,
    isMuted=True,
    groupMetadata={
        "id": "4239048293082@g.us",
        "creation": 1658328976,
        "owner": "79991112233@c.us",
        "size": 3,
        "participants": [
            {"id": "79991112233@c.us", "isAdmin": True, "isSuperAdmin": False},
            {"id": "79156666555@c.us", "isAdmin": False, "isSuperAdmin": False},
        ],
    },
)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def client() -> Iterator[WhatsGateClient]:
    c = WhatsGateClient(URL, KEY, timeout=1.5)
    yield c
    c.close()


def poll_error(client: WhatsGateClient) -> PollError:
    with pytest.raises(PollError) as info:
        client.get_chats("acc-1")
    return info.value


def assert_clean(exc: PollError, client: WhatsGateClient) -> None:
    """The contract of every PollError: a known reason, one line, no secret anywhere."""
    assert exc.reason in REASONS
    text = str(exc)
    assert text == f"{exc.reason}: {exc.detail}"
    assert "\n" not in text
    assert "\r" not in text
    assert KEY not in text
    assert KEY not in repr(exc)
    assert KEY not in exc.detail
    assert KEY not in repr(client)


# --- success ----------------------------------------------------------------


def test_get_chats_success_sends_key_and_body(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(
        CHATS_URL,
        json={"result": "OK", "data": [chat_obj(), GROUP_OBJ]},
        match=[
            matchers.header_matcher({"X-Api-Key": KEY, "Content-Type": "application/json"}),
            matchers.json_params_matcher({"WhatsappID": "acc-1"}, strict_match=True),
        ],
    )
    chats = client.get_chats("acc-1")

    assert chats == [
        Chat(
            id="79991112233@c.us",
            name="Vasily",
            is_group=False,
            read_only=False,
            unread=3,
            last_activity=1662710454,
            pinned=True,
            muted=False,
        ),
        Chat(
            id="4239048293082@g.us",
            name="Test group",
            is_group=True,
            read_only=False,
            unread=0,
            last_activity=1662710454,
            pinned=False,
            muted=True,
            group=Group(created=1658328976, participants=2, admins=1, size=3),
        ),
    ]
    assert len(mocked.calls) == 1
    request = mocked.calls[0].request
    assert request.method == "POST"
    assert request.url == CHATS_URL
    assert KEY not in request.url


def test_trailing_slash_in_url_is_dropped(mocked: responses.RequestsMock) -> None:
    mocked.post(CHATS_URL, json={"result": "OK", "data": []})
    c = WhatsGateClient(URL + "/", KEY)
    try:
        assert c.get_chats("acc-1") == []
    finally:
        c.close()
    assert mocked.calls[0].request.url == CHATS_URL


def test_repr_has_url_but_no_key(client: WhatsGateClient) -> None:
    assert URL in repr(client)
    assert KEY not in repr(client)
    assert KEY not in str(client)


@pytest.mark.parametrize(
    "command", ["send", "seen", "typing", "session-delete", "set-hook", "get-chats/../send"]
)
def test_write_commands_are_refused_without_sending(
    mocked: responses.RequestsMock, client: WhatsGateClient, command: str
) -> None:
    mocked.post(f"{URL}/{command}", json={"result": "OK"})
    with pytest.raises(ValueError, match="refusing"):
        client.call(command, {}, bytes)
    assert len(mocked.calls) == 0


# --- failure classification -------------------------------------------------

FAILURES: list[tuple[str, dict[str, Any], str]] = [
    ("read-timeout", {"body": requests.exceptions.ReadTimeout()}, "timeout"),
    ("connect-timeout", {"body": requests.exceptions.ConnectTimeout()}, "timeout"),
    ("connection-error", {"body": requests.exceptions.ConnectionError("boom")}, "connection"),
    (
        "connection-refused",
        {"body": requests.exceptions.ConnectionError("[Errno 111] Connection refused")},
        "connection",
    ),
    ("other-request-exception", {"body": requests.exceptions.TooManyRedirects()}, "connection"),
    ("500-unauthorized", {"status": 500, "json": UNAUTHORIZED}, "unauthorized"),
    ("401-json", {"status": 401, "json": UNAUTHORIZED}, "unauthorized"),
    ("401-empty", {"status": 401, "body": ""}, "unauthorized"),
    ("403-text", {"status": 403, "body": "Forbidden", "content_type": "text/plain"}, "unauthorized"),
    ("200-unauthorized-object", {"status": 200, "json": UNAUTHORIZED}, "unauthorized"),
    (
        "500-api-error",
        {"status": 500, "json": {"name": "Bad Request", "message": "WhatsappID is invalid", "code": 400}},
        "api_error",
    ),
    ("500-html", {"status": 500, "body": HTML, "content_type": "text/html"}, "http_status"),
    ("500-json-not-error-object", {"status": 500, "json": {"oops": True}}, "http_status"),
    (
        "429-json",
        {"status": 429, "json": {"name": "Too Many Requests", "message": "slow down", "code": 429}},
        "http_status",
    ),
    ("429-text", {"status": 429, "body": "rate limited", "content_type": "text/plain"}, "http_status"),
    ("502-html", {"status": 502, "body": HTML, "content_type": "text/html"}, "http_status"),
    ("503-empty", {"status": 503, "body": ""}, "http_status"),
    ("404-html", {"status": 404, "body": HTML, "content_type": "text/html"}, "http_status"),
    ("200-html", {"status": 200, "body": HTML, "content_type": "text/html"}, "invalid_response"),
    ("200-empty", {"status": 200, "body": ""}, "invalid_response"),
    (
        "200-not-utf8",
        {"status": 200, "body": b"\xff\xfe\xfd{", "content_type": "application/json"},
        "invalid_response",
    ),
    ("200-json-list", {"status": 200, "json": [chat_obj()]}, "invalid_response"),
    ("200-json-string", {"status": 200, "json": "OK"}, "invalid_response"),
    (
        "200-result-error",
        {"status": 200, "json": {"result": "ERROR", "message": "session not found"}},
        "api_error",
    ),
    ("200-no-result", {"status": 200, "json": {"data": []}}, "api_error"),
    ("200-no-data", {"status": 200, "json": {"result": "OK"}}, "invalid_response"),
    ("200-data-object", {"status": 200, "json": {"result": "OK", "data": {}}}, "invalid_response"),
    (
        "200-chat-missing-id",
        {
            "status": 200,
            "json": {"result": "OK", "data": [{k: v for k, v in chat_obj().items() if k != "id"}]},
        },
        "invalid_response",
    ),
    (
        "200-unread-string",
        {"status": 200, "json": {"result": "OK", "data": [chat_obj(unreadCount="7")]}},
        "invalid_response",
    ),
    (
        "200-duplicate-ids",
        {"status": 200, "json": {"result": "OK", "data": [chat_obj(), chat_obj()]}},
        "invalid_response",
    ),
]


@pytest.mark.parametrize(("kwargs", "reason"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_failure_reason(
    mocked: responses.RequestsMock, client: WhatsGateClient, kwargs: dict[str, Any], reason: str
) -> None:
    mocked.add(responses.POST, CHATS_URL, **kwargs)
    exc = poll_error(client)
    assert exc.reason == reason
    assert exc.detail.startswith("get-chats")
    assert_clean(exc, client)


def test_timeout_detail_names_the_limit(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, body=requests.exceptions.ReadTimeout())
    exc = poll_error(client)
    assert exc.detail.startswith("get-chats: connected, but no answer within 0.")
    assert exc.detail.endswith("s (whatsgate.timeout is 1.5s)")
    assert len(mocked.calls) == 1  # reads are not retried


def test_connection_refused_is_labelled(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, body=requests.exceptions.ConnectionError("[Errno 111] Connection refused"))
    assert poll_error(client).detail == "get-chats: connection refused"


def test_unauthorized_detail_has_status_and_message(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, status=500, json=UNAUTHORIZED)
    exc = poll_error(client)
    assert "HTTP 500" in exc.detail
    assert "invalid credentials" in exc.detail


def test_api_error_detail_has_name_and_message(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(
        CHATS_URL, status=500, json={"name": "Bad Request", "message": "WhatsappID is invalid", "code": 1}
    )
    exc = poll_error(client)
    assert "Bad Request" in exc.detail
    assert "WhatsappID is invalid" in exc.detail


def test_http_status_detail_has_status_and_content_type(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, status=500, body=HTML, content_type="text/html; charset=utf-8")
    exc = poll_error(client)
    assert exc.detail == "get-chats: HTTP 500 (text/html)"


def test_invalid_response_detail_is_flattened_and_truncated(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, status=200, body="<p>\n" * 500, content_type="text/html")
    exc = poll_error(client)
    assert exc.reason == "invalid_response"
    assert "not JSON" in exc.detail
    assert exc.detail.endswith("...")
    assert len(exc.detail) < 300


def test_invalid_chat_detail_names_field(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, json={"result": "OK", "data": [chat_obj(unreadCount="7")]})
    exc = poll_error(client)
    assert "unreadCount" in exc.detail


def test_result_error_detail_has_message(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, json={"result": "ERROR", "message": "session not found"})
    exc = poll_error(client)
    assert exc.detail == "get-chats: result is 'ERROR': session not found"


# --- retries ------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_twice(
    mocked: responses.RequestsMock, client: WhatsGateClient, status: int
) -> None:
    mocked.post(CHATS_URL, status=status, body=HTML, content_type="text/html")
    exc = poll_error(client)
    assert exc.reason == "http_status"
    assert f"HTTP {status}" in exc.detail
    assert len(mocked.calls) == 3


def test_gateway_error_then_success(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, status=502, body=HTML, content_type="text/html")
    mocked.post(CHATS_URL, json={"result": "OK", "data": [chat_obj()]})
    assert [c.id for c in client.get_chats("acc-1")] == ["79991112233@c.us"]
    assert len(mocked.calls) == 2


@pytest.mark.parametrize("status", [429, 500])
def test_rate_limit_and_api_errors_are_not_retried(
    mocked: responses.RequestsMock, client: WhatsGateClient, status: int
) -> None:
    mocked.post(CHATS_URL, status=status, json=UNAUTHORIZED | {"name": "X"})
    poll_error(client)
    assert len(mocked.calls) == 1


# --- a hostile or buggy server that echoes the key back -------------------------

ECHO_SAFE: list[tuple[str, dict[str, Any]]] = [
    ("429-text", {"status": 429, "body": f"rate limited for key {KEY}", "content_type": "text/plain"}),
    ("502-html", {"status": 502, "body": f"<html>X-Api-Key: {KEY}</html>", "content_type": "text/html"}),
    ("500-html", {"status": 500, "body": f"<html>X-Api-Key: {KEY}</html>", "content_type": "text/html"}),
    (
        "200-bad-field-type",
        {"status": 200, "json": {"result": "OK", "data": [chat_obj(name=KEY, pinned="no")]}},
    ),
]

ECHO_LEAKS: list[tuple[str, dict[str, Any]]] = [
    ("500-unauthorized", {"status": 500, "json": UNAUTHORIZED | {"message": f"Key {KEY} is not valid"}}),
    ("401-unauthorized", {"status": 401, "json": UNAUTHORIZED | {"message": f"Key {KEY} is not valid"}}),
    (
        "500-api-error-message",
        {"status": 500, "json": {"name": "Error", "message": f"bad key {KEY}", "code": 1}},
    ),
    ("500-api-error-name", {"status": 500, "json": {"name": f"Error {KEY}", "message": "x", "code": 1}}),
    ("200-html", {"status": 200, "body": f"<html>X-Api-Key: {KEY}</html>", "content_type": "text/html"}),
    ("200-result-error", {"status": 200, "json": {"result": "ERROR", "message": f"key {KEY} expired"}}),
    ("200-result-is-key", {"status": 200, "json": {"result": KEY}}),
    (
        "200-invalid-chat-id",
        {"status": 200, "json": {"result": "OK", "data": [chat_obj(id=KEY, pinned="no")]}},
    ),
]


@pytest.mark.parametrize("kwargs", [e[1] for e in ECHO_SAFE], ids=[e[0] for e in ECHO_SAFE])
def test_echoed_key_does_not_leak(
    mocked: responses.RequestsMock, client: WhatsGateClient, kwargs: dict[str, Any]
) -> None:
    mocked.add(responses.POST, CHATS_URL, **kwargs)
    assert_clean(poll_error(client), client)


@pytest.mark.parametrize("kwargs", [e[1] for e in ECHO_LEAKS], ids=[e[0] for e in ECHO_LEAKS])
def test_echoed_key_in_error_body_does_not_leak(
    mocked: responses.RequestsMock, client: WhatsGateClient, kwargs: dict[str, Any]
) -> None:
    mocked.add(responses.POST, CHATS_URL, **kwargs)
    exc = poll_error(client)
    assert KEY not in str(exc)
    assert KEY not in repr(exc)


# --- malformed bodies that escape the classification ---------------------------


def test_error_name_with_newline_is_one_line(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(CHATS_URL, status=500, json={"name": "Internal\nError", "message": "x", "code": 1})
    exc = poll_error(client)
    assert exc.reason == "api_error"
    assert "\n" not in str(exc)


@pytest.mark.parametrize("token", ["NaN", "Infinity"])
def test_non_finite_number_is_invalid_response(
    mocked: responses.RequestsMock, client: WhatsGateClient, token: str
) -> None:
    body = json.dumps({"result": "OK", "data": [chat_obj(unreadCount=12345)]}).replace("12345", token)
    mocked.post(CHATS_URL, body=body, content_type="application/json")
    assert poll_error(client).reason == "invalid_response"


def test_deeply_nested_json_is_invalid_response(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, body="[" * 100_000, content_type="application/json")
    assert poll_error(client).reason == "invalid_response"


def test_negative_infinity_is_invalid_response(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    body = json.dumps({"result": "OK", "data": [chat_obj(unreadCount=12345)]}).replace("12345", "-Infinity")
    mocked.post(CHATS_URL, body=body, content_type="application/json")
    exc = poll_error(client)
    assert exc.reason == "invalid_response"
    assert "unreadCount" in exc.detail and "-inf" in exc.detail


# --- sessions-get ---------------------------------------------------------------


def session_obj(n: int, status: str = "READY") -> dict[str, Any]:
    return {
        "id": n,
        "name": f"session {n}",
        "unique_id": f"wa-{n}",
        "status": status,
        "status_name": "Working",
        "callback": "",
        "date_add": "2024-01-01 00:00:00",
        "pushname": "",
        "wid": f"7999000000{n}@c.us",
        "qr_link": "",
    }


def sessions_page(page: int, pages: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"result": "OK", "pages": pages, "elements": 6, "page": page, "data": items}


def test_sessions_follows_pagination(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    for page in (1, 2, 3):
        mocked.post(
            SESSIONS_URL,
            json=sessions_page(page, 3, [session_obj(2 * page - 1), session_obj(2 * page, "AUTH")]),
            match=[
                matchers.header_matcher({"X-Api-Key": KEY}),
                matchers.json_params_matcher({"page": page}, strict_match=False),
            ],
        )
    sessions = client.sessions()
    assert [s.whatsapp_id for s in sessions] == [f"wa-{n}" for n in range(1, 7)]
    assert sessions[0] == Session(whatsapp_id="wa-1", name="session 1", status="READY")
    assert sessions[1].status == "AUTH"
    assert len(mocked.calls) == 3
    assert [json.loads(c.request.body or b"")["page"] for c in mocked.calls] == [1, 2, 3]


def test_sessions_past_max_pages_is_an_error_not_a_silent_cut(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    for page in (1, 2):
        mocked.post(SESSIONS_URL, json=sessions_page(page, 50, [session_obj(page)]))
    with pytest.raises(PollError, match="more than 2 pages") as info:
        client.sessions(max_pages=2)
    assert info.value.reason == "invalid_response" and len(mocked.calls) == 2


def test_sessions_stops_on_empty_page(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(SESSIONS_URL, json=sessions_page(1, 3, [session_obj(1)]))
    mocked.post(SESSIONS_URL, json=sessions_page(2, 3, []))
    assert [s.whatsapp_id for s in client.sessions()] == ["wa-1"]
    assert len(mocked.calls) == 2


def test_sessions_page_size_is_sent(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(
        SESSIONS_URL,
        json=sessions_page(1, 1, [session_obj(1)]),
        match=[matchers.json_params_matcher({"page": 1, "page_cnt": 25}, strict_match=True)],
    )
    assert len(client.sessions(page_size=25)) == 1


def test_sessions_invalid_response(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(SESSIONS_URL, json={"result": "OK", "pages": 1, "data": [{"name": "no unique_id"}]})
    with pytest.raises(PollError) as info:
        client.sessions()
    assert info.value.reason == "invalid_response"
    assert info.value.detail.startswith("sessions-get")
    assert "unique_id" in info.value.detail
    assert_clean(info.value, client)


def test_sessions_unauthorized(mocked: responses.RequestsMock, client: WhatsGateClient) -> None:
    mocked.post(SESSIONS_URL, status=500, json=UNAUTHORIZED)
    with pytest.raises(PollError) as info:
        client.sessions()
    assert info.value.reason == "unauthorized"
    assert info.value.detail.startswith("sessions-get")


# --- issue 8: redirects, size bounds, redaction, unexpected errors ----------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_an_http_status_failure_and_not_followed(
    mocked: responses.RequestsMock, client: WhatsGateClient, status: int
) -> None:
    elsewhere = "https://evil.test/steal"
    mocked.post(CHATS_URL, status=status, headers={"Location": elsewhere})
    mocked.post(elsewhere, json={"result": "OK", "data": []})
    exc = poll_error(client)
    assert exc.reason == "http_status"
    assert exc.detail == f"get-chats: HTTP {status} redirect (not followed)"
    assert [c.request.url for c in mocked.calls] == [CHATS_URL]
    assert_clean(exc, client)


@pytest.mark.parametrize(
    "content_type", [f"text/{KEY}", f"text/html; key={KEY}", "x" * 5000, "text/html\x1b[2J"]
)
def test_content_type_of_an_error_is_never_echoed_raw(
    mocked: responses.RequestsMock, client: WhatsGateClient, content_type: str
) -> None:
    mocked.post(CHATS_URL, status=404, body="no", headers={"Content-Type": content_type})
    exc = poll_error(client)
    assert exc.reason == "http_status"
    assert exc.detail in (
        "get-chats: HTTP 404 (unrecognised content type)",
        "get-chats: HTTP 404 (text/html)",
    )
    assert_clean(exc, client)


ODD_KEY = 'odd"key\\with/escapes'


@pytest.mark.parametrize(
    "body",
    [
        '{"message": "bad key ' + json.dumps(ODD_KEY)[1:-1] + '" <broken json',
        "<html>key " + json.dumps(ODD_KEY)[1:-1].replace("/", "\\/") + "</html>",
        "?key=" + urllib.parse.quote(ODD_KEY, safe=""),
    ],
    ids=["json-escaped", "php-escaped", "url-encoded"],
)
def test_escaped_forms_of_an_echoed_key_do_not_leak(mocked: responses.RequestsMock, body: str) -> None:
    mocked.post(CHATS_URL, status=200, body=body, content_type="text/html")
    c = WhatsGateClient(URL, ODD_KEY)
    try:
        with pytest.raises(PollError) as info:
            c.get_chats("acc-1")
    finally:
        c.close()
    assert info.value.reason == "invalid_response"
    assert "<secret>" in info.value.detail
    assert "key" in info.value.detail and "odd" not in info.value.detail


def test_url_credentials_never_appear_in_the_client_repr() -> None:
    c = WhatsGateClient("https://admin:hunter2-password@gw.test/api/v1", KEY)
    try:
        assert "hunter2" not in repr(c) and "hunter2" not in c.url_for_log
        assert c.url_for_log == "https://<secret>@gw.test/api/v1"
    finally:
        c.close()


def test_answer_larger_than_max_response_size_is_refused(mocked: responses.RequestsMock) -> None:
    data = [chat_obj(id=f"7999{i:07d}@c.us") for i in range(40)]
    body = json.dumps({"result": "OK", "data": data})
    assert 4096 < len(body) < 8192
    mocked.post(CHATS_URL, body=body, content_type="application/json")
    small, large = WhatsGateClient(URL, KEY, max_response_size=4096), WhatsGateClient(URL, KEY, 8192)
    try:
        with pytest.raises(PollError) as info:
            small.get_chats("acc-1")
        assert len(large.get_chats("acc-1")) == 40
    finally:
        small.close()
        large.close()
    assert info.value.reason == "invalid_response"
    assert info.value.detail == "get-chats: answer larger than max_response_size (4 KiB)"


def test_gzip_answers_are_inflated_but_only_up_to_the_bound(mocked: responses.RequestsMock) -> None:
    good = gzip.compress(json.dumps({"result": "OK", "data": [chat_obj()]}).encode())
    bomb = gzip.compress(b" " * (50 << 20))  # 50 MB of blanks in ~50 KB
    gz = {"Content-Encoding": "gzip"}
    mocked.post(CHATS_URL, body=good, headers=gz, content_type="application/json")
    mocked.post(CHATS_URL, body=bomb, headers=gz, content_type="application/json")
    c = WhatsGateClient(URL, KEY, max_response_size=1 << 20)
    try:
        assert [chat.name for chat in c.get_chats("acc-1")] == ["Vasily"]
        with pytest.raises(PollError) as info:
            c.get_chats("acc-1")
    finally:
        c.close()
    assert info.value.detail == "get-chats: answer larger than max_response_size (1 MiB)"


def test_undecodable_gzip_is_invalid_response(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, body=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    exc = poll_error(client)
    assert exc.reason == "invalid_response"
    assert exc.detail == "get-chats: cannot decompress the gzip answer"


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(f"bug with {KEY}"), RecursionError()])
def test_unexpected_error_in_the_http_stack_is_internal(
    mocked: responses.RequestsMock, client: WhatsGateClient, error: BaseException
) -> None:
    mocked.post(CHATS_URL, body=error)  # type: ignore[arg-type]
    exc = poll_error(client)
    assert exc.reason == "internal"
    assert exc.detail.startswith(f"get-chats: unexpected error: {type(error).__name__}")
    assert KEY not in str(exc)


def test_unexpected_error_in_the_parser_is_internal(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    mocked.post(CHATS_URL, json={"result": "OK", "data": []})

    def overflowing(payload: Any) -> Any:
        return float(10**400)

    with pytest.raises(PollError) as info:
        client.call("get-chats", {}, overflowing)
    assert info.value.reason == "internal"
    assert "OverflowError" in info.value.detail


@pytest.mark.parametrize(
    "body",
    [
        '{"result": "\\ud800 oops"}',
        '{"result": "ERROR", "message": "session \\ud800 gone"}',
        b'{"result": "OK", "data": [{"id": "\xed\xa0\x80"}]}',
        "\ud800".encode(errors="surrogatepass"),
    ],
    ids=[
        "escaped-surrogate",
        "escaped-surrogate-in-message",
        "raw-surrogate-bytes",
        "raw-surrogate-not-json",
    ],
)
def test_surrogates_in_an_answer_give_a_printable_detail(
    mocked: responses.RequestsMock, client: WhatsGateClient, body: str | bytes
) -> None:
    mocked.post(CHATS_URL, body=body, content_type="application/json")
    exc = poll_error(client)
    assert exc.reason in ("api_error", "invalid_response")
    exc.detail.encode("utf-8")  # a lone surrogate would raise here, and in every log handler


def test_retries_do_not_start_after_the_deadline(mocked: responses.RequestsMock) -> None:
    """The second retry waits 1 s (back-off): with 0.5 s left it must not start at all."""
    mocked.post(CHATS_URL, status=503, body="busy", content_type="text/plain")
    c = WhatsGateClient(URL, KEY, timeout=0.5)
    try:
        with pytest.raises(PollError) as info:
            c.get_chats("acc-1")
    finally:
        c.close()
    assert info.value.detail == "get-chats: HTTP 503 (text/plain)"
    assert len(mocked.calls) == 2  # the first retry is immediate; the second would end past the deadline


# --- config: whatsgate.max_response_size ------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 64 << 20),
        (1048576, 1 << 20),
        ("64MiB", 64 << 20),
        ("100MB", 100_000_000),
        ("2048", 2048),
        ("1 GiB", 1 << 30),
    ],
)
def test_max_response_size_config(value: Any, expected: int) -> None:
    section: dict[str, Any] = {"api_key": "k"}
    if value is not None:
        section["max_response_size"] = value
    config = parse_config({"whatsgate": section, "accounts": [{"whatsapp_id": "acc-1"}]})
    assert config.whatsgate.max_response_size == expected


@pytest.mark.parametrize("value", ["64 mb", "lots", 1.5, True, 0, "1000B", -5, [1]])
def test_bad_max_response_size_names_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^whatsgate\.max_response_size: "):
        parse_config(
            {"whatsgate": {"api_key": "k", "max_response_size": value}, "accounts": [{"whatsapp_id": "a"}]}
        )


def test_chats_keeps_heavy_work_after_first_until_the_block_ends_and_passes_its_errors(
    mocked: responses.RequestsMock, client: WhatsGateClient
) -> None:
    """The poller's hold: the decoded chats under ``first`` then HEAVY_WORK until its block ends;
    an error of the block's own is its own (not a PollError), and both locks are released."""
    mocked.post(CHATS_URL, json={"result": "OK", "data": [chat_obj()]})
    first = threading.Lock()
    with pytest.raises(KeyError), client.chats("W1", first) as found:
        assert [c.id for c in found] == ["79991112233@c.us"]
        assert first.locked() and memory.HEAVY_WORK._is_owned()  # type: ignore[attr-defined]
        raise KeyError("the block's own")
    assert not first.locked() and not memory.HEAVY_WORK._is_owned()  # type: ignore[attr-defined]
    mocked.post(CHATS_URL, status=401, json=UNAUTHORIZED)
    with pytest.raises(PollError) as failed, client.chats("W1", first):
        pytest.fail("a refused answer yields nothing")
    assert failed.value.reason == "unauthorized" and not first.locked()
