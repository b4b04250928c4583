"""The simulator's hostile behaviours, checked on the wire: what a hardened client must survive.

Each fault is observed with ``requests`` or a raw socket on loopback, so that what is tested
is the bytes and the timing a client really gets, not the simulator's intentions.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.simulator import FAULTS, SimAccount, Simulator

KEY = "test-key"
CONTACT = {"id": "79991112233@c.us", "name": "Vasily", "isGroup": False, "unreadCount": 2}
EMPTY = b'{"result":"OK","data":[]}'


@pytest.fixture
def sim() -> Iterator[Simulator]:
    accounts = [SimAccount("acc-1", "One", chats=[dict(CONTACT)]), SimAccount("acc-2", "Two")]
    simulator = Simulator(accounts, api_key=KEY)
    simulator.start()
    yield simulator
    simulator.stop()


def post(sim: Simulator, wid: str, timeout: float = 5, **kwargs: Any) -> requests.Response:
    command = "sessions-get" if wid == "" else "get-chats"
    body = {} if wid == "" else {"WhatsappID": wid}
    headers = {"X-Api-Key": KEY}
    return requests.post(f"{sim.url}/{command}", json=body, headers=headers, timeout=timeout, **kwargs)


def raw_request(sim: Simulator, wid: str = "acc-2", key: str = KEY) -> socket.socket:
    """Sends a get-chats request on a raw socket and returns it, unread."""
    host, port = sim.url.removeprefix("http://").split("/")[0].split(":")
    body = json.dumps({"WhatsappID": wid}).encode()
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        b"POST /api/v1/get-chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Api-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Reads until the end of the headers; returns (head, whatever body bytes came with it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before the headers ended: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_fault_list_is_documented() -> None:
    import exporter.simulator as package

    assert package.__doc__ is not None
    assert all(f"``{fault}``" in package.__doc__ for fault in FAULTS)


def test_drip_sends_a_valid_body_one_byte_at_a_time(sim: Simulator) -> None:
    sim.set_fault("acc-2", "drip", delay=0.01)
    sock = raw_request(sim)
    started = time.monotonic()
    head, body = read_head(sock)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 25" in head
    pieces = [body] if body else []
    while sum(map(len, pieces)) < len(EMPTY):
        pieces.append(sock.recv(4096))
    sock.close()
    assert b"".join(pieces) == EMPTY
    assert time.monotonic() - started >= 24 * 0.01  # 25 bytes, 24 pauses
    assert len(pieces) >= 10  # in many small pieces, not one answer


@pytest.mark.timing
def test_drip_defeats_a_per_read_timeout(sim: Simulator) -> None:
    """Every read succeeds within 0.2 s, so only a deadline for the whole call stops it."""
    sim.set_fault("acc-2", "drip", delay=0.02)
    started = time.monotonic()
    response = post(sim, "acc-2", timeout=0.2)
    assert response.content == EMPTY
    assert time.monotonic() - started > 0.4


def test_drip_whole_drips_the_status_line_too(sim: Simulator) -> None:
    sim.set_fault("acc-2", "drip", delay=0.2, whole=True)
    sock = raw_request(sim)
    assert sock.recv(100) == b"H"
    sock.close()


@pytest.mark.parametrize("status", [200, 502])
def test_headers_then_hang(sim: Simulator, status: int) -> None:
    sim.set_fault("acc-2", "headers_then_hang", status=status)
    sock = raw_request(sim)
    head, rest = read_head(sock)
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert rest == b""
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.close()


def test_chunked_forever(sim: Simulator) -> None:
    sim.set_fault("acc-2", "chunked_forever", delay=0)
    with post(sim, "acc-2", stream=True) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        received = 0
        for chunk in response.iter_content(chunk_size=None):
            received += len(chunk)
            if received > 200_000:
                break
    assert received > 200_000  # far beyond any real answer of this account, and still going


@pytest.mark.timing
def test_chunked_forever_paces_chunks_by_delay(sim: Simulator) -> None:
    sim.set_fault("acc-2", "chunked_forever", delay=0.1)
    with post(sim, "acc-2", stream=True, timeout=0.5) as response:
        started = time.monotonic()
        chunks = list(zip(range(5), response.iter_content(chunk_size=None), strict=False))
    assert len(chunks) == 5 and time.monotonic() - started >= 0.3


def test_silent_never_answers_and_blocks_nobody(sim: Simulator) -> None:
    sim.set_fault("acc-1", "silent")
    sock = raw_request(sim, "acc-1")
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    assert post(sim, "acc-2").content == EMPTY  # the simulator serves others meanwhile
    sock.close()


def test_gzip_bomb_default_is_small_on_the_wire_and_huge_inflated(sim: Simulator) -> None:
    sim.set_fault("acc-2", "gzip_bomb")
    with post(sim, "acc-2", stream=True) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        wire = response.raw.read(decode_content=False)
    assert 1_500_000 < len(wire) < 3_000_000
    assert len(wire) == int(response.headers["Content-Length"])
    assert int.from_bytes(wire[-4:], "little") == (2 * 2**30) % 2**32  # gzip's ISIZE: 2 GiB, mod 2^32
    start = zlib.decompressobj(31).decompress(wire[:20_000], 1000)
    assert start.startswith(b'{"result":"OK","data":[{"id":"79990000000@c.us","name":"AAAA')


def test_gzip_bomb_inflates_exactly_to_size_with_a_valid_trailer(sim: Simulator) -> None:
    size = 20 * 2**20 + 12_345
    sim.set_fault("acc-2", "gzip_bomb", size=size)
    with post(sim, "acc-2", stream=True) as response:
        wire = response.raw.read(decode_content=False)
    inflater, total, tail = zlib.decompressobj(31), 0, b""
    for i in range(0, len(wire), 65536):
        out = inflater.decompress(wire[i : i + 65536])
        total += len(out)
        tail = (tail + out)[-100:]
    assert inflater.eof and not inflater.unused_data  # the CRC and length were checked
    assert total == size
    assert tail.endswith(b'AAAA","unreadCount":1}]}')


@pytest.mark.parametrize("status", [200, 502])
def test_huge_html(sim: Simulator, status: int) -> None:
    size = 20_000_000
    sim.set_fault("acc-2", "huge_html", status=status, size=size)
    with post(sim, "acc-2", stream=True) as response:
        assert response.status_code == status
        assert response.headers["Content-Type"] == "text/html"
        assert int(response.headers["Content-Length"]) == size
        first = next(response.iter_content(1000))
        total = len(first) + sum(len(c) for c in response.iter_content(1 << 20))
    assert first.startswith(b"<html><body>\n<p>")
    assert total == size


def test_huge_html_default_is_hundreds_of_megabytes(sim: Simulator) -> None:
    sim.set_fault("acc-2", "huge_html")
    with post(sim, "acc-2", stream=True) as response:
        assert int(response.headers["Content-Length"]) == 300_000_000
        assert b"<p>" in next(response.iter_content(4096))


@pytest.mark.parametrize("status", [302, 307, 308])
def test_redirect_points_at_another_server(sim: Simulator, status: int) -> None:
    other = Simulator([SimAccount("acc-2", "Elsewhere", chats=[dict(CONTACT)])], api_key=KEY)
    other.start()
    try:
        sim.set_fault("acc-2", "redirect", status=status, target=other.url)
        response = post(sim, "acc-2", allow_redirects=False)
        assert response.status_code == status
        assert response.headers["Location"] == f"{other.url}/get-chats"
        followed = post(sim, "acc-2")  # what a naive client does: the key goes to the other host
        assert other.request_count("get-chats", "acc-2") == (0 if status == 302 else 1)
        if status != 302:  # 302 turns POST into GET, which WhatsGate does not serve
            assert followed.json()["data"] == [CONTACT]
    finally:
        other.stop()


def test_surrogate_escape_in_name_and_id(sim: Simulator) -> None:
    sim.set_fault("acc-1", "surrogate")
    response = post(sim, "acc-1")
    assert b"\\ud800" in response.content
    data = response.json()["data"]
    assert data[0] == CONTACT
    assert "\ud800" in data[1]["name"] and "\ud800" in data[1]["id"]
    with pytest.raises(UnicodeEncodeError):
        data[1]["name"].encode()
    sim.set_fault("acc-1", "surrogate", fields=["id"])
    bad = post(sim, "acc-1").json()["data"][1]
    assert "\ud800" in bad["id"] and "\ud800" not in bad["name"]


def test_raw_surrogate_bytes_in_name(sim: Simulator) -> None:
    sim.set_fault("acc-2", "raw_surrogate")
    content = post(sim, "acc-2").content
    assert b"\xed\xa0\x80" in content
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")
    chat = json.loads(content.decode("utf-8", "surrogatepass"))["data"][0]
    assert "\ud800" in chat["name"] and "\ud800" not in chat["id"]


def test_huge_number_in_every_numeric_field(sim: Simulator) -> None:
    sim.set_fault("acc-2", "huge_number")
    content = post(sim, "acc-2").content
    huge = "1" + "0" * 400
    for field in ("unreadCount", "timestamp", "creation", "size"):
        assert f'"{field}":{huge}'.encode() in content
    chat = json.loads(content)["data"][0]
    assert chat["unreadCount"] == chat["groupMetadata"]["size"] == 10**400
    with pytest.raises(OverflowError):
        float(chat["timestamp"])
    sim.set_fault("acc-2", "huge_number", fields=["size"])
    chat = post(sim, "acc-2").json()["data"][0]
    assert chat["groupMetadata"]["size"] == 10**400 and chat["unreadCount"] == 1


SECRET = 'se"cr\\et-key'


def test_echo_key_in_error_and_content_type() -> None:
    simulator = Simulator([SimAccount("acc-1", "One")], api_key=SECRET)
    simulator.start()
    try:
        simulator.set_fault("acc-1", "echo_key")
        sock = raw_request(simulator, "acc-1", key=SECRET)
        head, body = read_head(sock)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(4096)
        sock.close()
        assert head.startswith(b"HTTP/1.1 500 ")
        assert f"Content-Type: application/json; charset=UTF-8; key={SECRET}\r\n".encode() in head + b"\r\n"
        simulator.set_fault("acc-1", "echo_key", mode="name")
        response = requests.post(
            f"{simulator.url}/get-chats",
            json={"WhatsappID": "acc-1"},
            headers={"X-Api-Key": SECRET},
            timeout=5,
        )
    finally:
        simulator.stop()
    escaped = json.dumps(SECRET)[1:-1]
    message = json.loads(body)["message"]
    assert SECRET in message and escaped in message
    names = [c["name"] for c in response.json()["data"]]
    assert names == [f"Key {SECRET}", f"Escaped key {escaped}"]
    assert SECRET in response.headers["Content-Type"]


def test_sessions_faults() -> None:
    simulator = Simulator([SimAccount(f"acc-{i}", f"N{i}") for i in range(5)], api_key=KEY)
    simulator.start()

    def page(n: int) -> dict:
        return requests.post(
            f"{simulator.url}/sessions-get",
            json={"page_cnt": 2, "page": n},
            headers={"X-Api-Key": KEY},
            timeout=5,
        ).json()

    def ids(answer: dict) -> list[str]:
        return [s["unique_id"] for s in answer["data"]]

    try:
        simulator.set_fault(None, "sessions_ignore_page")
        assert ids(page(1)) == ids(page(2)) == ids(page(3)) == ["acc-0", "acc-1"]
        simulator.set_fault(None, "sessions_empty")
        assert (page(1)["data"], page(1)["elements"]) == ([], 5)  # once, then itself again
        simulator.set_fault(None, "sessions_short")
        assert (page(3)["elements"], ids(page(1))) == (3, ["acc-0", "acc-1"])
        assert page(3)["elements"] == 5
        simulator.set_fault(None, "sessions_short", drop=1, times=2)
        assert [page(1)["elements"] for _ in range(3)] == [4, 4, 5]
        simulator.set_fault(None, "sessions_growing_pages")
        assert [page(n)["pages"] for n in (1, 2, 3, 4)] == [4, 5, 6, 7]
        assert page(5)["data"] == []
        simulator.set_fault(None, "sessions_surrogate")
        content = requests.post(
            f"{simulator.url}/sessions-get", json={}, headers={"X-Api-Key": KEY}, timeout=5
        ).content
        bad = json.loads(content)["data"][-1]
        assert b"\\ud800" in content and "\ud800" in bad["unique_id"] and "\ud800" in bad["status"]
        assert post(simulator, "acc-1").status_code == 200  # get-chats untouched
        simulator.set_fault(None, None)
        assert ids(page(3)) == ["acc-4"]
    finally:
        simulator.stop()


def test_transport_faults_on_sessions_get(sim: Simulator) -> None:
    sim.set_fault(None, "silent", command="sessions-get")
    with pytest.raises(requests.Timeout):
        post(sim, "", timeout=0.3)
    assert post(sim, "acc-2").content == EMPTY
    sim.set_fault(None, "api_error", command="sessions-get")
    assert post(sim, "").json()["message"] == "Session error"
    sim.set_fault(None, None)
    assert post(sim, "").json()["elements"] == 2


def test_fault_parameters_are_checked(sim: Simulator) -> None:
    bad = [
        (("acc-1", "drip"), {"size": 3}),  # not a drip parameter
        (("acc-1", "redirect"), {}),  # no target
        (("acc-1", "redirect"), {"status": 200, "target": "http://x"}),
        (("acc-1", "huge_html"), {"size": -1}),
        (("acc-1", "surrogate"), {"fields": ["unreadCount"]}),
        (("acc-1", "echo_key"), {"mode": "loud"}),
        (("acc-1", "sessions_empty"), {}),  # sessions faults take no account
        ((None, "bad_chat"), {"command": "sessions-get"}),
        (("acc-1", "slow"), {"command": "send"}),
    ]
    for args, params in bad:
        with pytest.raises(ValueError):
            sim.set_fault(*args, **params)  # type: ignore[arg-type]
    control = sim.url.replace("/api/v1", "/_sim/fault")
    body: dict[str, Any] = {"whatsapp_id": "acc-1", "fault": "redirect", "status": 99}
    answer = requests.post(control, json=body, timeout=5)
    assert answer.status_code == 400 and "status" in answer.json()["error"]
    body |= {"status": 308, "target": "http://127.0.0.1:9/api/v1"}
    assert requests.post(control, json=body, timeout=5).json() == {"ok": True}
    assert (
        post(sim, "acc-1", allow_redirects=False).headers["Location"] == "http://127.0.0.1:9/api/v1/get-chats"
    )
    body = {"whatsapp_id": None, "fault": "sessions_empty", "times": 1}
    assert requests.post(control, json=body, timeout=5).json() == {"ok": True}
    assert post(sim, "").json()["data"] == []


@pytest.mark.timing
def test_stop_is_prompt_with_hanging_clients() -> None:
    simulator = Simulator([SimAccount(f"acc-{i}", "x") for i in range(6)], api_key=KEY)
    simulator.start()
    hostile = ["silent", "headers_then_hang", "drip", "chunked_forever", "huge_html", "slow"]
    socks = []
    for i, fault in enumerate(hostile):
        simulator.set_fault(f"acc-{i}", fault, delay=60 if fault == "slow" else None)
        socks.append(raw_request(simulator, f"acc-{i}"))  # never read: huge_html fills the buffers
    time.sleep(0.3)
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 1.5
    for sock in socks:  # every connection was cut: reads end instead of hanging
        sock.settimeout(2)
        try:
            while sock.recv(1 << 20):  # a timeout here would mean a connection left hanging
                pass
        except ConnectionResetError:
            pass
        sock.close()


def test_many_sessions_start_at_once_and_page_quickly() -> None:
    simulator = Simulator.generate(accounts=10_000, chats=20)
    simulator.start()
    try:
        seen: list[str] = []
        with requests.Session() as session:
            for n in range(1, 101):
                answer = session.post(
                    f"{simulator.url}/sessions-get",
                    json={"page_cnt": 100, "page": n},
                    headers={"X-Api-Key": simulator.api_key},
                    timeout=5,
                ).json()
                assert answer["pages"] == 100
                seen += [s["unique_id"] for s in answer["data"]]
        assert len(seen) == len(set(seen)) == 10_000
        assert simulator._filled == 0  # no chats were generated to serve sessions
    finally:
        simulator.stop()


@pytest.mark.timing
def test_concurrent_hostile_requests_do_not_serialise(sim: Simulator) -> None:
    sim.set_fault("acc-1", "slow", delay=0.3)
    results: list[float] = []

    def call() -> None:
        started = time.monotonic()
        post(sim, "acc-1")
        results.append(time.monotonic() - started)

    threads = [threading.Thread(target=call) for _ in range(5)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 5 and time.monotonic() - started < 1.2


def test_hanging_answers_end_when_their_client_hangs_up(sim: Simulator) -> None:
    """Otherwise every timed-out poll would leave a thread behind for the simulator's life."""
    before = set(threading.enumerate())  # the new threads are counted: others may end meanwhile

    def new() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t not in before and t.is_alive()}

    sim.set_fault("acc-2", "silent")
    socks = [raw_request(sim) for _ in range(10)]
    deadline = time.monotonic() + 2
    while len(new()) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(new()) >= 10
    for sock in socks:
        sock.close()
    while new() and time.monotonic() < deadline + 2:
        time.sleep(0.02)
    assert new() == set()
