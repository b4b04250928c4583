"""The reply threshold kinds (chat_unanswered, oldest_unanswered, chats_unanswered, responses_within),
pinned from their definitions in issue 19, not from their code: the agent's side on hand-built
snapshots, the config's errors, and the PromQL (checked by the real promtool)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import chat_obj, chats_of, group_obj, tool

from exporter.alerting import kinds
from exporter.alerting.evaluator import Evaluator
from exporter.alerting.kinds import KINDS
from exporter.alerting.kinds.history import MAX_SAMPLES, History, increase
from exporter.alerting.rules import rule_file
from exporter.config.schema import ConfigError
from exporter.config.settings import parse_config
from exporter.snapshot.replies import ReplyData, Tracker
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.waiting import Histogram, Wait

NOW = 1_000_000.0
BASE = {
    "whatsgate": {"api_key": "k"},
    "accounts": [
        {"whatsapp_id": "W1", "name": "support"},
        {"whatsapp_id": "W2", "name": "sales"},
        {"whatsapp_id": "W3", "name": "vip"},
    ],
}
CHATS = [
    chat_obj("1@c.us", 1, ts=1, name="VIP Anna"),
    chat_obj("2@c.us", 0, ts=1, name="Boris"),
    group_obj("3@g.us", 0, name="Team", size=3, listed=False),
]


def config(*thresholds: dict, **extra):
    return parse_config({**BASE, "thresholds": list(thresholds), **extra})


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def account(
    cfg,
    i: int = 0,
    unanswered: tuple[Wait, ...] = (),
    replies_at: float | None = NOW,
    chats_at: float = NOW,
    tracker: Tracker | None = None,
    chats: list[dict] | None = None,
) -> AccountState:
    """An account polled (get-chats) at ``chats_at`` whose events poll last succeeded at ``replies_at``."""
    data = ChatData.build(chats_of(CHATS if chats is None else chats), cfg.chats, chats_at)
    replies = ReplyData(
        tracker or Tracker.empty(cfg.replies.buckets),
        up=replies_at is not None,
        last_success=replies_at,
        unanswered=unanswered,
    )
    return dataclasses.replace(AccountState(cfg.accounts[i]).succeeded(data, 0.1), replies=replies)


def firing(ev: Evaluator) -> set[tuple[str, ...]]:
    return {(a.label("alertname"), a.label("account"), a.label("chat_id")) for a in ev.alerts() if a.firing}


def evaluate(cfg, *states: AccountState, now: float = NOW) -> Evaluator:
    ev = Evaluator(cfg, clock=Clock(now))
    for s in states:
        ev.evaluate_account(s)
    return ev


def wait(chat_id: str, seconds: float, chat_type: str = "contact") -> Wait:
    return Wait(chat_id, chat_type, NOW - seconds, seconds)


# --- chat_unanswered ------------------------------------------------------------------------------


def test_chat_unanswered_fires_above_not_at_the_limit_for_selected_chats_only():
    cfg = config({"name": "U", "metric": "chat_unanswered", "above": "1h"})
    waits = (wait("1@c.us", 3601), wait("2@c.us", 3600), wait("9@c.us", 99999), wait("3@g.us", 4000, "group"))
    ev = evaluate(cfg, account(cfg, unanswered=waits))
    # 9@c.us is unanswered but not in get-chats' answer: it has no series to alert on.
    assert firing(ev) == {("U", "support", "1@c.us"), ("U", "support", "3@g.us")}
    (alert,) = [a for a in ev.alerts() if a.label("chat_id") == "1@c.us"]
    assert dict(alert.labels) == {
        "alertname": "U",
        "severity": "warning",
        "whatsapp_id": "W1",
        "account": "support",
        "chat_id": "1@c.us",
        "chat_type": "contact",
        "name": "VIP Anna",
    }
    assert (
        dict(alert.annotations)["summary"]
        == 'Customer "VIP Anna" on support waiting for an answer for 1h 0m 1s'
    )


def test_chat_unanswered_narrows_by_chat_type_and_chat_regex():
    waits = (wait("1@c.us", 5000), wait("2@c.us", 5000), wait("3@g.us", 5000, "group"))
    groups = config({"name": "U", "metric": "chat_unanswered", "above": "1h", "chat_types": ["group"]})
    assert firing(evaluate(groups, account(groups, unanswered=waits))) == {("U", "support", "3@g.us")}
    vip = config({"name": "U", "metric": "chat_unanswered", "above": "1h", "chats": ["^VIP"]})
    assert firing(evaluate(vip, account(vip, unanswered=waits))) == {("U", "support", "1@c.us")}


@pytest.mark.parametrize(
    "replies_at, chats_at, fires",
    [
        (NOW - 300, NOW, True),  # stale_after (5m) exactly: still fresh
        (NOW - 301, NOW, False),  # events poll failing for longer: the reply may have been sent
        (None, NOW, False),  # never read the event log
        (NOW, NOW - 301, False),  # get-chats stale: no chat series (nor chat_info) to alert on
    ],
)
def test_chat_unanswered_never_fires_on_stale_data(replies_at, chats_at, fires):
    cfg = config({"name": "U", "metric": "chat_unanswered", "above": "1h"})
    state = account(cfg, unanswered=(wait("1@c.us", 9999),), replies_at=replies_at, chats_at=chats_at)
    assert bool(firing(evaluate(cfg, state))) is fires


def test_reply_kinds_find_nothing_without_reply_data():
    cfg = config(
        {"name": "U", "metric": "chat_unanswered", "above": "1s"},
        {"name": "O", "metric": "oldest_unanswered", "above": "1s"},
        {"name": "C", "metric": "chats_unanswered", "longer_than": "1m", "below": 1},
        {"name": "R", "metric": "responses_within", "target": "1m", "window": "1h", "below": 1},
    )
    state = dataclasses.replace(account(cfg), replies=None)
    ev = Evaluator(cfg, clock=Clock())
    for t in range(3):
        ev.clock = Clock(NOW + 60 * t)
        ev.evaluate_account(state)
    assert firing(ev) == set() and ev.alerts() == []


def test_privacy_drop_refuses_chat_unanswered_and_keeps_the_account_kinds(tmp_path: Path):
    privacy = {"chat_ids": "drop"}
    with pytest.raises(ConfigError) as err:
        config({"name": "U", "metric": "chat_unanswered", "above": "1h"}, privacy=privacy)
    assert "thresholds[0] (U).metric" in str(err.value)
    cfg = config(
        {"name": "O", "metric": "oldest_unanswered", "above": "1h"},
        {"name": "C", "metric": "chats_unanswered", "longer_than": "1h", "above": 0},
        {"name": "R", "metric": "responses_within", "target": "1h", "window": "1d", "below": 0.5},
        privacy=privacy,
    )
    assert [t.kind for t in cfg.thresholds] == ["oldest_unanswered", "chats_unanswered", "responses_within"]
    with pytest.raises(ConfigError) as err:
        config(
            {"name": "U", "metric": "chat_unanswered", "above": "1h", "chats": ["VIP"]},
            privacy={"names": "hash", "key_file": str(_key(tmp_path))},
        )
    assert "thresholds[0] (U).chats" in str(err.value)


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    return key


def test_chat_unanswered_matches_hashed_ids_as_exported():
    """Under privacy.chat_ids: hash the snapshot's chats and the tracker's waits carry the same
    transformed id (the contract), and the alert carries it, never the phone number."""
    cfg = config({"name": "U", "metric": "chat_unanswered", "above": "1h"})
    hashed = [chat_obj("5f3a9c0d1e2b4a67", 1, ts=1, name="")]
    state = account(cfg, unanswered=(wait("5f3a9c0d1e2b4a67", 7200),), chats=hashed)
    ev = evaluate(cfg, state)
    (alert,) = ev.alerts()
    assert alert.label("chat_id") == "5f3a9c0d1e2b4a67" and "name" not in dict(alert.labels)


# --- oldest_unanswered ----------------------------------------------------------------------------


def test_oldest_unanswered_takes_the_longest_wait_over_the_kept_chat_types():
    cfg = config({"name": "O", "metric": "oldest_unanswered", "above": "1h"})
    # Not sorted longest first on purpose: the kind must take the max, not the first or the min.
    waits = (wait("1@c.us", 10), wait("3@g.us", 3601, "group"), wait("2@c.us", 20))
    ev = evaluate(cfg, account(cfg, unanswered=waits), account(cfg, 1, unanswered=(wait("1@c.us", 3600),)))
    assert firing(ev) == {("O", "support", "")}
    (alert,) = ev.alerts()
    assert alert.value == 3601 and dict(alert.labels).keys() == {
        "alertname",
        "severity",
        "whatsapp_id",
        "account",
    }
    contacts = config({"name": "O", "metric": "oldest_unanswered", "above": "1h", "chat_types": ["contact"]})
    assert firing(evaluate(contacts, account(contacts, unanswered=waits))) == set()


def test_oldest_unanswered_is_nothing_when_nobody_waits_or_the_event_log_is_stale():
    cfg = config({"name": "O", "metric": "oldest_unanswered", "above": "1h"})
    spec = KINDS["oldest_unanswered"]
    t = cfg.thresholds[0]
    assert list(spec.measure(t, account(cfg), NOW, cfg.stale_after)) == []
    stale = account(cfg, unanswered=(wait("1@c.us", 9999),), replies_at=NOW - 301)
    assert list(spec.measure(t, stale, NOW, cfg.stale_after)) == []
    # The read-waits of the same account do not leak into it (and get-chats being stale does not matter).
    fresh = account(cfg, unanswered=(wait("1@c.us", 9999),), chats_at=NOW - 3600)
    assert [v for _, v, _ in spec.measure(t, fresh, NOW, cfg.stale_after)] == [9999]


# --- chats_unanswered -----------------------------------------------------------------------------


def test_chats_unanswered_counts_waits_strictly_longer_than_the_bucket_and_fires_above():
    cfg = config({"name": "C", "metric": "chats_unanswered", "longer_than": "30m", "above": 2})
    at_limit = (wait("1@c.us", 1801), wait("2@c.us", 1801), wait("3@g.us", 1800, "group"))
    over = (*at_limit[:2], wait("3@g.us", 1801, "group"))
    ev = evaluate(cfg, account(cfg, unanswered=at_limit), account(cfg, 1, unanswered=over))
    assert firing(ev) == {("C", "sales", "")}
    (alert,) = ev.alerts()
    assert alert.value == 3
    assert (
        dict(alert.annotations)["summary"]
        == "3 customers on sales waiting for an answer for longer than 30m 0s"
    )


def test_chats_unanswered_is_zero_without_waits_and_nothing_while_stale():
    cfg = config({"name": "C", "metric": "chats_unanswered", "longer_than": "1m", "below": 1})
    assert firing(evaluate(cfg, account(cfg))) == {("C", "support", "")}  # 0 below 1
    assert firing(evaluate(cfg, account(cfg, replies_at=NOW - 301))) == set()
    groups = config(
        {"name": "C", "metric": "chats_unanswered", "longer_than": "1m", "above": 0, "chat_types": ["group"]}
    )
    assert firing(evaluate(groups, account(groups, unanswered=(wait("1@c.us", 999),)))) == set()


# --- responses_within -----------------------------------------------------------------------------

SLA = {
    "name": "SLA",
    "metric": "responses_within",
    "target": "15m",
    "response": "first",
    "window": "1d",
    "below": 0.9,
}


def histograms(cfg, **series: tuple[int, int]) -> Tracker:
    """A tracker whose (chat_type, response) histograms have ``within`` responses at 15m of ``count``,
    e.g. contact_first=(60, 67)."""
    tracker = Tracker.empty(cfg.replies.buckets)
    found = dict(tracker.histograms)
    for key, (within, count) in series.items():
        chat_type, response = key.split("_")
        buckets = cfg.replies.buckets
        counts = tuple(within if b <= 900 else count for b in buckets)
        found[(chat_type, response)] = Histogram(buckets, counts, 0.0, count)
    return dataclasses.replace(tracker, histograms=found)


def run(cfg, minutes: range, trackers) -> tuple[Evaluator, dict[int, set]]:
    """Evaluate every minute (as promtool does) on each account's tracker at that minute."""
    ev = Evaluator(cfg, clock=Clock())
    seen = {}
    for m in minutes:
        ev.clock = Clock(NOW + 60 * m)
        for i, tracker_at in enumerate(trackers):
            ev.evaluate_account(account(cfg, i, replies_at=NOW + 60 * m, tracker=tracker_at(m)))
        seen[m] = firing(ev)
    return ev, seen


def test_responses_within_fires_when_the_share_drops_below_not_at_it():
    """The scenario of prometheus/alerts_test.yml, where promtool sees it fire at 76m, not 75m:
    support answers one contact and one group a minute (contacts within 15m for the first hour
    only), and next responses (all within) do not count; sales is at exactly 90% throughout;
    vip never answers (0/0)."""
    cfg = config(SLA)

    def support(m: int) -> Tracker:
        return histograms(cfg, contact_first=(min(m, 60), m), group_first=(m, m), contact_next=(5 * m, 5 * m))

    ev, seen = run(
        cfg,
        range(0, 81),
        [support, lambda m: histograms(cfg, contact_first=(9 * m, 10 * m)), lambda m: histograms(cfg)],
    )
    assert seen[75] == set() and seen[76] == {("SLA", "support", "")}
    assert all(not seen[m] for m in range(76)) and all(seen[m] == seen[76] for m in range(76, 81))
    (alert,) = [a for a in ev.alerts() if a.firing]
    # As of 80m: (60 + 80) of 2 x 80, not extrapolated (every series starts at 0 in the window).
    assert alert.value == 140 / 160
    assert (
        dict(alert.annotations)["summary"]
        == "Only 87.5% of first responses on support within 15m over the last 24h"
    )
    assert dict(alert.labels) == {
        "alertname": "SLA",
        "severity": "warning",
        "whatsapp_id": "W1",
        "account": "support",
    }


def test_responses_within_without_a_response_type_counts_both():
    cfg = config({k: v for k, v in SLA.items() if k != "response"})
    # First responses all within, next ones none: 50% overall.
    _, seen = run(cfg, range(0, 5), [lambda m: histograms(cfg, contact_first=(m, m), contact_next=(0, m))])
    assert seen[4] == {("SLA", "support", "")}


def test_responses_within_narrows_by_chat_type():
    cfg = config({**SLA, "chat_types": ["group"]})
    # Contacts answered slowly, groups all within: only groups count.
    _, seen = run(cfg, range(5), [lambda m: histograms(cfg, contact_first=(0, m), group_first=(m, m))])
    assert all(s == set() for s in seen.values())
    _, seen = run(cfg, range(5), [lambda m: histograms(cfg, contact_first=(m, m), group_first=(0, m))])
    assert seen[4] == {("SLA", "support", "")}


def test_responses_within_forgets_responses_older_than_the_window():
    cfg = config({**SLA, "window": "10m"})

    # 20 slow responses in the first minute, then nothing: the window slides past them.
    def tracker(m: int) -> Tracker:
        return histograms(cfg, contact_first=(0, 0) if m == 0 else (0, 20))

    _, seen = run(cfg, range(0, 15), [tracker])
    assert seen[1] == seen[10] == {("SLA", "support", "")}
    assert seen[12] == set()  # no response in the last 10m: no share, no alert


def test_responses_within_survives_a_counter_reset():
    """The histograms start again at 0 (a restarted tracker): the responses before and after the
    reset both count, as Prometheus's increase() counts them."""
    cfg = config({**SLA, "window": "1h"})
    values = {m: (9 * m, 10 * m) if m <= 10 else (9 * (m - 10), 10 * (m - 10)) for m in range(20)}
    _, seen = run(cfg, range(20), [lambda m: histograms(cfg, contact_first=values[m])])
    assert all(s == set() for s in seen.values())  # exactly 90%, before and after the reset
    slow = {m: (9 * m, 10 * m) if m <= 10 else (0, 10 * (m - 10)) for m in range(20)}
    _, seen = run(cfg, range(20), [lambda m: histograms(cfg, contact_first=slow[m])])
    assert seen[10] == set() and seen[11] == {("SLA", "support", "")}


def test_increase_is_prometheus_increase():
    """Hand-computed from Prometheus's extrapolatedRate: range [0, 120], samples every 30 s."""
    # Samples at 30..90: 30 s to each boundary < 1.1 x 30: extrapolated to the full 120 s: 2 x 120/60.
    assert increase([(30, 10.0), (60, 11.0), (90, 12.0)], 0, 120) == pytest.approx(4.0)
    # From 0 at 30: not extrapolated before the counter was 0; to 120 at the end: 3 x 90/60.
    assert increase([(30, 0.0), (60, 1.0), (90, 3.0)], 0, 120) == pytest.approx(4.5)
    # A reset: 5 -> 1 is +1 (from 0), then +1; back to where the counter was 0 (50 s before the
    # first sample) is further than 1.1 intervals: extrapolated by half an interval (5 s) only.
    assert increase([(100, 5.0), (110, 1.0), (120, 2.0)], 0, 120) == pytest.approx(2 * 25 / 20)
    # The end of the range far after the last sample: half an interval (5 s) past it only.
    assert increase([(0, 0.0), (10, 1.0), (20, 2.0)], 0, 100) == pytest.approx(2 * 25 / 20)
    assert increase([(30, 1.0)], 0, 120) is None


def test_history_is_bounded_and_holds_only_the_window():
    history = History()
    window = 86400.0
    for s in range(0, 3 * 86400, 15):
        history = history.add(float(s), (s, s), window)
    assert len(history.samples) <= MAX_SAMPLES + 2
    assert history.samples[0][0] >= 3 * 86400 - 15 - window and history.samples[-1][0] == 3 * 86400 - 15


@pytest.mark.realtools
def test_responses_within_at_exactly_below_agrees_with_prometheus_to_the_last_bit(tmp_path: Path):
    """9k of 10k responses within is exactly 90%: no alert, except where the extrapolation of both
    counters rounds the share a hair under 0.9. Prometheus fires at 6m (seen with promtool); the
    agent, doing the same float operations, must fire at 6m too, and nowhere else."""
    cfg = config({**SLA, "window": "10m"})
    _, seen = run(cfg, range(30), [lambda m: histograms(cfg, contact_first=(9 * (m + 7), 10 * (m + 7)))])
    assert [m for m, found in seen.items() if found] == [6]
    ev, _ = run(cfg, range(7), [lambda m: histograms(cfg, contact_first=(9 * (m + 7), 10 * (m + 7)))])
    (alert,) = ev.alerts()
    annotations = dict(alert.annotations)
    assert annotations["summary"] == "Only 90% of first responses on support within 15m over the last 10m"
    alert_labels = {k: v for k, v in alert.labels if k != "alertname"}
    (tmp_path / "sla.rules.yml").write_text(rule_file(cfg.thresholds), encoding="utf-8")
    labels = 'whatsapp_id="W1", account="support", chat_type="contact", response="first"'
    h = "whatsgate_response_duration_seconds"
    test = {
        "rule_files": ["sla.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'{h}_bucket{{{labels}, le="900.0"}}', "values": "63+9x29"},
                    {"series": f"{h}_count{{{labels}}}", "values": "70+10x29"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{m}m",
                        "alertname": "SLA",
                        **(
                            {"exp_alerts": [{"exp_labels": alert_labels, "exp_annotations": annotations}]}
                            if seen[m]
                            else {}
                        ),
                    }
                    for m in range(30)
                ],
            }
        ],
    }
    (tmp_path / "sla_test.yml").write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(tmp_path / "sla_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "threshold, key",
    [
        ({**SLA, "target": "7m"}, "thresholds[0] (SLA).target"),
        ({k: v for k, v in SLA.items() if k != "target"}, "thresholds[0] (SLA).target"),
        ({**SLA, "target": "soon"}, "thresholds[0] (SLA).target"),
        ({k: v for k, v in SLA.items() if k != "window"}, "thresholds[0] (SLA).window"),
        ({**SLA, "window": "0s"}, "thresholds[0] (SLA).window"),
        ({**SLA, "window": 5}, "thresholds[0] (SLA).window"),
        ({**SLA, "response": "second"}, "thresholds[0] (SLA).response"),
        ({**SLA, "below": 0}, "thresholds[0] (SLA).below"),
        ({**SLA, "below": 1.5}, "thresholds[0] (SLA).below"),
        ({**SLA, "below": "90%"}, "thresholds[0] (SLA).below"),
        ({**{k: v for k, v in SLA.items() if k != "below"}, "above": 0.5}, "thresholds[0] (SLA).above"),
        ({k: v for k, v in SLA.items() if k != "below"}, "thresholds[0] (SLA).above"),
        ({**SLA, "longer_than": "15m"}, "thresholds[0] (SLA).longer_than"),
        ({**SLA, "overrides": {"sales": {"below": 2}}}, "thresholds[0] (SLA).overrides.sales.below"),
        ({"name": "C", "metric": "chats_unanswered", "above": 1}, "thresholds[0] (C).longer_than"),
        # 10m is in neither default bucket list
        (
            {"name": "C", "metric": "chats_unanswered", "longer_than": "10m", "above": 1},
            "thresholds[0] (C).longer_than",
        ),
        ({"name": "U", "metric": "chat_unanswered", "above": 5}, "thresholds[0] (U).above"),
        ({"name": "U", "metric": "chat_unanswered", "below": "5m"}, "thresholds[0] (U).below"),
        (
            {"name": "O", "metric": "oldest_unanswered", "above": "1h", "target": "1m"},
            "thresholds[0] (O).target",
        ),
        (
            {"name": "O", "metric": "oldest_unanswered", "above": "1h", "window": "1d"},
            "thresholds[0] (O).window",
        ),
        (
            {"name": "W", "metric": "chats_waiting", "longer_than": "15m", "above": 1, "response": "first"},
            "thresholds[0] (W).response",
        ),
    ],
)
def test_bad_reply_thresholds_name_the_key(threshold: dict, key: str):
    with pytest.raises(ConfigError) as err:
        config(threshold)
    assert key in str(err.value)


def test_longer_than_and_target_follow_replies_buckets_not_waiting_buckets():
    replies = {"buckets": ["10m", "20m"]}
    cfg = config(
        {"name": "C", "metric": "chats_unanswered", "longer_than": "20m", "above": 1},
        {**SLA, "target": "10m"},
        {"name": "W", "metric": "chats_waiting", "longer_than": "15m", "above": 1},
        replies=replies,
    )
    assert [(t.longer_than, t.target) for t in cfg.thresholds] == [(1200, None), (None, 600), (900, None)]
    with pytest.raises(ConfigError) as err:
        config({"name": "C", "metric": "chats_unanswered", "longer_than": "15m", "above": 1}, replies=replies)
    assert "thresholds[0] (C).longer_than: 15m is not one of replies.buckets (10m, 20m)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config({"name": "W", "metric": "chats_waiting", "longer_than": "10m", "above": 1}, replies=replies)
    assert "not one of waiting.buckets" in str(err.value)


# --- PromQL ---------------------------------------------------------------------------------------


def test_promql_of_the_reply_kinds():
    cfg = config(
        {
            "name": "U",
            "metric": "chat_unanswered",
            "above": "1h",
            "chat_types": ["contact"],
            "accounts": ["support"],
        },
        {"name": "O", "metric": "oldest_unanswered", "above": "4h"},
        {"name": "C", "metric": "chats_unanswered", "longer_than": "30m", "above": 3},
        {**SLA, "chat_types": ["group"], "overrides": {"sales": {"below": 0.5}}},
        {"name": "All", "metric": "responses_within", "target": "1h", "window": "1h30m", "below": 1},
    )
    u, o, c, r, a = cfg.thresholds
    assert u.promql(u.limit) == (
        '(whatsgate_chat_unanswered_seconds{account=~"support", chat_type=~"contact"}'
        " * on (job, instance, whatsapp_id, chat_id) group_left (name) whatsgate_chat_info) > 3600"
    )
    assert o.promql(o.limit) == "max without (chat_type) (whatsgate_oldest_unanswered_seconds) > 14400"
    assert c.promql(c.limit) == (
        'sum without (chat_type, longer_than) (whatsgate_chats_unanswered{longer_than="1800"}) > 3'
    )
    h = "whatsgate_response_duration_seconds"
    assert r.promql(r.limit, exclude_accounts=("sales",)) == (
        f'sum without (chat_type, response, le) (increase({h}_bucket{{account!~"sales", chat_type=~"group",'
        f' response="first", le="900.0"}}[24h])) / sum without (chat_type, response)'
        f' (increase({h}_count{{account!~"sales", chat_type=~"group", response="first"}}[24h])) < 0.9'
    )
    assert a.promql(a.limit) == (
        f'sum without (chat_type, response, le) (increase({h}_bucket{{le="3600.0"}}[1h30m]))'
        f" / sum without (chat_type, response) (increase({h}_count[1h30m])) < 1"
    )
    assert a.fields(a.limit)["response"] == "all" and a.format_value(0.8) == "80%"


def test_promtool_accepts_the_rules_of_every_reply_kind(tmp_path: Path):
    cfg = config(
        {
            "name": "U",
            "metric": "chat_unanswered",
            "above": "1h",
            "chats": ["^VIP"],
            "overrides": {"sales": {"above": "5m", "severity": "critical"}},
        },
        {"name": "O", "metric": "oldest_unanswered", "above": "4h", "chat_types": ["group"]},
        {"name": "C", "metric": "chats_unanswered", "longer_than": "30m", "above": 3, "for": "5m"},
        {
            **SLA,
            "overrides": {"sales": {"below": 0.5, "for": "1h", "severity": "critical"}},
            "description": "{response} {target} {window} {value}",
        },
    )
    rules = tmp_path / "replies.rules.yml"
    rules.write_text(rule_file(cfg.thresholds), encoding="utf-8")
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and "SUCCESS: 6 rules found" in check.stdout, check.stdout + check.stderr
    (sla, sales) = [r for r in yaml.safe_load(rules.read_text())["groups"][0]["rules"] if r["alert"] == "SLA"]
    assert sla["annotations"]["description"] == "first 15m 24h {{ $value | humanizePercentage }}"
    assert sales["for"] == "1h" and sales["expr"].endswith("< 0.5")


def test_every_kind_is_registered_with_its_scope():
    assert {
        k: (KINDS[k].scope, KINDS[k].value) for k in kinds.KINDS if "unanswered" in k or "responses" in k
    } == {
        "chat_unanswered": ("chat", "duration"),
        "oldest_unanswered": ("account", "duration"),
        "chats_unanswered": ("account", "count"),
        "responses_within": ("account", "fraction"),
    }


def test_reply_kinds_cannot_fire_without_the_event_log():
    from exporter.alerting.lint import cannot_fire

    cfg = config(
        {"name": "U", "metric": "chat_unanswered", "above": "1h"},
        {"name": "W", "metric": "chat_waiting", "above": "1h"},
        {**SLA},
        replies={"enabled": False},
    )
    assert cannot_fire(cfg.thresholds, cfg.discover, cfg.replies.enabled) == [
        "thresholds[0] (U): metric chat_unanswered needs replies.enabled: true; it can never fire",
        "thresholds[2] (SLA): metric responses_within needs replies.enabled: true; it can never fire",
    ]
    assert cannot_fire(cfg.thresholds, cfg.discover) == []
    assert {k for k, kind in KINDS.items() if kind.on_replies} == {
        "chat_unanswered",
        "oldest_unanswered",
        "chats_unanswered",
        "responses_within",
    }
