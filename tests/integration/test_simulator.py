"""The simulator stands in for WhatsGate in demos and tests, so it must answer like the docs."""

from __future__ import annotations

import hashlib
import itertools
import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from helpers import REPO

from exporter.simulator import DEFAULT_API_KEY, SimAccount, Simulator, main

KEY = "test-key"
UNAUTHORIZED = {
    "name": "Unauthorized",
    "message": "Your request was made with invalid credentials.",
    "code": 0,
}
CONTACT = {
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
GROUP = {
    "id": "4239048293082@g.us",
    "name": "Test group",
    "isGroup": True,
    "isReadOnly": False,
    "unreadCount": 3,
    "timestamp": 1662616476,
    "pinned": False,
    "isMuted": False,
    "muteExpiration": 0,
    "groupMetadata": {
        "id": "4239048293082@g.us",
        "creation": 1658328976,
        "owner": "79991112233@c.us",
        "size": 0,
        "participants": [
            {"id": "79991112233@c.us", "isAdmin": True, "isSuperAdmin": False},
            {"id": "79156666555@c.us", "isAdmin": False, "isSuperAdmin": False},
        ],
    },
}


def _accounts() -> list[SimAccount]:
    return [
        SimAccount("acc-1", "One", chats=[dict(CONTACT), dict(GROUP)]),
        SimAccount("acc-2", "Two"),
        SimAccount("acc-3", "Three", status="AUTH"),
    ]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(_accounts(), api_key=KEY)
    simulator.start()
    yield simulator
    simulator.stop()


def post(
    sim: Simulator, command: str, body: object, key: str | None = KEY, timeout: float = 5
) -> requests.Response:
    headers = {} if key is None else {"X-Api-Key": key}
    return requests.post(f"{sim.url}/{command}", json=body, headers=headers, timeout=timeout)


def control(sim: Simulator, what: str, body: object) -> requests.Response:
    return requests.post(sim.url.replace("/api/v1", f"/_sim/{what}"), json=body, timeout=5)


def unread(sim: Simulator, wid: str) -> list[int]:
    return [c["unreadCount"] for c in post(sim, "get-chats", {"WhatsappID": wid}).json()["data"]]


def test_get_chats_answers_documented_shape(sim: Simulator) -> None:
    response = post(sim, "get-chats", {"WhatsappID": "acc-1"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"result": "OK", "data": [CONTACT, GROUP]}
    assert post(sim, "get-chats", {"WhatsappID": "acc-2"}).json() == {"result": "OK", "data": []}
    assert sim.request_count("get-chats", "acc-1") == 1
    assert sim.request_count("get-chats") == 2


@pytest.mark.parametrize("key", [None, "wrong"])
def test_bad_api_key_is_unauthorized(sim: Simulator, key: str | None) -> None:
    response = post(sim, "get-chats", {"WhatsappID": "acc-1"}, key=key)
    assert response.status_code == 500
    assert response.json() == UNAUTHORIZED
    assert post(sim, "sessions-get", {}, key=key).json() == UNAUTHORIZED


def test_request_errors(sim: Simulator) -> None:
    unknown = post(sim, "get-chats", {"WhatsappID": "nope"})
    assert (unknown.status_code, unknown.json()) == (
        500,
        {"name": "Not Found", "message": "Session not found", "code": 0},
    )
    assert post(sim, "get-chats", {}).json()["name"] == "Bad Request"
    garbage = requests.post(f"{sim.url}/get-chats", data=b"{not json", headers={"X-Api-Key": KEY}, timeout=5)
    assert (garbage.status_code, garbage.json()["name"]) == (500, "Bad Request")
    not_ready = post(sim, "get-chats", {"WhatsappID": "acc-3"})
    assert (not_ready.status_code, not_ready.json()["name"]) == (500, "Session Not Ready")
    sim.set_status("acc-3", "READY")
    assert post(sim, "get-chats", {"WhatsappID": "acc-3"}).status_code == 200
    for response in (
        post(sim, "send", {"WhatsappID": "acc-1"}),
        requests.get(f"{sim.url}/get-chats", timeout=5),
    ):
        assert response.status_code == 404
        assert response.json()["name"] == "Not Found"


def test_sessions_get_paginates_and_filters(sim: Simulator) -> None:
    first = post(sim, "sessions-get", {"page_cnt": 2}).json()
    second = post(sim, "sessions-get", {"page_cnt": 2, "page": 2}).json()
    assert (first["pages"], first["elements"], first["page"], len(first["data"])) == (2, 3, 1, 2)
    assert (second["page"], len(second["data"])) == (2, 1)
    ids = [s["unique_id"] for s in first["data"] + second["data"]]
    assert ids == ["acc-1", "acc-2", "acc-3"]
    assert set(first["data"][0]) == {
        "id",
        "name",
        "unique_id",
        "status",
        "status_name",
        "callback",
        "date_add",
        "pushname",
        "wid",
        "qr_link",
    }
    auth = post(sim, "sessions-get", {"status": "AUTH"}).json()
    assert auth["elements"] == 1
    assert auth["data"][0]["unique_id"] == "acc-3"
    assert auth["data"][0]["status_name"] == "Waiting for authorization"
    by_id = post(sim, "sessions-get", {"WhatsappID": "acc-2"}).json()["data"]
    assert [(s["name"], s["status_name"]) for s in by_id] == [("Two", "Ready")]
    assert post(sim, "sessions-get", {"page": 0}).json()["name"] == "Bad Request"


def test_control_methods_change_next_answer(sim: Simulator) -> None:
    assert unread(sim, "acc-1") == [0, 3]
    sim.set_chat("acc-1", CONTACT["id"], unreadCount=50, name="x")
    assert unread(sim, "acc-1") == [50, 3]
    assert sim.chats("acc-1")[0]["name"] == "x"
    sim.add_chat("acc-1", dict(CONTACT, id="79990000001@c.us", unreadCount=7))
    assert unread(sim, "acc-1") == [50, 3, 7]
    sim.remove_chat("acc-1", GROUP["id"])
    assert unread(sim, "acc-1") == [50, 7]
    sim.chats("acc-1")[0]["unreadCount"] = 99  # a copy: must not leak into the server
    assert unread(sim, "acc-1") == [50, 7]
    assert unread(sim, "acc-1") == unread(sim, "acc-1")  # static: nothing moves by itself
    with pytest.raises(KeyError):
        sim.set_chat("acc-1", "missing@c.us", unreadCount=1)
    with pytest.raises(KeyError):
        sim.set_status("nope", "READY")


def _is_bad_chat(body: dict) -> bool:
    return (
        body["result"] == "OK"
        and any(c.get("unreadCount") == "seven" for c in body["data"])
        and any("id" not in c for c in body["data"])
    )


@pytest.mark.parametrize(
    ("fault", "status", "check"),
    [
        ("unauthorized", 500, lambda r: r.json() == UNAUTHORIZED),
        (
            "api_error",
            500,
            lambda r: r.json() == {"name": "Internal Server Error", "message": "Session error", "code": 0},
        ),
        ("rate_limited", 429, lambda r: r.headers["Retry-After"] == "1"),
        (
            "bad_gateway",
            502,
            lambda r: r.headers["Content-Type"].startswith("text/html") and "<html" in r.text,
        ),
        ("not_json", 200, lambda r: r.text == "<html>maintenance</html>"),
        ("result_not_ok", 200, lambda r: r.json()["result"] == "ERROR"),
        ("bad_chat", 200, lambda r: _is_bad_chat(r.json())),
    ],
)
def test_faults(sim: Simulator, fault: str, status: int, check) -> None:
    sim.set_fault("acc-1", fault)
    response = post(sim, "get-chats", {"WhatsappID": "acc-1"})
    assert response.status_code == status
    assert check(response)
    assert unread(sim, "acc-2") == []  # other accounts are unaffected
    sim.set_fault("acc-1", None)
    assert unread(sim, "acc-1") == [0, 3]


def test_fault_for_every_account_and_clearing(sim: Simulator) -> None:
    sim.set_fault(None, "api_error")
    assert {post(sim, "get-chats", {"WhatsappID": w}).status_code for w in ("acc-1", "acc-2")} == {500}
    sim.set_fault(None, None)
    assert post(sim, "get-chats", {"WhatsappID": "acc-2"}).status_code == 200
    with pytest.raises(ValueError):
        sim.set_fault("acc-1", "no-such-fault")


def test_slow_fault_delays_then_answers(sim: Simulator) -> None:
    sim.set_fault("acc-1", "slow", delay=0.3)
    started = time.monotonic()
    assert unread(sim, "acc-1") == [0, 3]
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        post(sim, "get-chats", {"WhatsappID": "acc-1"}, timeout=0.1)


def test_down_fault_drops_connection(sim: Simulator) -> None:
    sim.set_fault("acc-1", "down")
    with pytest.raises(requests.ConnectionError):
        post(sim, "get-chats", {"WhatsappID": "acc-1"})
    assert sim.request_count("get-chats", "acc-1") == 1


def test_stop_cuts_keep_alive_connections() -> None:
    simulator = Simulator(_accounts(), api_key=KEY)
    url = simulator.start()
    with requests.Session() as session:
        args = {"json": {"WhatsappID": "acc-1"}, "headers": {"X-Api-Key": KEY}, "timeout": 2}
        assert session.post(f"{url}/get-chats", **args).status_code == 200
        simulator.stop()
        with pytest.raises(requests.ConnectionError):
            session.post(f"{url}/get-chats", **args)


def test_dynamic_mode_moves_unread_deterministically() -> None:
    runs = []
    for _ in range(2):
        chats = [dict(CONTACT, id=f"7999000000{i}@c.us") for i in range(5)]
        simulator = Simulator([SimAccount("a", "A", chats=chats)], KEY, seed=7, dynamic=True)
        simulator.start()
        try:
            runs.append([unread(simulator, "a") for _ in range(6)])
            assert max(c["timestamp"] for c in simulator.chats("a")) >= time.time() - 60
        finally:
            simulator.stop()
    polls = runs[0]
    assert all(before != after for before, after in itertools.pairwise(polls))
    assert runs[0] == runs[1]


def test_generate_counts_and_determinism() -> None:
    simulator = Simulator.generate(accounts=3, chats=200, group_fraction=0.25, participants=7)
    url = simulator.start()
    try:
        sessions = post(simulator, "sessions-get", {}, key=simulator.api_key).json()["data"]
        assert [s["unique_id"] for s in sessions] == ["bench-00", "bench-01", "bench-02"]
        data = post(simulator, "get-chats", {"WhatsappID": "bench-01"}, key=simulator.api_key).json()["data"]
        assert url.endswith("/api/v1")
    finally:
        simulator.stop()
    groups = [c for c in data if c["isGroup"]]
    assert (len(data), len(groups), len({c["id"] for c in data})) == (200, 50, 200)
    assert all(c["id"].endswith("@g.us") for c in groups)
    assert all(len(g["groupMetadata"]["participants"]) == g["groupMetadata"]["size"] == 7 for g in groups)
    assert any(c["unreadCount"] > 0 for c in data)
    again = Simulator.generate(accounts=3, chats=200, group_fraction=0.25, participants=7)
    assert again.chats("bench-01") == data
    assert Simulator.generate(accounts=1, chats=200, seed=1).chats("bench-00") != again.chats("bench-00")


# sha256 of what the simulator before its split (commit 54db4dd) served and generated:
# benchmarks and golden tests rely on one seed always giving the same bytes.
GOLDEN_SERVED = "70d0e86c7b20d1809744ae4f29e0d3a2fbf49eae3934405ee8f6c86d608cdff2"
GOLDEN_SESSIONS_PAGE = "09c8bc87ae22c48abcf211250eedefafd841533761409b64fc7ce20e81173c8b"
GOLDEN_GENERATED = {
    (1, 10_000): "9f1b0cb0dde26386b43e0deb088d60020d4ccca7759f84f586492178281d2bba",
    (1_000, 20): "d4b50ea353769566caf6663f5d6f6a62ed9c3bf95f3561581fc34885928a1631",
}


def test_generate_is_byte_identical_to_before() -> None:
    simulator = Simulator.generate(accounts=3, chats=300, group_fraction=0.25, participants=7, seed=5)
    simulator.start()
    try:
        served = hashlib.sha256()
        for wid in ("bench-00", "bench-01", "bench-02"):
            served.update(post(simulator, "get-chats", {"WhatsappID": wid}, key=simulator.api_key).content)
        page = post(simulator, "sessions-get", {"page_cnt": 2, "page": 2}, key=simulator.api_key).content
    finally:
        simulator.stop()
    assert served.hexdigest() == GOLDEN_SERVED
    assert hashlib.sha256(page).hexdigest() == GOLDEN_SESSIONS_PAGE
    for (accounts, chats), expected in GOLDEN_GENERATED.items():
        generated = Simulator.generate(accounts=accounts, chats=chats)
        digest = hashlib.sha256()
        for i in range(accounts):
            answer = {"result": "OK", "data": generated.chats(f"bench-{i:02d}")}
            digest.update(json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode())
        assert digest.hexdigest() == expected, (accounts, chats)


def test_demo_data_exercises_edge_cases() -> None:
    simulator = Simulator.demo(seed=3)
    assert simulator.dynamic
    sessions = {"demo-support": "Support line", "demo-sales": "Sales line", "demo-community": "Community"}
    chats = [c for wid in sessions for c in simulator.chats(wid)]
    assert all(10 <= len(simulator.chats(wid)) <= 40 for wid in sessions)
    names = "".join(c["name"] for c in chats)
    assert any(ord(ch) >= 0x1F300 for ch in names)  # emoji
    assert any(0x0600 <= ord(ch) <= 0x06FF for ch in names)  # Arabic
    assert any(0x0590 <= ord(ch) <= 0x05FF for ch in names)  # Hebrew
    assert all(ch in names for ch in '"\\\n')
    assert all(any(c[flag] for c in chats) for flag in ("pinned", "isMuted", "isReadOnly"))
    groups = [c["groupMetadata"] for c in chats if c["isGroup"]]
    members = [p for g in groups for p in g["participants"]]
    assert any(p["isSuperAdmin"] for p in members)
    assert any(p["isAdmin"] and not p["isSuperAdmin"] for p in members)
    assert any(g["size"] != len(g["participants"]) for g in groups)
    assert all(c["id"].endswith("@c.us") != c["isGroup"] for c in chats)
    simulator.start()
    try:
        listed = post(simulator, "sessions-get", {}, key=simulator.api_key).json()["data"]
        assert {s["unique_id"]: s["name"] for s in listed} == sessions
        served = post(simulator, "get-chats", {"WhatsappID": "demo-community"}, key=simulator.api_key)
        assert {c["name"] for c in served.json()["data"]} == {
            c["name"] for c in simulator.chats("demo-community")
        }
    finally:
        simulator.stop()


def test_control_endpoints(sim: Simulator) -> None:
    ok = control(
        sim, "chat", {"whatsapp_id": "acc-1", "chat_id": CONTACT["id"], "fields": {"unreadCount": 9}}
    )
    assert (ok.status_code, ok.json()) == (200, {"ok": True})
    assert unread(sim, "acc-1") == [9, 3]
    assert control(sim, "status", {"whatsapp_id": "acc-1", "status": "AUTH"}).status_code == 200
    assert post(sim, "get-chats", {"WhatsappID": "acc-1"}).json()["name"] == "Session Not Ready"
    assert control(sim, "fault", {"whatsapp_id": None, "fault": "rate_limited"}).status_code == 200
    assert post(sim, "get-chats", {"WhatsappID": "acc-2"}).status_code == 429
    assert control(sim, "fault", {"whatsapp_id": None, "fault": None}).status_code == 200
    assert post(sim, "get-chats", {"WhatsappID": "acc-2"}).status_code == 200
    for what, body in (
        ("chat", {"whatsapp_id": "acc-1", "chat_id": "missing"}),
        ("status", {"whatsapp_id": "nope", "status": "READY"}),
        ("fault", {"whatsapp_id": None, "fault": "bogus"}),
        ("fault", [1, 2]),
    ):
        bad = control(sim, what, body)
        assert bad.status_code == 400
        assert bad.json()["ok"] is False


def test_main_rejects_demo_with_benchmark_options() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--demo", "--accounts", "2"])
    assert exc.value.code == 2


def test_module_runs_as_a_server() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", "--demo"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "simulator printed no URL"
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v1")
        headers = {"X-Api-Key": DEFAULT_API_KEY}
        response = requests.post(f"{url}/sessions-get", json={}, timeout=5, headers=headers)
        assert response.json()["elements"] == 3
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
        proc.stdout.close()
    assert code == 0
