"""Fuzzed get-chats answers through the real client, poller, store and renderer.

The invariant, after every poll: /metrics is valid exposition (prometheus-client's
parser and ``promtool check metrics``), has no duplicate series, and either shows
exactly the answer's values with ``whatsgate_up 1``, or keeps the last good data
with ``whatsgate_up 0`` and exactly one more error counted.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import metrics_body, promtool_check_metrics, rendering
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.settings import parse_config
from exporter.poller import AccountPoller
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient

NAMES = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\\n😀של\x00\ud800'), max_size=12)
NUMBERS = st.one_of(st.integers(0, 2**53), st.integers(-5, 10), st.just(10**400), st.floats(allow_nan=True))
ANY = st.one_of(st.none(), st.booleans(), NUMBERS, NAMES, st.lists(st.integers(), max_size=2), st.just({}))


@st.composite
def chat(draw: st.DrawFn, i: int) -> dict[str, Any]:
    group = draw(st.booleans())
    obj: dict[str, Any] = {
        "id": f"{draw(st.integers(0, 30))}@{'g' if group else 'c'}.us",
        "name": draw(NAMES),
        "isGroup": group,
        "isReadOnly": draw(st.booleans()),
        "unreadCount": draw(st.integers(0, 500)),
        "timestamp": draw(st.integers(0, 2_000_000_000)),
        "pinned": draw(st.booleans()),
        "isMuted": draw(st.booleans()),
        "muteExpiration": 0,
    }
    if group:
        members = draw(st.integers(0, 5))
        obj["groupMetadata"] = {
            "creation": draw(st.integers(0, 2_000_000_000)),
            "size": draw(st.integers(0, 1024)),
            "participants": [
                {"id": f"{m}@c.us", "isAdmin": m == 0, "isSuperAdmin": False} for m in range(members)
            ],
        }
    if draw(st.integers(0, 9)) == 0:  # now and then, break one field
        obj[draw(st.sampled_from(sorted(obj)))] = draw(ANY)
    if draw(st.integers(0, 19)) == 0:
        del obj[draw(st.sampled_from(sorted(obj)))]
    return obj


@st.composite
def answer(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return json.dumps({"result": draw(ANY), "data": []}).encode()
    chats = [draw(chat(i)) for i in range(draw(st.integers(0, 8)))]
    return json.dumps({"result": "OK", "data": chats}, ensure_ascii=draw(st.booleans())).encode()


class Answers(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(Answers.body)))
        self.end_headers()
        self.wfile.write(Answers.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    server.shutdown()
    server.server_close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in found, f"duplicate series {key}"
            found[key] = s.value
    return found


def expected(body: bytes) -> dict[str, Any]:
    """The answer's own numbers, computed here from its JSON, independently of the exporter."""
    data = json.loads(body)["data"]
    out: dict[str, Any] = {"chats": Counter(), "unread": Counter(), "per_chat": {}}
    for c in data:
        kind = "group" if c["isGroup"] else "contact"
        out["chats"][kind] += 1
        out["unread"][kind] += c["unreadCount"]
        out["per_chat"][c["id"]] = c["unreadCount"]
    return out


ACCOUNT = frozenset({("whatsapp_id", "W1"), ("account", "fuzz")})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(answer(), min_size=1, max_size=4))
def test_every_poll_publishes_the_answer_or_a_counted_failure(api: str, bodies: list[bytes]) -> None:
    config = parse_config(
        {
            "whatsgate": {"url": api, "api_key": "k", "timeout": "2s"},
            "accounts": [{"whatsapp_id": "W1", "name": "fuzz"}],
        }
    )
    store = rendering(Store(stale_after=300))
    store.expect("W1")
    client = WhatsGateClient(api, "k", timeout=2)
    poller = AccountPoller(config.accounts[0], client, lambda: config, store)
    good: dict[str, Any] | None = None
    errors = 0.0
    for body in bodies:
        Answers.body = body
        state = poller.poll_once()
        text = metrics_body(store).decode()
        got = samples(text)
        up = got[("whatsgate_up", ACCOUNT)]
        failed = sum(v for (name, labels), v in got.items() if name == "whatsgate_poll_errors_total")
        if up == 1.0:
            assert state.up and failed == errors
            good = expected(body)
        else:
            assert not state.up and failed == errors + 1
        errors = failed
        for kind in ("contact", "group"):
            shown = got.get(("whatsgate_chats", ACCOUNT | {("chat_type", kind)}))
            unread = got.get(("whatsgate_unread_messages", ACCOUNT | {("chat_type", kind)}))
            if good is None:
                assert shown is None and unread is None  # nothing good yet: no numbers made up
            else:
                assert (shown, unread) == (good["chats"][kind], good["unread"][kind])
        if good is not None:
            per_chat = {
                dict(labels)["chat_id"]: v
                for (name, labels), v in got.items()
                if name == "whatsgate_chat_unread_messages"
            }
            assert per_chat == good["per_chat"]
    client.close()
    check = promtool_check_metrics(text)
    assert check.returncode == 0, check.stderr
