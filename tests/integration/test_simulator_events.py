"""events-get and get-history as the simulator serves them over HTTP: the shapes and rules the
exporter's reply times are built on (envelope, paging, the inclusive date bound, page order,
time zone, history limits), their agreement with get-chats, the scripting API and the faults."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from helpers import REPO, chat_obj, group_obj

from exporter.simulator import DEFAULT_API_KEY, DEMO_ACCOUNTS, SimAccount, Simulator

T0 = 1_767_225_600  # 2026-01-01 00:00:00 UTC
CUSTOMER, OTHER, GROUP = "79991112233@c.us", "79994445566@c.us", "120363000000000042@g.us"
MESSAGE_KEYS = {"_id", "id", "ack", "hasMedia", "mediaKey", "body", "type", "timestamp", "from", "to"}
MESSAGE_KEYS |= {"isForwarded"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 3600)


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    chats = [chat_obj(CUSTOMER, 0, ts=T0 - 86400), chat_obj(OTHER, 0, ts=T0 - 86400)]
    chats.append(group_obj(GROUP, 0, members=3, admins=1, size=3, super_admins=1))
    simulator = Simulator([SimAccount("acc-1", "One", chats=chats), SimAccount("acc-2", "Two")], clock=clock)
    simulator.start()
    yield simulator
    simulator.stop()


def post(sim: Simulator, command: str, body: Any, key: str | None = None) -> requests.Response:
    headers = {"X-Api-Key": key or sim.api_key}
    return requests.post(f"{sim.url}/{command}", json=body, headers=headers, timeout=5)


def events(sim: Simulator, **body: Any) -> dict[str, Any]:
    answer = post(sim, "events-get", {"WhatsappID": "acc-1", **body})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def every_event(sim: Simulator, **body: Any) -> list[dict[str, Any]]:
    """Every page, as a reader that trusts only the envelope would read them."""
    first = events(sim, **body)
    data = list(first["data"])
    for page in range(2, first["pages"] + 1):
        data += events(sim, page=page, **body)["data"]
    return data


def history(sim: Simulator, chat_id: str, wid: str = "acc-1") -> list[dict[str, Any]]:
    answer = post(sim, "get-history", {"WhatsappID": wid, "recipient": {"id": chat_id}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"result", "data"} and body["result"] == "OK"
    return list(body["data"])


def chats(sim: Simulator, wid: str = "acc-1") -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in post(sim, "get-chats", {"WhatsappID": wid}).json()["data"]}


def control(sim: Simulator, what: str, body: Any) -> requests.Response:
    return requests.post(sim.url.replace("/api/v1", f"/_sim/{what}"), json=body, timeout=5)


def test_a_scripted_conversation_in_every_command(sim: Simulator) -> None:
    asked = sim.receive("acc-1", CUSTOMER, T0, body="Where is my order?")
    sim.receive("acc-1", CUSTOMER, T0 + 30)
    answered = sim.reply("acc-1", CUSTOMER, T0 + 600, body="It ships today")
    answer = events(sim)
    assert {k: answer[k] for k in ("result", "pages", "elements", "page")} == {
        "result": "OK",
        "pages": 1,
        "elements": 3,
        "page": 1,
    }
    first, _, last = answer["data"]
    assert set(first) == {"id", "whatsapp_id", "event_action", "event_date", "status_code", "event_data"}
    assert (first["whatsapp_id"], first["event_action"], first["status_code"]) == ("acc-1", "message", None)
    assert first["event_date"] == "2026-01-01 00:00:00"
    message = first["event_data"]["message"]
    assert set(message) == MESSAGE_KEYS and message["id"] == asked
    assert message["id"] == f"false_{CUSTOMER}_{message['_id']}"
    assert (message["body"], message["timestamp"], message["from"], message["type"]) == (
        "Where is my order?",
        T0,
        CUSTOMER,
        "chat",
    )
    own = post(sim, "sessions-get", {}).json()["data"][0]["wid"]
    assert message["to"] == own
    sent = last["event_data"]["message"]
    assert last["event_action"] == "create" and sent["id"] == answered and answered.startswith("true_")
    assert (sent["from"], sent["to"], sent["timestamp"], sent["body"]) == (
        own,
        CUSTOMER,
        T0 + 600,
        "It ships today",
    )
    assert [e["id"] for e in answer["data"]] == sorted(e["id"] for e in answer["data"])
    assert [m["id"] for m in history(sim, CUSTOMER)] == [
        answered,
        answer["data"][1]["event_data"]["message"]["id"],
        asked,
    ]
    chat = chats(sim)[CUSTOMER]
    assert (chat["unreadCount"], chat["timestamp"]) == (0, T0 + 600)
    assert sim.request_count("events-get", "acc-1") == 1 and sim.request_count("get-history", "acc-1") == 1


def test_unread_and_last_activity_follow_the_log(sim: Simulator) -> None:
    sim.receive("acc-1", CUSTOMER, T0)
    sim.receive("acc-1", CUSTOMER, T0 + 5)
    assert (chats(sim)[CUSTOMER]["unreadCount"], chats(sim)[CUSTOMER]["timestamp"]) == (2, T0 + 5)
    sim.read("acc-1", CUSTOMER)  # read, not answered: nothing is logged
    assert (chats(sim)[CUSTOMER]["unreadCount"], len(events(sim)["data"])) == (0, 2)
    sim.receive("acc-1", CUSTOMER, T0 + 60)
    sim.receive("acc-1", CUSTOMER, T0 - 3600)  # a late message does not move last activity back
    assert (chats(sim)[CUSTOMER]["unreadCount"], chats(sim)[CUSTOMER]["timestamp"]) == (2, T0 + 60)
    assert [m["timestamp"] for m in history(sim, CUSTOMER)] == [T0 + 60, T0 + 5, T0, T0 - 3600]
    new = sim.receive("acc-1", "79990001122@c.us", T0 + 90, name="Newcomer")
    assert (
        chats(sim)["79990001122@c.us"] | {"unreadCount": 1, "name": "Newcomer", "timestamp": T0 + 90}
        == (chats(sim)["79990001122@c.us"])
    )
    assert history(sim, "79990001122@c.us")[0]["id"] == new
    assert history(sim, "79990009999@c.us") == []  # never written in


def test_group_messages_name_the_group_and_the_author(sim: Simulator) -> None:
    member = sim.chats("acc-1")[2]["groupMetadata"]["participants"][1]["id"]
    incoming = sim.receive("acc-1", GROUP, T0, author=member, media=True)
    sim.reply("acc-1", GROUP, T0 + 1)
    got, ours = (e["event_data"]["message"] for e in events(sim)["data"])
    assert got["id"] == incoming == f"false_{GROUP}_{got['_id']}"
    assert (got["from"], got["author"], got["hasMedia"], got["type"]) == (GROUP, member, True, "image")
    assert got["mediaKey"] and got["body"]
    assert ours["to"] == GROUP and ours["id"].startswith(f"true_{GROUP}_")
    assert ours["author"] == ours["from"]  # our own number


def test_paging_default_and_cap(sim: Simulator) -> None:
    for i in range(250):
        sim.receive("acc-1", OTHER if i % 2 else CUSTOMER, T0 + i)
    default = events(sim)
    assert (default["pages"], default["elements"], len(default["data"])) == (25, 250, 10)
    capped = events(sim, page_cnt=1000)
    assert (capped["pages"], len(capped["data"])) == (3, 100)
    as_text = events(sim, page_cnt="100", page="3")
    assert (as_text["page"], len(as_text["data"])) == (3, 50)
    assert events(sim, page_cnt=100, page=4)["data"] == []
    read = every_event(sim, page_cnt=100)
    assert [e["event_data"]["message"]["timestamp"] for e in read] == [T0 + i for i in range(250)]
    assert len({e["id"] for e in read}) == 250
    only = every_event(sim, action="create", page_cnt=100)
    assert only == []
    sim.reply("acc-1", CUSTOMER, T0 + 300)
    assert [e["event_action"] for e in every_event(sim, action="create")] == ["create"]


def test_date_bound_is_inclusive_and_events_share_seconds(sim: Simulator) -> None:
    for offset in (0, 0, 0, 1, 1, 2):
        sim.receive("acc-1", CUSTOMER, T0 + offset)
    dates = [e["event_date"] for e in events(sim)["data"]]
    assert dates == ["2026-01-01 00:00:00"] * 3 + ["2026-01-01 00:00:01"] * 2 + ["2026-01-01 00:00:02"]
    cursor = dates[3]
    again = events(sim, date=cursor)["data"]
    assert [e["event_date"] for e in again] == dates[3:]  # the cursor's own events come back
    sim.receive("acc-1", CUSTOMER, T0 + 1)  # one more in the cursor's second
    assert len(events(sim, date=cursor)["data"]) == 4
    assert events(sim, date="2026-01-01")["elements"] == 7
    assert events(sim, date="2026-01-02 00:00:00")["data"] == []
    for bad in ("yesterday", "2026-01-01T00:00:00", 5):
        answer = post(sim, "events-get", {"WhatsappID": "acc-1", "date": bad})
        assert (answer.status_code, answer.json()["name"]) == (500, "Bad Request")


def test_newest_first_pages_as_an_option_and_over_http(sim: Simulator) -> None:
    for i in range(15):
        sim.receive("acc-1", CUSTOMER, T0 + i)
    oldest_first = every_event(sim)
    assert control(sim, "options", {"newest_first": True}).json() == {"ok": True}
    newest_first = every_event(sim)
    assert newest_first == oldest_first[::-1]
    assert events(sim)["data"][0]["event_data"]["message"]["timestamp"] == T0 + 14
    sim.set_options(newest_first=False)
    assert every_event(sim) == oldest_first
    for bad in ({"newest_first": "yes"}, {"page_order": "newest"}, {"time_zone": "Mars/Olympus"}):
        answer = control(sim, "options", bad)
        assert answer.status_code == 400 and answer.json()["ok"] is False


def test_event_date_in_a_time_zone(clock: Clock) -> None:
    accounts = [SimAccount("acc-1", "One", chats=[chat_obj(CUSTOMER, 0)])]
    sim = Simulator(accounts, clock=clock, time_zone="Europe/Moscow")
    sim.start()
    try:
        sim.receive("acc-1", CUSTOMER, T0)
        sim.receive("acc-1", CUSTOMER, T0 + 7200)
        got = events(sim)["data"]
        assert [e["event_date"] for e in got] == ["2026-01-01 03:00:00", "2026-01-01 05:00:00"]
        assert got[0]["event_data"]["message"]["timestamp"] == T0  # message times stay Unix seconds
        assert events(sim, date="2026-01-01 04:00:00")["elements"] == 1  # the bound is in that zone too
        sim.set_options(time_zone="UTC")  # stored events are written again in the new zone
        assert [e["event_date"] for e in events(sim)["data"]] == [
            "2026-01-01 00:00:00",
            "2026-01-01 02:00:00",
        ]
    finally:
        sim.stop()
    with pytest.raises(ValueError, match="time_zone"):
        Simulator(accounts, time_zone="Nowhere/Town")


def test_history_keeps_the_last_100_of_90_days_in_either_order(sim: Simulator, clock: Clock) -> None:
    clock.now = T0 + 100 * 86400
    sim.receive("acc-1", OTHER, clock.now - 91 * 86400)
    sim.receive("acc-1", OTHER, clock.now - 89 * 86400)
    assert [m["timestamp"] for m in history(sim, OTHER)] == [clock.now - 89 * 86400]
    for i in range(130):
        sim.receive("acc-1", CUSTOMER, clock.now - 1000 + i)
    kept = history(sim, CUSTOMER)
    assert len(kept) == 100
    assert [m["timestamp"] for m in kept] == [clock.now - 1000 + i for i in reversed(range(30, 130))]
    assert events(sim)["elements"] == 132  # the event log keeps what history dropped
    sim.set_options(history_newest_first=False)
    assert [m["timestamp"] for m in history(sim, CUSTOMER)] == [clock.now - 1000 + i for i in range(30, 130)]
    assert [m["id"] for m in history(sim, CUSTOMER)] == [m["id"] for m in sim.history("acc-1", CUSTOMER)]


def test_ack_and_disconnect_events(sim: Simulator) -> None:
    sent = sim.reply("acc-1", CUSTOMER, T0)
    ack_id = sim.ack("acc-1", sent, 3, T0 + 20)
    gone = sim.disconnect("acc-1", T0 + 30, reason="LOGOUT")
    _, ack, disconnect = events(sim)["data"]
    assert (ack["id"], ack["event_action"], ack["event_data"]["ack"]) == (ack_id, "ack", 3)
    assert ack["event_data"]["message"]["id"] == sent and ack["event_data"]["message"]["ack"] == 3
    assert (disconnect["id"], disconnect["event_action"], disconnect["event_data"]) == (
        gone,
        "disconnect",
        {"reason": "LOGOUT"},
    )
    assert history(sim, CUSTOMER)[0]["ack"] == 3
    assert post(sim, "sessions-get", {}).json()["data"][0]["status"] == "READY"  # a disconnect alone
    with pytest.raises(KeyError):
        sim.ack("acc-1", f"true_{CUSTOMER}_NOPE", 3)


def test_late_logged_events_keep_the_log_in_time_order(sim: Simulator) -> None:
    sim.receive("acc-1", CUSTOMER, T0 + 100)
    sim.receive("acc-1", OTHER, T0 + 10, logged_at=T0 + 50)  # logged later than sent, earlier than the first
    got = events(sim)["data"]
    assert [e["event_date"] for e in got] == ["2026-01-01 00:00:50", "2026-01-01 00:01:40"]
    assert got[0]["id"] > got[1]["id"]  # ids in the order WhatsGate saw them, dates sorted
    assert got[0]["event_data"]["message"]["timestamp"] == T0 + 10


def test_events_of_every_account_without_whatsapp_id(sim: Simulator) -> None:
    sim.receive("acc-1", CUSTOMER, T0)
    sim.receive("acc-2", OTHER, T0 + 1)
    sim.receive("acc-1", CUSTOMER, T0 + 2)
    mixed = post(sim, "events-get", {}).json()
    assert [e["whatsapp_id"] for e in mixed["data"]] == ["acc-1", "acc-2", "acc-1"]
    assert events(sim)["elements"] == 2


def test_request_errors(sim: Simulator) -> None:
    def name(command: str, body: Any, key: str | None = None) -> str:
        answer = post(sim, command, body, key)
        assert answer.status_code == 500
        return str(answer.json()["name"])

    assert name("events-get", {"WhatsappID": "acc-1"}, key="wrong") == "Unauthorized"
    assert (
        name("get-history", {"WhatsappID": "acc-1", "recipient": {"id": CUSTOMER}}, key="x") == "Unauthorized"
    )
    assert name("events-get", {"WhatsappID": "nope"}) == "Not Found"
    assert name("events-get", {"WhatsappID": 5}) == "Bad Request"
    assert name("events-get", {"WhatsappID": "acc-1", "page": 0}) == "Bad Request"
    assert name("events-get", {"WhatsappID": "acc-1", "page_cnt": "many"}) == "Bad Request"
    assert name("get-history", {"WhatsappID": "acc-1"}) == "Bad Request"
    assert name("get-history", {"WhatsappID": "acc-1", "recipient": CUSTOMER}) == "Bad Request"
    assert name("get-history", {"recipient": {"id": CUSTOMER}}) == "Bad Request"
    sim.set_status("acc-1", "AUTH")
    assert name("get-history", {"WhatsappID": "acc-1", "recipient": {"id": CUSTOMER}}) == "Session Not Ready"
    assert events(sim)["result"] == "OK"  # the log is WhatsGate's: readable whatever the phone does


def test_control_endpoints_script_a_scenario(sim: Simulator) -> None:
    def ok(what: str, body: dict[str, Any]) -> Any:
        answer = control(sim, what, {"whatsapp_id": "acc-1", **body})
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] is True
        return answer.json().get("id")

    asked = ok("message", {"chat_id": CUSTOMER, "direction": "in", "at": T0, "body": "hello?"})
    assert ok("read", {"chat_id": CUSTOMER}) is None
    assert chats(sim)[CUSTOMER]["unreadCount"] == 0
    answered = ok("message", {"chat_id": CUSTOMER, "direction": "out", "at": T0 + 900, "logged_at": T0 + 901})
    ack = ok("ack", {"message_id": answered, "at": T0 + 950})
    gone = ok("disconnect", {"at": T0 + 960})
    odd = ok("event", {"action": "ready", "data": {"pushname": "One"}, "at": T0 + 970})
    got = events(sim)["data"]
    assert [e["event_action"] for e in got] == ["message", "create", "ack", "disconnect", "ready"]
    assert (
        got[0]["event_data"]["message"]["id"] == asked and got[1]["event_data"]["message"]["id"] == answered
    )
    assert [e["id"] for e in got[2:]] == [ack, gone, odd]
    assert got[1]["event_date"] == "2026-01-01 00:15:01"
    for what, body in (
        ("message", {"chat_id": CUSTOMER, "direction": "sideways"}),
        ("message", {"chat_id": CUSTOMER, "shout": True}),
        ("message", {"chat_id": CUSTOMER, "media": "yes"}),
        ("message", {"chat_id": CUSTOMER, "body": 5}),
        ("message", {"chat_id": CUSTOMER, "at": "noon"}),
        ("message", {"chat_id": CUSTOMER, "logged_at": "noon"}),
        ("read", {"chat_id": "missing@c.us"}),
        ("ack", {"message_id": "true_x_y"}),
        ("event", {"data": {}}),
    ):
        answer = control(sim, what, {"whatsapp_id": "acc-1", **body})
        assert answer.status_code == 400 and answer.json()["ok"] is False, (what, body)
    assert len(events(sim)["data"]) == 5 and len(history(sim, CUSTOMER)) == 2  # nothing half-logged
    assert control(sim, "nothing", {}).status_code == 404


@pytest.mark.parametrize("command", ["events-get", "get-history"])
@pytest.mark.parametrize(
    ("fault", "status", "name"),
    [
        ("api_error", 500, "Internal Server Error"),
        ("unauthorized", 500, "Unauthorized"),
        ("rate_limited", 429, None),
    ],
)
def test_existing_faults_apply_to_the_new_commands(
    sim: Simulator, command: str, fault: str, status: int, name: str | None
) -> None:
    body = {"WhatsappID": "acc-1", "recipient": {"id": CUSTOMER}}
    sim.set_fault("acc-1", fault, command=command)
    answer = post(sim, command, body)
    assert answer.status_code == status
    assert name is None or answer.json()["name"] == name
    other = "get-history" if command == "events-get" else "events-get"
    assert post(sim, other, body).json()["result"] == "OK"  # only the chosen command
    assert post(sim, "get-chats", {"WhatsappID": "acc-1"}).json()["result"] == "OK"
    sim.set_fault(None, None)
    assert post(sim, command, body).json()["result"] == "OK"


@pytest.mark.parametrize("command", ["events-get", "get-history"])
def test_transport_faults_on_the_new_commands(sim: Simulator, command: str) -> None:
    body = {"WhatsappID": "acc-1", "recipient": {"id": CUSTOMER}}
    assert (
        control(sim, "fault", {"whatsapp_id": "acc-1", "fault": "down", "command": command}).status_code
        == 200
    )
    with pytest.raises(requests.ConnectionError):
        post(sim, command, body)
    sim.set_fault("acc-1", "not_json", command=command)
    assert post(sim, command, body).text == "<html>maintenance</html>"
    sim.set_fault("acc-1", None, command=command)
    assert post(sim, command, body).json()["result"] == "OK"


def test_fault_commands_are_checked(sim: Simulator) -> None:
    for fault, command, params in (
        ("bad_chat", "events-get", {}),
        ("bad_events", "get-chats", {}),
        ("bad_events", "get-history", {}),
        ("bad_envelope", "get-chats", {}),
        ("bad_envelope", "get-history", {"mode": "no_pages"}),
        ("bad_envelope", "events-get", {"mode": "shouting"}),
        ("bad_events", "events-get", {"kinds": ["weird"]}),
        ("echo_key", "events-get", {"mode": "name"}),
    ):
        with pytest.raises(ValueError):
            sim.set_fault("acc-1", fault, command=command, **params)


def test_bad_events_sit_among_the_real_ones(sim: Simulator, clock: Clock) -> None:
    sim.receive("acc-1", CUSTOMER, T0)
    clock.now = T0 + 10
    sim.set_fault("acc-1", "bad_events", command="events-get")
    sim.receive("acc-1", CUSTOMER, T0 + 20)
    raw = events(sim, page_cnt=100)["data"]
    assert len(raw) == 8
    good = [e for e in raw if isinstance(e, dict) and e.get("event_action") in ("message", "create")]
    usable = [e for e in good if isinstance((e.get("event_data") or {}).get("message"), dict)]
    usable = [e for e in usable if isinstance(e["event_data"]["message"].get("id"), str) and "id" in e]
    assert [e["event_data"]["message"]["timestamp"] for e in usable] == [T0, T0 + 20]
    bad = [e for e in raw if e not in usable]
    assert len(bad) == 6
    assert sum(not isinstance(e, dict) for e in bad) == 1
    assert {e.get("event_action") for e in bad if isinstance(e, dict)} == {"message", "create", "reaction"}
    assert sum(isinstance(e, dict) and "id" not in e for e in bad) == 1
    # the bad events have ids and a date like the others: a reader past them does not see them
    assert len(events(sim, date="2026-01-01 00:00:20")["data"]) == 1
    assert events(sim, page_cnt=100)["data"] == raw  # the same ids at every answer
    sim.set_fault("acc-1", "bad_events", command="events-get", kinds=["unknown_action"])
    assert events(sim)["elements"] == 3
    sim.set_fault("acc-1", None, command="events-get")
    assert events(sim)["elements"] == 2
    assert sim.events("acc-1") == events(sim)["data"]  # never part of the log itself


@pytest.mark.parametrize(
    ("command", "mode", "check"),
    [
        ("events-get", "list", lambda body: isinstance(body, list) and len(body) == 1),
        ("events-get", "no_pages", lambda body: set(body) == {"result", "data"}),
        ("events-get", "data_object", lambda body: isinstance(body["data"], dict) and body["pages"] == 1),
        (
            "events-get",
            "bad_counts",
            lambda body: (body["pages"], body["elements"], body["page"]) == ("1", -1, None),
        ),
        ("get-history", "list", lambda body: isinstance(body, list) and len(body) == 1),
        ("get-history", "data_object", lambda body: isinstance(body["data"], dict)),
    ],
)
def test_bad_envelopes(sim: Simulator, command: str, mode: str, check: Any) -> None:
    sim.receive("acc-1", CUSTOMER, T0)
    sim.set_fault("acc-1", "bad_envelope", command=command, mode=mode)
    answer = post(sim, command, {"WhatsappID": "acc-1", "recipient": {"id": CUSTOMER}})
    assert answer.status_code == 200
    assert check(answer.json())


def test_body_marker_is_in_every_body_and_media_key(clock: Clock) -> None:
    marker = "MARKER-5f1e"
    sim = Simulator.demo(seed=2, clock=clock, body_marker=marker)
    sim.set_fault("demo-sales", "bad_events", command="events-get")
    sim.start()
    try:
        sim.receive("demo-sales", CUSTOMER, clock.now, body="my own words", media=True)
        clock.now += 1800  # the support line writes, answers and acks meanwhile
        messages = []
        for wid, _ in DEMO_ACCOUNTS:
            answer = post(sim, "events-get", {"WhatsappID": wid, "page_cnt": 100})
            for page in range(1, answer.json()["pages"] + 1):
                data = post(sim, "events-get", {"WhatsappID": wid, "page_cnt": 100, "page": page}).json()[
                    "data"
                ]
                messages += [
                    e["event_data"]["message"]
                    for e in data
                    if isinstance(e, dict) and isinstance(e.get("event_data"), dict)
                    if isinstance(e["event_data"].get("message"), dict)
                ]
                assert all(marker in json.dumps(e) for e in data if not isinstance(e, dict))
            for chat in post(sim, "get-chats", {"WhatsappID": wid}).json()["data"]:
                messages += history(sim, chat["id"], wid)
        assert len(messages) > 300
        assert all(marker in m["body"] for m in messages)
        assert all(marker in m["mediaKey"] for m in messages if m["hasMedia"])
        assert any(m["body"] == f"my own words {marker}" for m in messages)
        assert {m["type"] for m in messages} == {"chat", "image"}
    finally:
        sim.stop()


def test_benchmark_volume_per_poll() -> None:
    sim = Simulator.generate(accounts=2, chats=300, events_per_poll=2000)
    sim.start()
    try:
        for wid in ("bench-00", "bench-01"):
            before = post(sim, "events-get", {"WhatsappID": wid}).json()["elements"]
            unread = sum(c["unreadCount"] for c in post(sim, "get-chats", {"WhatsappID": wid}).json()["data"])
            after = post(sim, "events-get", {"WhatsappID": wid, "page_cnt": 100}).json()
            assert (before, after["elements"], after["pages"]) == (0, 2000, 20)
            post(sim, "get-chats", {"WhatsappID": wid})
            assert post(sim, "events-get", {"WhatsappID": wid}).json()["elements"] == 4000
            assert unread > 0
    finally:
        sim.stop()
    static = Simulator.generate(accounts=1, chats=300)
    assert static.chats("bench-00") == Simulator.generate(accounts=1, chats=300).chats("bench-00")


def test_default_key_is_in_no_id_or_name_and_help_says_both() -> None:
    ids = [(wid, name) for wid, name in DEMO_ACCOUNTS]
    ids += [(f"bench-{i:02d}", f"Bench line {i:02d}") for i in range(100)]
    demo = Simulator.demo(seed=1)
    ids += [(c["id"], c["name"]) for wid, _ in DEMO_ACCOUNTS for c in demo.chats(wid)]
    assert demo.api_key == DEFAULT_API_KEY
    assert not any(DEFAULT_API_KEY in text for pair in ids for text in pair)
    assert not any(text and text in DEFAULT_API_KEY for wid, _ in DEMO_ACCOUNTS for text in wid.split("-"))
    shown = subprocess.run(
        [sys.executable, "-m", "exporter.simulator", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert DEFAULT_API_KEY in shown
    assert all(wid in shown and name in shown for wid, name in DEMO_ACCOUNTS)
    assert "bench-00" in shown
    assert DEFAULT_API_KEY in (REPO / "README.md").read_text(encoding="utf-8")  # its simulator paragraph


def test_event_date_zone_matches_an_independent_rendering(clock: Clock) -> None:
    zone = "America/New_York"
    sim = Simulator([SimAccount("acc-1", "One", chats=[chat_obj(CUSTOMER, 0)])], clock=clock, time_zone=zone)
    sim.receive("acc-1", CUSTOMER, T0 + 12345)
    expected = datetime.fromtimestamp(T0 + 12345, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    assert sim.events("acc-1")[0]["event_date"] == expected == "2025-12-31 22:25:45"


def test_history_option_gives_every_chat_a_consistent_past(clock: Clock) -> None:
    ts = int(clock.now) - 7200
    chats = [
        chat_obj("1@c.us", 3, ts=ts),
        chat_obj("2@c.us", 0, ts=ts),
        chat_obj("3@c.us", 2, ts=ts, ro=True),
    ]
    chats += [
        group_obj("9@g.us", 150, members=4) | {"timestamp": ts},
        {"id": "broken@c.us", "unreadCount": "x"},
    ]
    sim = Simulator([SimAccount("acc-1", "One", chats=chats)], clock=clock, history=True)
    sim.start()
    try:
        served = {c["id"]: c for c in post(sim, "get-chats", {"WhatsappID": "acc-1"}).json()["data"]}
        assert [c["unreadCount"] for c in served.values()] == [3, 0, 2, 150, "x"]  # unchanged
        for chat_id in ("1@c.us", "2@c.us", "3@c.us", "9@g.us"):
            kept = history(sim, chat_id)
            assert kept[0]["timestamp"] == served[chat_id]["timestamp"] == ts
            trailing = 0
            for message in kept:  # newest first: the customer's messages since our last one
                if message["id"].startswith("true_"):
                    break
                trailing += 1
            assert trailing == min(served[chat_id]["unreadCount"], 100), chat_id
        assert history(sim, "2@c.us")[0]["id"].startswith("true_")  # read and answered
        assert not any(
            m["id"].startswith("true_") for m in history(sim, "3@c.us")
        )  # read-only: received only
        assert {m["author"] for m in history(sim, "9@g.us")} <= {f"{i}@c.us" for i in range(4)}
        assert history(sim, "broken@c.us") == []
        logged = every_event(sim, page_cnt=100)
        assert len(logged) == (1 + 3) + (1 + 1) + 2 + (1 + 150)  # ours + the customer's, per chat
        assert [e["id"] for e in logged] == sorted(e["id"] for e in logged)  # logged as it happened
    finally:
        sim.stop()


def test_max_events_drops_the_oldest(sim: Simulator) -> None:
    sim.set_options(max_events=10)
    for i in range(40):
        sim.receive("acc-1", CUSTOMER, T0 + i)
    kept = [e["event_data"]["message"]["timestamp"] for e in sim.events("acc-1")]
    assert 10 <= len(kept) <= 11 and kept == list(range(T0 + 40 - len(kept), T0 + 40))
    assert len(history(sim, CUSTOMER)) == 40  # history is the chat's, not the log's


def test_a_malformed_chat_takes_no_message(sim: Simulator) -> None:
    sim.add_chat("acc-1", {"id": "odd@c.us", "unreadCount": "seven"})
    with pytest.raises(ValueError, match="unreadCount"):
        sim.receive("acc-1", "odd@c.us", T0)
    answer = control(sim, "message", {"whatsapp_id": "acc-1", "chat_id": "odd@c.us", "direction": "out"})
    assert answer.status_code == 400
    assert sim.events("acc-1") == [] and sim.history("acc-1", "odd@c.us") == []
