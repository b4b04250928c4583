"""Privacy mode: the policy, its config, filters on real values, and aggregates that stay exact."""

from __future__ import annotations

import ast
import hashlib
import hmac
import logging
import re
import sys
from pathlib import Path

import pytest
from helpers import REPO, chat_obj, chats_of, group_obj, metrics_body
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import logfmt
from exporter.config.schema import ConfigError
from exporter.config.settings import Config, parse_config
from exporter.model import Account
from exporter.snapshot.privacy import HIDDEN, Privacy
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store

KEY = b"k3y-for-the-privacy-tests-0123456789"
ALICE = "79991112233@c.us"
BOB = "79994445566@c.us"
GROUP = "120363041234567890@g.us"
MEMBER = "79997778899@c.us"  # only ever a group participant


def expected(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]


def config(tmp_path: Path, privacy: dict | None = None, **extra: object) -> Config:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    raw: dict = {"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": "W1", "name": "support"}]}
    if privacy is not None:
        raw["privacy"] = privacy
    return parse_config({**raw, **extra}, tmp_path)


# --- the policy -------------------------------------------------------------------------------


def test_hash_is_hmac_sha256_under_the_key_as_16_hex():
    policy = Privacy(chat_ids="hash", names="hash", key=KEY)
    assert policy.chat_id(ALICE) == expected(ALICE)
    assert re.fullmatch(r"[0-9a-f]{16}", policy.chat_id(ALICE))
    assert policy.name("Alice Zebrafish") == expected("Alice Zebrafish")
    assert Privacy(chat_ids="hash", key=b"another key").chat_id(ALICE) != policy.chat_id(ALICE)
    assert policy.name("") == ""  # nothing to hide


def test_drop_and_plain():
    assert Privacy(names="drop").name("Alice") == ""
    assert Privacy().chat_id(ALICE) == ALICE and Privacy().name("Alice") == "Alice"
    # drop ids: a stable internal key, the keyed HMAC when a key is given, else a per-process one
    assert Privacy(chat_ids="drop", key=KEY).chat_id(ALICE) == expected(ALICE)
    unkeyed = Privacy(chat_ids="drop")
    assert unkeyed.chat_id(ALICE) == unkeyed.chat_id(ALICE) != expected(ALICE)
    assert "k3y" not in repr(Privacy(chat_ids="hash", key=KEY))


def test_scrub_error_details():
    detail = f"get-chats: data[3][id={ALICE!r}].unreadCount: expected integer, got string"
    hashed = Privacy(chat_ids="hash", key=KEY)
    assert hashed.scrub(detail) == detail.replace(ALICE, expected(ALICE))
    assert Privacy(chat_ids="drop").scrub(detail) == f"get-chats: data[3][id={HIDDEN}].unreadCount:" + (
        " expected integer, got string"
    )
    twice = f"get-chats: data: chat id {BOB!r} appears twice"
    assert BOB not in hashed.scrub(twice) and expected(BOB) in hashed.scrub(twice)
    cut = f"get-chats: data: chat id '{'7' * 180}@c.us' appears tw..."[:120]  # an excerpt cut short
    assert "7777" not in hashed.scrub(cut)
    body = f'get-chats: HTTP 200 but body is not JSON: {{"data": [{{"id": "{BOB}", "name": "Bob Q", ...'
    both = Privacy(chat_ids="hash", names="drop", key=KEY).scrub(body)
    assert BOB not in both and "Bob Q" not in both
    assert Privacy().scrub(detail) == detail
    assert Privacy(names="drop").scrub(detail) == detail  # ids plain: the id may stay


def test_scrub_hides_numbers_cut_short_and_names_the_api_puts_in_parentheses_or_quotes():
    """Issue 21, 6: an excerpt cut inside a phone number, or before its @c.us, kept the digits;
    an API error naming a person kept the name."""
    cut = 'get-chats: HTTP 200 but body is not JSON: {"data":[{"id":"7999111223...'
    before_suffix = "get-chats: HTTP 200 but body is not JSON: <p>call 79991112233@c...."
    formatted = "get-chats: HTTP 500: Error: call +7 (999) 111-22-33 back"
    blocked = "get-chats: HTTP 500: Error: (Ivan Ivanov) is blocked; chat 'Вася' not found"
    for policy in (Privacy(chat_ids="hash", key=KEY), Privacy(chat_ids="drop")):
        assert policy.scrub(cut) == f'get-chats: HTTP 200 but body is not JSON: {{"data":[{{"id":"{HIDDEN}...'
        assert policy.scrub(before_suffix).endswith(f"call {HIDDEN}@c....")
        assert policy.scrub(formatted) == f"get-chats: HTTP 500: Error: call {HIDDEN} back"
        assert policy.scrub(blocked) == blocked  # names plain: only numbers are hidden
    for policy in (Privacy(names="hash", key=KEY), Privacy(names="drop")):
        assert (
            policy.scrub(blocked)
            == f"get-chats: HTTP 500: Error: ({HIDDEN}) is blocked; chat '{HIDDEN}' not found"
        )
        assert policy.scrub(cut) == cut  # ids plain: the numbers may stay
    # What the exporter itself writes in a detail stays readable under privacy.
    both = Privacy(chat_ids="drop", names="drop")
    for own in (
        "get-chats: HTTP 502 (text/html)",
        "get-chats: HTTP 302 redirect (not followed)",
        "get-chats: connected, but no answer within 2.0s (whatsgate.timeout is 2s)",
        "get-chats: answer larger than max_response_size (64 MiB)",
        "get-chats: data cannot be exported (ValueError)",
        "get-chats: result is 'ERROR': ...",
    ):
        assert both.scrub(own) == own
    assert Privacy().scrub(cut + blocked + formatted) == cut + blocked + formatted  # plain: unchanged


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"chat_ids": "hash"}, "privacy.key_file: required when privacy.chat_ids is hash"),
        ({"names": "hash"}, "privacy.key_file: required when privacy.names is hash"),
        ({"chat_ids": "hash", "key_file": "missing"}, "privacy.key_file: cannot read"),
        ({"chat_ids": "hash", "key_file": "empty"}, "privacy.key_file: "),
        ({"chat_ids": "hashed"}, "privacy.chat_ids: expected one of plain, hash, drop, got 'hashed'"),
        ({"names": "plain", "salt": "x"}, "privacy.salt: unknown key"),
        ("hash", "privacy: expected a mapping"),
    ],
)
def test_config_errors_name_the_key(tmp_path, section, message):
    (tmp_path / "empty").write_bytes(b" \n")
    with pytest.raises(ConfigError) as err:
        config(tmp_path, section)
    assert str(err.value).startswith(message), str(err.value)


def test_key_file_relative_to_the_config_and_redacted(tmp_path, caplog):
    cfg = config(tmp_path, {"chat_ids": "hash", "names": "drop", "key_file": "key"})
    assert cfg.privacy.key == KEY  # stripped of the newline
    assert config(tmp_path).privacy.plain  # no section: today's behaviour
    record = logging.LogRecord("x", logging.INFO, "", 0, f"key {KEY.decode()}", (), None)
    assert KEY.decode() not in logfmt.Formatter().format(record)


THRESHOLDS = [
    {"name": "Unread", "metric": "unread_messages", "above": 5},
    {"name": "Waiting", "metric": "oldest_waiting", "above": "10m"},
    {"name": "VipUnread", "metric": "chat_unread_messages", "above": 1, "chats": ["Alice"]},
]


def test_thresholds_privacy_cannot_serve(tmp_path):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, {"chat_ids": "hash", "key_file": "key"}, thresholds=THRESHOLDS)
    assert str(err.value) == (
        "thresholds[2] (VipUnread).chats: cannot match chat ids or names while privacy.chat_ids is hash"
    )
    with pytest.raises(ConfigError, match=r"^thresholds\[2\] \(VipUnread\)\.chats: .* privacy.names is drop"):
        config(tmp_path, {"names": "drop"}, thresholds=THRESHOLDS)
    per_chat = [THRESHOLDS[0], {"name": "Admins", "metric": "group_admins", "above": 3}]
    with pytest.raises(ConfigError, match=r"^thresholds\[1\] \(Admins\)\.metric: group_admins is per chat"):
        config(tmp_path, {"chat_ids": "drop"}, thresholds=per_chat)
    # per-chat kinds without chats: work under hash; aggregates work under drop
    assert config(tmp_path, {"chat_ids": "hash", "key_file": "key"}, thresholds=per_chat).thresholds
    assert config(tmp_path, {"chat_ids": "drop"}, thresholds=THRESHOLDS[:2]).thresholds


# --- the snapshot -----------------------------------------------------------------------------

MODES = {
    "plain": {},
    "hash": {"chat_ids": "hash", "names": "hash", "key_file": "key"},
    "drop": {"chat_ids": "drop", "names": "drop"},
}
T0 = 1_800_000_000.0


def polls() -> list[list[dict]]:
    """Three polls: waits start, one is read (a histogram observation), one continues."""
    first = [
        chat_obj(ALICE, 3, ts=int(T0) - 600, name="Alice Zebrafish"),
        chat_obj(BOB, 1, ts=int(T0) - 120, name="Bob Quagga"),
        chat_obj("79990000001@c.us", 2, ts=int(T0) - 60, name="Muted Mallard", muted=True),
        group_obj(GROUP, 4, members=3, admins=1, name="Ops Okapi"),
    ]
    first[3]["groupMetadata"]["participants"][0]["id"] = MEMBER
    second = [dict(c) for c in first]
    second[0] = {**first[0], "unreadCount": 0}  # Alice read: her wait is observed
    third = [dict(c) for c in second]
    third[1] = {**second[1], "unreadCount": 4}
    return [first, second, third]


def run(tmp_path: Path, mode: str, **extra: object) -> list[tuple[AccountState, str]]:
    cfg = config(tmp_path, MODES[mode] or None, **extra)
    state, out = AccountState(Account("W1", "support")), []
    for i, chats in enumerate(polls()):
        previous = state.data.waits if state.data else None
        data = ChatData.build(
            chats_of(chats),
            cfg.chats,
            T0 + 60 * i,
            cfg.waiting,
            None,
            previous,
            cfg.privacy,
        )
        state = state.succeeded(data, 0.1)
        store = Store(stale_after=300, clock=lambda: T0 + 120)
        store.expect("W1")
        store.publish(state)
        out.append((state, metrics_body(store).decode()))
    return out


PER_CHAT = ("whatsgate_chat_", "whatsgate_group_")


def aggregates(text: str, omitted: bool = True) -> dict:
    """Every account-level sample (``omitted=False``: but whatsgate_chats_omitted, which drop changes)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.startswith(PER_CHAT)
        and "poll_duration" not in s.name
        and (omitted or s.name != "whatsgate_chats_omitted")
    }


def test_aggregates_and_waits_identical_across_modes(tmp_path):
    runs = {mode: run(tmp_path, mode) for mode in MODES}
    for i, (plain_state, plain_text) in enumerate(runs["plain"]):
        assert plain_state.data is not None
        for mode in ("hash", "drop"):
            state, text = runs[mode][i]
            assert state.data is not None
            # drop: every chat is counted as reason="filtered" (no per-chat series); else identical
            assert aggregates(text, mode != "drop") == aggregates(plain_text, mode != "drop"), (mode, i)
            assert state.data.summary == plain_state.data.summary
            assert state.data.waits.histograms == plain_state.data.waits.histograms
            seconds = sorted((w.chat_type, w.since, w.seconds) for w in state.data.waiting)
            assert seconds == sorted((w.chat_type, w.since, w.seconds) for w in plain_state.data.waiting)
    # the histograms did observe something: the test compares real values, not zeros
    assert sum(h.count for h in runs["plain"][-1][0].data.waits.histograms.values()) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
def test_no_personal_data_in_metrics_or_waits(tmp_path, mode):
    for state, text in run(tmp_path, mode):
        assert MEMBER not in text and "79997778899" not in text  # participants: never, in any mode
        assert state.data is not None
        if mode == "plain":
            continue
        for secret in (ALICE, BOB, GROUP, "7999111", "Alice Zebrafish", "Bob Quagga", "Ops Okapi"):
            assert secret not in text
            assert all(secret not in cid for cid in state.data.waits.since)
    hashed = run(tmp_path, "hash")[0][1]
    assert f'chat_id="{expected(ALICE)}"' in hashed and f'name="{expected("Alice Zebrafish")}"' in hashed
    dropped = run(tmp_path, "drop")[0][1]
    assert "whatsgate_chat_unread_messages{" not in dropped and "whatsgate_chat_info{" not in dropped
    omitted = {k[1]: v for k, v in aggregates(dropped).items() if k[0] == "whatsgate_chats_omitted"}
    assert omitted[(("account", "support"), ("reason", "filtered"), ("whatsapp_id", "W1"))] == 4


def test_filters_match_real_values(tmp_path):
    """chats.include and waiting.exclude name real chats; the output still hides them."""
    extra = {"chats": {"include": ["Zebrafish", "Okapi"]}, "waiting": {"exclude": [re.escape(BOB)]}}
    state, text = run(tmp_path, "hash", **extra)[0]
    assert state.data is not None
    shown = {c.id for c in state.data.selection.chats}
    assert shown == {expected(ALICE), expected(GROUP)}
    assert set(state.data.waits.since) == {expected(ALICE), expected(GROUP)}  # Bob excluded, muted too
    assert "Zebrafish" not in text


@pytest.mark.parametrize("names", ["plain", "hash", "drop"])
def test_agent_alerts_carry_no_empty_name(tmp_path, names):
    """Prometheus drops an empty label; the agent's alerts must not differ by carrying name=""."""
    privacy = {"chat_ids": "hash", "names": names, "key_file": "key"}
    thresholds = [{"name": "Unread", "metric": "chat_unread_messages", "above": 0}]
    cfg = config(tmp_path, privacy, thresholds=thresholds)
    chats = chats_of(polls()[0])
    data = ChatData.build(chats, cfg.chats, T0, privacy=cfg.privacy)
    state = AccountState(Account("W1", "support")).succeeded(data, 0.1)
    threshold = cfg.thresholds[0]
    found = list(threshold.spec.measure(threshold, state, T0, 300))
    assert {labels["chat_id"] for labels, _, _ in found} == {expected(c.id) for c in chats}
    for labels, _, _ in found:
        assert ("name" in labels) == (names != "drop"), labels


def test_the_policy_depends_on_nothing_but_the_model():
    """Pure, so any layer may apply it: only the standard library and exporter.model."""
    tree = ast.parse((REPO / "exporter" / "snapshot" / "privacy.py").read_text(encoding="utf-8"))
    relative = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
    absolute = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom) and not getattr(n, "level", 0)
        for a in n.names
    }
    assert relative == {"model"}
    assert {m for m in absolute if m not in sys.stdlib_module_names} == set()
