"""Both alert modes agree: the agent's decisions differentially tested against Prometheus's.

Hypothesis generates sequences of account states, one a minute: chats appear, change and
vanish; waits and unanswered spans open and close; get-chats and events-get polls fail and
the data goes stale; sessions change status; thresholds of every kind, with per-account
overrides, ``for:`` durations and chat regexes. At each step the real renderer writes what the
exporter would expose, and the agent (the real :class:`Evaluator`) evaluates the same states
at the same time. The expositions become promtool's input series (a series that disappears gets
a staleness marker, as a scrape writes one), and the agent's firing alerts at every step become
the expected alerts of a ``promtool test rules`` run over the generated rule file: the real
promtool then says whether Prometheus fires exactly the same alerts, with identical label sets,
at the same evaluations (pending, firing and resolving included).

Annotations are left out of that comparison (the rule file's are removed): their wording is
pinned by the unit tests and the end-to-end tests, and it is labels and times that decide who
is paged. One fixed scenario compares them too, default texts of the per-chat kinds, on chats
with a name and without one (privacy.names: drop). More examples: ``MODES_AGREE_EXAMPLES=500``
(scripts/mutation uses it).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import metrics_body, tool
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.alerting.evaluator import Evaluator
from exporter.alerting.kinds import KINDS
from exporter.alerting.rules import rule_file
from exporter.config.settings import Config, parse_config
from exporter.model import Account, Chat, Group, Session
from exporter.snapshot.replies import Message, ReplyData, Tracker
from exporter.snapshot.state import AccountState, ChatData, DiscoveryState
from exporter.snapshot.store import Store

pytestmark = pytest.mark.realtools

STEP = 60.0
# promtool's clock starts at the Unix epoch and time() reads it: the scenario starts LEAD steps
# after it, the series having no sample before (stale's rule compares time() with timestamps).
LEAD = 100
T0 = LEAD * STEP
ACCOUNTS = (Account("wa-1", "support"), Account("wa-2", "sales"))
CHATS = ("79990000001@c.us", "79990000002@c.us", "120363000000000003@g.us")
EXAMPLES = int(os.environ.get("MODES_AGREE_EXAMPLES", "25"))

# One threshold per kind (and a few with options), each limit drawn from the values that
# matter for the generated states. A kind without an entry here fails test_every_kind_is_covered.
LIMITS: dict[str, Any] = {
    "unread_messages": st.sampled_from([0, 1, 3, 5]),
    "chats": st.sampled_from([0, 1, 2]),
    "chats_unread": st.sampled_from([0, 1, 2]),
    "chats_read_only": st.sampled_from([0]),
    "chats_muted": st.sampled_from([0]),
    "chats_pinned": st.sampled_from([0, 1]),
    "chat_unread_messages": st.sampled_from([0, 1, 2]),
    "group_participants": st.sampled_from([2, 5]),
    "group_admins": st.sampled_from([0, 1]),
    "chat_waiting": st.sampled_from(["30s", "1m", "2m", "3m"]),
    "oldest_waiting": st.sampled_from(["30s", "1m", "2m", "3m"]),
    "chats_waiting": st.sampled_from([0, 1]),
    "account_down": st.just(None),
    "stale": st.sampled_from(["1m", "2m"]),
    "session_not_ready": st.just(None),
    "chat_unanswered": st.sampled_from(["30s", "1m", "2m", "3m"]),
    "oldest_unanswered": st.sampled_from(["30s", "1m", "2m", "3m"]),
    "chats_unanswered": st.sampled_from([0, 1]),
    "responses_within": st.sampled_from([0.5, 0.75, 1.0]),
}
BELOW = {"responses_within"}


def test_every_kind_is_covered() -> None:
    assert set(KINDS) == set(LIMITS), "a threshold kind without a generator: add it to LIMITS"


@st.composite
def thresholds(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(
        st.lists(
            st.sampled_from(sorted(LIMITS)),
            min_size=3,
            max_size=8,
            unique=True,
        )
    )
    out: list[dict[str, Any]] = []
    for kind in kinds:
        t: dict[str, Any] = {"name": f"T{len(out)}{kind.title().replace('_', '')}", "metric": kind}
        limit = draw(LIMITS[kind])
        if kind in BELOW:
            t |= {"below": limit, "target": "1m", "window": draw(st.sampled_from(["3m", "5m"]))}
            t |= draw(st.sampled_from([{}, {"response": "first"}, {"response": "next"}]))
        elif limit is not None:
            t["above"] = limit
        if kind == "chats_waiting":
            t["longer_than"] = draw(st.sampled_from(["1m", "2m"]))
        if kind == "chats_unanswered":
            t["longer_than"] = draw(st.sampled_from(["1m", "2m"]))
        if draw(st.booleans()):
            t["for"] = draw(st.sampled_from(["1m", "2m"]))
        if KINDS[kind].scope == "chat" and draw(st.booleans()):
            t["chats"] = [draw(st.sampled_from(["0001", "0002", "^1203"]))]
        if kind not in ("account_down", "stale", "session_not_ready") and draw(st.booleans()):
            # Its own limit: the two accounts' alerts then differ in more than their severity.
            other = draw(LIMITS[kind])
            override = {"above": other} if "above" in t else {"below": other}
            t["overrides"] = {"sales": override | {"severity": "critical"}}
        if draw(st.integers(0, 5)) == 0:
            t["accounts"] = ["support"]
        out.append(t)
    return out


def config_of(raw_thresholds: list[dict[str, Any]], accounts: tuple[Account, ...] = ACCOUNTS) -> Config:
    return parse_config(
        {
            "whatsgate": {"url": "http://gw.test", "api_key": "k"},
            "accounts": [{"whatsapp_id": a.whatsapp_id, "name": a.name} for a in accounts],
            "poll_interval": "1m",
            "stale_after": "2m",
            "waiting": {"buckets": ["1m", "2m"]},
            "replies": {"buckets": ["1m", "2m"], "conversation_gap": "3m"},
            "thresholds": raw_thresholds,
        },
        polling=False,
    )


chat_state = st.fixed_dictionaries(
    {
        # Mostly present, unread and counted: two chats of one account often wait at once.
        "present": st.sampled_from([True, True, True, False]),
        "unread": st.sampled_from([1, 3, 0]),
        "muted": st.sampled_from([False, False, False, True]),
        "pinned": st.booleans(),
        # Seconds since the chat's last activity: a wait starts there, so two chats first seen
        # unread in one poll already wait for different times, on both sides of a limit.
        "age": st.sampled_from([0, 30, 60, 150]),
        "incoming": st.booleans(),  # a customer message in the last minute
        "outgoing": st.booleans(),  # our message in the last minute (after the customer's)
    }
)
account_step = st.fixed_dictionaries(
    {
        "chats_ok": st.sampled_from([True, True, True, False]),
        "events_ok": st.sampled_from([True, True, True, False]),
        "session": st.sampled_from(["READY", "READY", "NOT_READY"]),
        "chats": st.tuples(*[chat_state] * len(CHATS)),
    }
)
# Whether a chat's state, or whether get-chats or events-get answers, carries on from the minute before.
KEEP = st.sampled_from([True, True, False])


@st.composite
def scenario(draw: st.DrawFn) -> list[tuple[dict[str, Any], ...]]:
    """Steps one minute apart. Most of a step carries on from the one before: drawn afresh
    every minute, a chat is rarely unread for two polls running and a poll rarely fails
    three times in a row, so long waits next to short ones (where the longest is not the
    shortest), waits reaching a bucket's bound exactly, and data going stale would almost
    never be generated."""
    steps: list[tuple[dict[str, Any], ...]] = []
    for _ in range(draw(st.integers(4, 9))):
        step = []
        for a in range(len(ACCOUNTS)):
            fresh = draw(account_step)
            if steps:
                before = steps[-1][a]
                chats = tuple(
                    old if draw(KEEP) else new
                    for old, new in zip(before["chats"], fresh["chats"], strict=True)
                )
                fresh = {**fresh, "chats": chats}
                for poll in ("chats_ok", "events_ok"):
                    if draw(KEEP):
                        fresh[poll] = before[poll]
            step.append(fresh)
        steps.append(tuple(step))
    return steps


def chat_of(cid: str, s: dict[str, Any], now: float, nameless: frozenset[str] = frozenset()) -> Chat:
    group = Group(0, 4, 1, 4) if cid.endswith("@g.us") else None
    return Chat(
        cid,
        "" if cid in nameless else f"Chat {cid[-6:]}",
        group is not None,
        False,
        s["unread"],
        int(now - s["age"]),
        s["pinned"],
        s["muted"],
        group,
    )


def advance(
    state: AccountState,
    step: dict[str, Any],
    now: float,
    config: Config,
    nameless: frozenset[str] = frozenset(),
) -> AccountState:
    if step["chats_ok"]:
        chats = [
            chat_of(cid, s, now, nameless)
            for cid, s in zip(CHATS, step["chats"], strict=True)
            if s["present"]
        ]
        data = ChatData.build(
            chats,
            config.chats,
            polled_at=now,
            waiting=config.waiting,
            schedule=None,
            previous=state.data.waits if state.data is not None else None,
            privacy=config.privacy,
        )
        state = state.succeeded(data, 0.1)
    else:
        state = state.failed("timeout", "get-chats: no answer", 0.1)
    replies = state.replies or ReplyData(Tracker.empty(config.replies.buckets))
    if step["events_ok"]:
        messages = []
        for cid, s in zip(CHATS, step["chats"], strict=True):
            if s["incoming"]:
                # A whole number of minutes before now: spans then reach the limits exactly.
                messages.append(Message(cid, False, now - 60))
            if s["outgoing"]:
                messages.append(Message(cid, True, now - 20))
        data = state.data
        counted = {c.id: c.chat_type for c in data.chats if config.waiting.counts(c)} if data else {}
        tracker = replies.tracker.advance(messages, counted, config.replies, None)
        if data is not None:
            tracker = tracker.keep_only(counted, data.polled_at)
        replies = dataclasses.replace(
            replies,
            tracker=tracker,
            up=True,
            last_success=now,
            unanswered=tuple(tracker.unanswered(now, None)),
        )
    else:
        replies = dataclasses.replace(replies, up=False)
    return dataclasses.replace(state, replies=replies)


def series_key(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def run(
    steps: list[tuple[dict[str, Any], ...]],
    raw_thresholds: list[dict[str, Any]],
    tmp: Path,
    nameless: frozenset[str] = frozenset(),
    annotations: bool = False,
    accounts: tuple[Account, ...] = ACCOUNTS,
) -> None:
    """``annotations``: compare them too; ``nameless``: chats without a name (privacy.names: drop)."""
    config = config_of(raw_thresholds, accounts)
    clock = [T0]
    store = Store(stale_after=config.stale_after, clock=lambda: clock[0])
    agent = Evaluator(config, clock=lambda: clock[0], keep_resolved=False)
    states = {a.whatsapp_id: AccountState(a) for a in accounts}
    for a in accounts:
        store.expect(a.whatsapp_id)
    samples: list[dict[str, float]] = []
    firing: list[set[tuple[tuple[str, str], ...]]] = []
    for i, step in enumerate(steps):
        now = clock[0] = T0 + i * STEP
        for account, account_step in zip(accounts, step, strict=True):
            state = states[account.whatsapp_id] = advance(
                states[account.whatsapp_id], account_step, now, config, nameless
            )
            store.publish(state)
            agent.evaluate_account(state)
        sessions = tuple(
            (a, Session(a.whatsapp_id, a.name, s["session"])) for a, s in zip(accounts, step, strict=True)
        )
        discovery = DiscoveryState(up=True, sessions=sessions, last_success=now)
        store.publish_discovery(discovery)
        agent.evaluate_sessions(discovery)
        body = metrics_body(store).decode()
        scraped = {}
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                scraped[series_key(s.name, s.labels)] = s.value
        samples.append(scraped)
        firing.append({(a.labels, a.annotations if annotations else ()) for a in agent.alerts() if a.firing})

    # promtool's input: every series over every step; "stale" where it disappears, as a scrape.
    names = sorted({key for scraped in samples for key in scraped})
    input_series = []
    for key in names:
        values, present = ["_"] * LEAD, False
        for scraped in samples:
            if key in scraped:
                values.append(repr(float(scraped[key])))
                present = True
            else:
                values.append("stale" if present else "_")
                present = False
        input_series.append({"series": key, "values": " ".join(values)})
    rules = yaml.safe_load(rule_file(config.thresholds))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if not annotations:
                rule.pop("annotations", None)
    alertnames = sorted({t.name for t in config.thresholds})
    tests = []
    for i, alerts in enumerate(firing):
        for name in alertnames:
            expected = [
                {"exp_labels": {k: v for k, v in labels if k != "alertname"}}
                | ({"exp_annotations": dict(texts)} if annotations else {})
                for labels, texts in sorted(alerts)
                if dict(labels)["alertname"] == name
            ]
            tests.append({"eval_time": f"{LEAD + i}m", "alertname": name, "exp_alerts": expected})
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    test_file = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": tests}],
    }
    (tmp / "test.yml").write_text(yaml.safe_dump(test_file, width=10_000, allow_unicode=True))
    done = subprocess.run(
        [tool("promtool"), "test", "rules", "test.yml"], capture_output=True, text=True, timeout=120, cwd=tmp
    )
    assert done.returncode == 0, f"the modes disagree:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


@pytest.fixture
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("modes")


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    # No shrinking: every example runs promtool, and a failure prints its example and promtool's diff.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(steps=scenario(), raw=thresholds())
def test_the_agent_fires_what_prometheus_fires(
    steps: list[Any], raw: list[dict[str, Any]], workdir: Path
) -> None:
    run(steps, raw, workdir)


def test_default_texts_agree_and_read_well_for_chats_without_a_name(tmp_path: Path) -> None:
    """privacy.names: drop leaves chats nameless: the texts then name the chat by its id, never
    as Chat "", and Prometheus writes what the agent writes, word for word. An account without a
    name of its own (discovered, or listed without one) is named by its id once, not twice."""
    chat = {"present": True, "unread": 3, "muted": False, "pinned": False, "age": 150}
    step = {"chats_ok": True, "events_ok": True, "session": "READY"}
    quiet = step | {"chats": tuple(chat | {"incoming": False, "outgoing": False} for _ in CHATS)}
    asking = step | {"chats": tuple(chat | {"incoming": True, "outgoing": False} for _ in CHATS)}
    steps = [(asking, quiet)] + [(quiet, quiet)] * 4
    per_chat = [kind for kind in KINDS.values() if kind.scope in ("chat", "group")]
    limits = {
        "chat_waiting": "1m",
        "chat_unanswered": "1m",
        "oldest_waiting": "1m",
        "oldest_unanswered": "1m",
    }
    kinds = [k.name for k in per_chat] + ["unread_messages", "oldest_waiting", "oldest_unanswered"]
    raw = [{"name": f"T{k}", "metric": k, "above": limits.get(k, 0)} for k in kinds]
    nameless = frozenset({CHATS[0], CHATS[2]})
    accounts = (Account("wa-1", "support"), Account("wa-2", "wa-2"))
    run(steps, raw, tmp_path, nameless=nameless, annotations=True, accounts=accounts)

    test_file = yaml.safe_load((tmp_path / "test.yml").read_text())
    alerts = [a for t in test_file["tests"][0]["alert_rule_test"] for a in t["exp_alerts"]]
    named = [a for a in alerts if "name" in a["exp_labels"]]
    unnamed = [a for a in alerts if "chat_id" in a["exp_labels"] and "name" not in a["exp_labels"]]
    assert named and unnamed, "both kinds of chat must fire"
    for alert in unnamed:
        for text in alert["exp_annotations"].values():
            assert '""' not in text and alert["exp_labels"]["chat_id"] in text, text
    for alert in named:
        assert all(f'"{alert["exp_labels"]["name"]}"' in t for t in alert["exp_annotations"].values())
    accounts_seen = set()
    for alert in alerts:
        description = alert["exp_annotations"]["description"]
        accounts_seen.add(alert["exp_labels"]["whatsapp_id"])
        if alert["exp_labels"]["whatsapp_id"] == "wa-1":
            assert "WhatsApp account support (wa-1)" in description, description
        else:
            assert "WhatsApp account wa-2 " in description and "(wa-2)" not in description, description
    assert accounts_seen == {"wa-1", "wa-2"}
