"""Thresholds: parsing, templates, PromQL, and the agent's evaluation, without servers."""

from __future__ import annotations

import json

import pytest
import responses
from helpers import chat_obj, chats_of, group_obj

from exporter.alerting.evaluator import Evaluator
from exporter.alerting.sender import Sender, payload
from exporter.alerting.templates import humanize_duration, render_text
from exporter.alerting.thresholds import go_template
from exporter.config.schema import ConfigError
from exporter.config.settings import AlertmanagerConfig, parse_config
from exporter.model import Account, Session
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState

BASE = {
    "whatsgate": {"api_key": "k"},
    "accounts": [
        {"whatsapp_id": "W1", "name": "support"},
        {"whatsapp_id": "W2", "name": "sales"},
        {"whatsapp_id": "W3", "name": "vip"},
        {"whatsapp_id": "W4", "name": "sup.port"},
    ],
}


def config(*thresholds: dict, **extra):
    return parse_config({**BASE, "thresholds": list(thresholds), **extra})


def state(cfg, account: int, chats: list[dict], now: float) -> AccountState:
    data = ChatData.build(chats_of(chats), cfg.chats, now)
    return AccountState(cfg.accounts[account]).succeeded(data, 0.1)


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "threshold, key",
    [
        ({"metric": "chats", "above": 1}, "thresholds[0].name"),
        ({"name": "X", "above": 1}, "thresholds[0] (X).metric"),
        ({"name": "X", "metric": "nope", "above": 1}, "thresholds[0] (X).metric"),
        ({"name": "bad name", "metric": "chats", "above": 1}, "thresholds[0].name"),
        ({"name": "X", "metric": "chats"}, "thresholds[0] (X).above"),
        ({"name": "X", "metric": "chats", "above": 1, "below": 2}, "thresholds[0] (X).above"),
        ({"name": "X", "metric": "chats", "above": "ten"}, "thresholds[0] (X).above"),
        ({"name": "X", "metric": "account_down", "above": 1}, "thresholds[0] (X).above"),
        ({"name": "X", "metric": "stale", "above": 15}, "thresholds[0] (X).above"),
        ({"name": "X", "metric": "stale", "below": "5m"}, "thresholds[0] (X).below"),
        ({"name": "X", "metric": "chats", "above": 1, "for": "soon"}, "thresholds[0] (X).for"),
        ({"name": "X", "metric": "chats", "above": 1, "severity": "VERY BAD"}, "thresholds[0] (X).severity"),
        (
            {"name": "X", "metric": "chats", "above": 1, "chat_types": ["channel"]},
            "thresholds[0] (X).chat_types[0]",
        ),
        ({"name": "X", "metric": "account_down", "chat_types": ["group"]}, "thresholds[0] (X).chat_types"),
        ({"name": "X", "metric": "chats", "above": 1, "chats": ["a"]}, "thresholds[0] (X).chats"),
        (
            {"name": "X", "metric": "chat_unread_messages", "above": 1, "chats": ["("]},
            "thresholds[0] (X).chats[0]",
        ),
        (
            {"name": "X", "metric": "chat_unread_messages", "above": 1, "chats": ["(?!x)"]},
            "thresholds[0] (X).chats[0]",
        ),
        ({"name": "X", "metric": "chats", "above": 1, "summary": "{chat_name}"}, "thresholds[0] (X).summary"),
        (
            {"name": "X", "metric": "chats", "above": 1, "overrides": {"sales": {"above": "x"}}},
            "thresholds[0] (X).overrides.sales.above",
        ),
        (
            {"name": "X", "metric": "chats", "above": 1, "overrides": {"sales": {"value": 3}}},
            "thresholds[0] (X).overrides.sales.value",
        ),
        ({"name": "X", "metric": "chats", "above": 1, "colour": "red"}, "thresholds[0] (X).colour"),
    ],
)
def test_bad_thresholds_name_the_key(threshold: dict, key: str):
    with pytest.raises(ConfigError) as err:
        config(threshold)
    assert str(err.value).startswith(key + ":"), str(err.value)


def test_thresholds_must_name_polled_accounts_unless_discovering():
    unknown = {"name": "X", "metric": "chats", "above": 1, "accounts": ["suport"]}
    with pytest.raises(
        ConfigError, match=r"^thresholds\[0\] \(X\)\.accounts\[0\]: no account is named 'suport'"
    ):
        config(unknown)
    with pytest.raises(ConfigError, match=r"^thresholds\[0\] \(X\)\.overrides\.nobody: no account"):
        config({"name": "X", "metric": "chats", "above": 1, "overrides": {"nobody": {"above": 2}}})
    assert config(unknown, discover=True).thresholds[0].accounts == ("suport",)  # may be discovered


def test_thresholds_must_be_a_list_and_alertmanager_url_is_checked():
    with pytest.raises(ConfigError, match=r"^thresholds: expected a list"):
        parse_config({**BASE, "thresholds": {"name": "X"}})
    with pytest.raises(ConfigError, match=r"^alertmanager.url: expected an http"):
        parse_config({**BASE, "alertmanager": {"url": "localhost:9093"}})
    with pytest.raises(ConfigError, match=r"^alertmanager.resend: unknown key"):
        parse_config({**BASE, "alertmanager": {"url": "http://am:9093", "resend": "1m"}})
    am = parse_config(
        {**BASE, "alertmanager": {"url": "http://am:9093/", "resend_interval": "30s"}}
    ).alertmanager
    assert am == AlertmanagerConfig(url="http://am:9093", timeout=10.0, resend_interval=30.0)


def test_overrides_inherit_what_they_do_not_change():
    t = config(
        {
            "name": "X",
            "metric": "chats_unread",
            "above": 5,
            "for": "10m",
            "overrides": {"sales": {"for": "1m"}, "vip": {"below": 2, "severity": "critical"}},
        }
    ).thresholds[0]
    assert (t.limit.op, t.limit.value, t.limit.for_, t.limit.severity) == (">", 5, 600, "warning")
    sales, vip = t.limit_for("sales"), t.limit_for("vip")
    assert (sales.op, sales.value, sales.for_, sales.severity) == (">", 5, 60, "warning")
    assert (vip.op, vip.value, vip.for_, vip.severity) == ("<", 2, 600, "critical")
    assert t.limit_for("support") is t.limit


# --- templates and PromQL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.5, "0.5s"),
        (1, "1s"),
        (59.5, "59.5s"),
        (60, "1m 0s"),
        (1000, "16m 40s"),
        (3600, "1h 0m 0s"),
        (90061, "1d 1h 1m 1s"),
        (-90, "-1m 30s"),
    ],
)
def test_humanize_duration_matches_prometheus(seconds: float, text: str):
    assert humanize_duration(seconds) == text


def test_go_template_escapes_literal_braces_and_keeps_text():
    t = config(
        {
            "name": "X",
            "metric": "chat_unread_messages",
            "above": 3,
            "summary": 'Chat "{chat_name}" {{not a template}} {value}/{threshold} ✨',
        }
    ).thresholds[0]
    text = go_template(t.summary, t, [(None, t.limit)])
    assert text == 'Chat "{{ $labels.name }}" {{`{{`}}not a template}} {{ $value }}/3 ✨'
    brace = config({"name": "X", "metric": "chats", "above": 1, "summary": "{{account}}"}).thresholds[0]
    assert go_template(brace.summary, brace, [(None, brace.limit)]) == "{{`{`}}{{ $labels.account }}}"
    fields = {"chat_name": "Anna", "value": "7", "threshold": "3"}
    assert render_text(t.summary, fields) == 'Chat "Anna" {{not a template}} 7/3 ✨'


def test_promql_for_each_kind():
    cfg = config(
        {
            "name": "A",
            "metric": "chat_unread_messages",
            "above": 10,
            "accounts": ["sup.port"],
            "chat_types": ["contact"],
            "chats": ["^VIP", "boss"],
        },
        {"name": "B", "metric": "unread_messages", "above": 100, "overrides": {"sales": {"above": 5}}},
        {"name": "C", "metric": "group_participants", "below": 3},
        {"name": "D", "metric": "account_down"},
        {"name": "E", "metric": "stale", "above": "15m"},
        {"name": "F", "metric": "session_not_ready", "accounts": ["support"]},
    )
    a, b, c, d, e, f = cfg.thresholds
    assert a.promql(a.limit) == (
        '(whatsgate_chat_unread_messages{account=~"sup\\\\.port", chat_type=~"contact"}'
        " * on (job, instance, whatsapp_id, chat_id) group_left (name)"
        ' (whatsgate_chat_info{name=~"(?s:.*)(?:^VIP)(?s:.*)|(?s:.*)(?:boss)(?s:.*)"}'
        ' or whatsgate_chat_info{chat_id=~"(?s:.*)(?:^VIP)(?s:.*)|(?s:.*)(?:boss)(?s:.*)"})) > 10'
    )
    assert b.promql(b.limit, exclude_accounts=("sales",)) == (
        'sum without (chat_type) (whatsgate_unread_messages{account!~"sales"}) > 100'
    )
    assert c.promql(c.limit).endswith("group_left (name) whatsgate_chat_info) < 3")
    assert d.promql(d.limit) == "whatsgate_up == 0"
    assert e.promql(e.limit) == "time() - whatsgate_last_success_timestamp_seconds > 900"
    assert f.promql(f.limit) == 'whatsgate_session_status{account=~"support", status!="READY"} == 1'


def test_overrides_sharing_for_and_severity_join_the_default_rule():
    from exporter.alerting.rules import rules_for

    t = config(
        {
            "name": "X",
            "metric": "unread_messages",
            "above": 100,
            "for": "5m",
            "overrides": {"sales": {"above": 5}, "vip": {"above": 1, "severity": "critical"}},
        }
    ).thresholds[0]
    merged, vip = rules_for(t)
    assert merged["expr"] == (
        '(sum without (chat_type) (whatsgate_unread_messages{account!~"sales|vip"}) > 100)'
        ' or (sum without (chat_type) (whatsgate_unread_messages{account=~"sales"}) > 5)'
    )
    assert merged["annotations"]["description"].endswith(
        '({{ if eq $labels.account "sales" }}above 5{{ else }}above 100{{ end }}).'
    )
    assert (merged["labels"], merged["for"]) == ({"severity": "warning"}, "5m")
    assert vip["expr"] == 'sum without (chat_type) (whatsgate_unread_messages{account=~"vip"}) > 1'
    assert vip["labels"] == {"severity": "critical"} and "above 1)." in vip["annotations"]["description"]


# --- the agent's evaluation ----------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def firing(evaluator: Evaluator) -> set[tuple[str, str, str]]:
    return {
        (a.label("alertname"), a.label("account"), a.label("chat_id")) for a in evaluator.alerts() if a.firing
    }


def test_for_makes_alerts_pending_then_firing_then_resolved():
    cfg = config(
        {
            "name": "Unread",
            "metric": "chat_unread_messages",
            "above": 10,
            "for": "5m",
            "overrides": {"sales": {"above": 2, "for": "0s", "severity": "critical"}},
        }
    )
    clock = Clock()
    ev = Evaluator(cfg, clock=clock)
    ev.evaluate_account(
        state(
            cfg,
            0,
            [chat_obj("1@c.us", 50, ts=1, name="Anna"), chat_obj("2@c.us", 5, ts=1, name="2@c.us")],
            clock.now,
        )
    )
    ev.evaluate_account(state(cfg, 1, [chat_obj("3@c.us", 5, ts=1, name="Boris")], clock.now))
    assert firing(ev) == {("Unread", "sales", "3@c.us")}  # override: above 2, no for
    clock.now += 299
    ev.evaluate_account(
        state(
            cfg,
            0,
            [chat_obj("1@c.us", 50, ts=1, name="Anna"), chat_obj("2@c.us", 5, ts=1, name="2@c.us")],
            clock.now,
        )
    )
    assert ("Unread", "support", "1@c.us") not in firing(ev)  # pending for 299 s
    clock.now += 1
    ev.evaluate_account(
        state(
            cfg,
            0,
            [chat_obj("1@c.us", 51, ts=1, name="Anna"), chat_obj("2@c.us", 5, ts=1, name="2@c.us")],
            clock.now,
        )
    )
    assert firing(ev) == {("Unread", "sales", "3@c.us"), ("Unread", "support", "1@c.us")}
    alert = next(a for a in ev.alerts() if a.label("chat_id") == "1@c.us")
    assert alert.label("severity") == "warning" and alert.label("name") == "Anna"
    assert dict(alert.annotations)["summary"] == '51 unread messages in contact "Anna" on support'
    assert alert.fired_at == clock.now and alert.active_since == clock.now - 300
    clock.now += 60
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 0, ts=1, name="Anna")], clock.now))
    assert firing(ev) == {("Unread", "sales", "3@c.us")}
    resolved = [a for a in ev.alerts() if a.resolved_at is not None]
    assert [(a.label("chat_id"), a.resolved_at) for a in resolved] == [("1@c.us", clock.now)]


def test_alerts_of_an_account_no_longer_polled_resolve():
    cfg = config({"name": "Unread", "metric": "unread_messages", "above": 1})
    clock = Clock()
    ev = Evaluator(cfg, clock=clock)
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 5, ts=1, name="1@c.us")], clock.now))
    ev.evaluate_account(state(cfg, 1, [chat_obj("2@c.us", 5, ts=1, name="2@c.us")], clock.now))
    clock.now += 10
    ev.retain({"W2"})
    assert firing(ev) == {("Unread", "sales", "")}
    resolved = [(a.label("account"), a.resolved_at) for a in ev.alerts() if a.resolved_at]
    assert resolved == [("support", clock.now)]


def test_accounts_without_alerts_or_histories_keep_no_dict_each():
    """Every account is evaluated after every poll: most of a large fleet has nothing to keep."""
    cfg = config({"name": "Unread", "metric": "unread_messages", "above": 10})
    ev = Evaluator(cfg, clock=Clock())
    for i in (0, 1):
        ev.evaluate_account(state(cfg, i, [chat_obj(f"{i}@c.us", 1, ts=1, name="x")], 1_000_000.0))
    assert ev._active["W1"] is ev._active["W2"] and not ev._active["W1"] and not ev._histories
    ev.forget(["W1"])
    assert set(ev._active) == {"W2"}


def test_a_pending_alert_that_clears_is_never_sent():
    cfg = config({"name": "Unread", "metric": "unread_messages", "above": 10, "for": "1m"})
    clock = Clock()
    ev = Evaluator(cfg, clock=clock)
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 50, ts=1, name="1@c.us")], clock.now))
    clock.now += 30
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 0, ts=1, name="1@c.us")], clock.now))
    assert ev.alerts() == []


def test_narrowing_by_account_chat_type_and_chat_regex():
    cfg = config(
        {
            "name": "Vip",
            "metric": "chat_unread_messages",
            "above": 0,
            "accounts": ["support"],
            "chat_types": ["contact"],
            "chats": ["^VIP"],
        }
    )
    ev = Evaluator(cfg, clock=Clock())
    chats = [
        chat_obj("1@c.us", 3, ts=1, name="VIP Anna"),
        chat_obj("2@c.us", 3, ts=1, name="Boris"),
        group_obj("VIP@g.us", 3, name="VIP group", size=3, listed=False),
    ]
    ev.evaluate_account(state(cfg, 0, chats, 1_000_000))
    ev.evaluate_account(state(cfg, 1, chats, 1_000_000))
    assert firing(ev) == {("Vip", "support", "1@c.us")}


def test_account_kinds_down_stale_and_sessions():
    cfg = config(
        {"name": "Down", "metric": "account_down", "severity": "critical"},
        {"name": "Stale", "metric": "stale", "above": "10m"},
        {"name": "Total", "metric": "unread_messages", "above": 4, "chat_types": ["group"]},
        {"name": "NotReady", "metric": "session_not_ready"},
    )
    clock = Clock()
    ev = Evaluator(cfg, clock=clock)
    good = state(
        cfg,
        0,
        [
            chat_obj("1@c.us", 100, ts=1, name="1@c.us"),
            group_obj("g@g.us", 5, name="g@g.us", size=3, listed=False),
        ],
        clock.now,
    )
    ev.evaluate_account(good)
    assert firing(ev) == {("Total", "support", "")}  # 5 in groups; contacts are not counted
    clock.now += 601
    ev.evaluate_account(good.failed("timeout", "slow", 10))
    assert firing(ev) == {("Total", "support", ""), ("Down", "support", ""), ("Stale", "support", "")}
    stale = next(a for a in ev.alerts() if a.label("alertname") == "Stale")
    assert dict(stale.annotations)["summary"] == "No fresh WhatsGate data for support for 10m 1s"
    sessions = DiscoveryState(up=True, sessions=((cfg.accounts[1], Session("W2", "s", "AUTH")),))
    ev.evaluate_sessions(sessions)
    auth = next(a for a in ev.alerts() if a.label("alertname") == "NotReady")
    assert auth.label("status") == "AUTH" and auth.label("account") == "sales"


# --- sending -------------------------------------------------------------------------------------


def test_payload_is_alertmanager_v2_shaped():
    cfg = config({"name": "Unread", "metric": "unread_messages", "above": 1})
    ev = Evaluator(cfg, clock=Clock(1_700_000_000.0))
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 3, ts=1, name="1@c.us")], 1_700_000_000.0))
    (body,) = payload(ev.alerts(), now=1_700_000_010.0, resend_interval=60, generator_url="http://exp:9877/")
    assert body["labels"] == {
        "alertname": "Unread",
        "severity": "warning",
        "whatsapp_id": "W1",
        "account": "support",
    }
    assert body["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert body["endsAt"] == "2023-11-14T22:17:30.000Z"  # now + 4 x resend interval
    assert (
        body["annotations"]["description"] == "WhatsApp account support (W1) has 3 unread messages (above 1)."
    )
    assert body["generatorURL"] == "http://exp:9877/"


@responses.activate
def test_sender_posts_on_change_counts_failures_and_catches_up():
    cfg = config(
        {"name": "Unread", "metric": "unread_messages", "above": 1}, alertmanager={"url": "http://am:9093"}
    )
    ev = Evaluator(cfg, clock=Clock())
    sender = Sender(cfg.alertmanager, ev, "http://exp/")
    assert sender.send_once() and len(responses.calls) == 0  # nothing to say, nothing sent
    ev.evaluate_account(state(cfg, 0, [chat_obj("1@c.us", 3, ts=1, name="1@c.us")], 1_000_000))
    responses.post("http://am:9093/api/v2/alerts", status=503, body="down")
    responses.post("http://am:9093/api/v2/alerts", json={})
    assert not sender.send_once() and sender.errors == 1 and sender.last_error.startswith("HTTP 503")
    assert sender.send_once() and sender.sent == 1
    assert sender.send_once() and len(responses.calls) == 2  # unchanged: not re-sent until forced
    assert sender.send_once(force=True) and len(responses.calls) == 3
    sent = json.loads(responses.calls[-1].request.body)
    assert [a["labels"]["alertname"] for a in sent] == ["Unread"]


def test_two_thresholds_raising_the_same_alert_are_refused():
    base = {"name": "Dup", "metric": "chats", "above": 1}
    with pytest.raises(
        ConfigError, match=r"^thresholds\[1\] \(Dup\)\.name: thresholds\[0\] \(Dup\) already raises Dup"
    ):
        parse_config({"thresholds": [base, {**base, "metric": "chats_muted"}]}, polling=False)
    # a warning and a critical level of one alert, or disjoint accounts, are fine
    parse_config(
        {
            "thresholds": [
                base,
                {**base, "above": 5, "severity": "critical"},
                {**base, "accounts": ["x"], "severity": "info"},
                {**base, "accounts": ["y"], "severity": "info"},
            ]
        },
        polling=False,
    )


def test_resolved_alerts_are_not_kept_without_an_alertmanager():
    config = parse_config(
        {"thresholds": [{"name": "Unread", "metric": "chat_unread_messages", "above": 0}]}, polling=False
    )
    evaluator = Evaluator(config, clock=lambda: 1e9, keep_resolved=False)
    account = AccountState(account=Account("W", "w"))
    chats = chats_of([chat_obj(f"{i}@c.us", 1) for i in range(50)])
    evaluator.evaluate_account(account.succeeded(ChatData.build(chats, config.chats, 1e9), 0.1))
    assert len(evaluator.alerts()) == 50
    evaluator.evaluate_account(account.succeeded(ChatData.build([], config.chats, 1e9), 0.1))
    assert evaluator.alerts() == []


def test_severities_moved_by_overrides_do_not_collide_with_other_accounts():
    first = {"name": "Dup", "metric": "chats", "above": 1, "overrides": {"sales": {"severity": "critical"}}}
    other = {"name": "Dup", "metric": "chats", "above": 4, "severity": "critical", "accounts": ["support"]}
    parse_config({"thresholds": [first, other]}, polling=False)  # critical: sales vs support
    clash = {**other, "accounts": ["sales"]}
    with pytest.raises(ConfigError, match="already raises Dup with severity critical"):
        parse_config({"thresholds": [first, clash]}, polling=False)
