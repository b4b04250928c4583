"""Collectors and the cached exposition, against hand-made payloads, without HTTP."""

from __future__ import annotations

import gzip
import re
import zlib

import pytest
from chat_collector import ChatCollector
from helpers import chat_obj, chats_of, group_obj, metrics_body, promtool_check_metrics, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.config.settings import parse_config
from exporter.metrics import exposition as exposition_module
from exporter.metrics.collectors import HealthCollector
from exporter.metrics.exposition import Exposition
from exporter.snapshot.state import AccountState, ChatData
from exporter.snapshot.store import Store

NOW = 1_800_000_000.0
WEIRD = 'Quote " back\\slash\nnew line ✨ שלום مرحبا'


PAYLOAD = {
    "result": "OK",
    "data": [
        chat_obj("100@c.us", unread=3, ts=1_700_000_100, name=WEIRD, pinned=True),
        chat_obj("101@c.us", unread=0, muted=True),
        chat_obj("102@c.us", unread=7, ro=True),
        group_obj("200@g.us", unread=2, admins=2, members=5, size=0, muted=True),
        group_obj("201@g.us", unread=0, members=0, size=42, ro=True, pinned=True),
    ],
}


def make_config(**chats: object):
    return parse_config(
        {
            "whatsgate": {"api_key": "k"},
            "accounts": [{"whatsapp_id": "W1", "name": "support"}, {"whatsapp_id": "W2"}],
            "poll_interval": "1m",
            "stale_after": "5m",
            "chats": chats,
        }
    )


def state_for(payload: dict, config=None, account: int = 0, polled_at: float = NOW) -> AccountState:
    config = config or make_config()
    data = ChatData.build(chats_of(payload["data"]), config.chats, polled_at)
    return AccountState(config.accounts[account]).succeeded(data, 0.25)


def scrape(source: Store | Exposition) -> dict[str, dict[tuple, float]]:
    """Parse the body, rebuilt first, with prometheus-client's own parser: {name: {sorted labels: value}}."""
    exposition = source if isinstance(source, Exposition) else Exposition(source)
    exposition.update()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(b"".join(exposition.chunks()).decode("utf-8")):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict, metric: str, **labels: str) -> float | None:
    for key, v in metrics.get(metric, {}).items():
        if all((k, labels[k]) in key for k in labels):
            return v
    return None


def new_store(clock: float = NOW) -> Store:
    store = Store(stale_after=300, clock=lambda: clock)
    store.expect("W1")
    store.expect("W2")
    return store


def test_values_and_labels_for_hand_made_payload():
    store = new_store()
    store.publish(state_for(PAYLOAD))
    m = scrape(store)
    acc = {"whatsapp_id": "W1", "account": "support"}
    assert value(m, "whatsgate_up", **acc) == 1
    assert value(m, "whatsgate_chats", chat_type="contact", **acc) == 3
    assert value(m, "whatsgate_chats", chat_type="group", **acc) == 2
    assert value(m, "whatsgate_chats_unread", chat_type="contact", **acc) == 2
    assert value(m, "whatsgate_unread_messages", chat_type="contact", **acc) == 10
    assert value(m, "whatsgate_unread_messages", chat_type="group", **acc) == 2
    assert value(m, "whatsgate_chats_read_only", chat_type="contact", **acc) == 1
    assert value(m, "whatsgate_chats_read_only", chat_type="group", **acc) == 1
    assert value(m, "whatsgate_chats_muted", chat_type="contact", **acc) == 1
    assert value(m, "whatsgate_chats_muted", chat_type="group", **acc) == 1
    assert value(m, "whatsgate_chats_pinned", chat_type="group", **acc) == 1
    assert value(m, "whatsgate_chat_unread_messages", chat_id="102@c.us", chat_type="contact", **acc) == 7
    assert value(m, "whatsgate_chat_last_activity_timestamp_seconds", chat_id="100@c.us") == 1_700_000_100
    assert value(m, "whatsgate_chat_info", chat_id="100@c.us", name=WEIRD, chat_type="contact") == 1
    # Participant list wins over size when present; size is the fallback.
    assert value(m, "whatsgate_group_participants", chat_id="200@g.us") == 5
    assert value(m, "whatsgate_group_participants", chat_id="201@g.us") == 42
    assert value(m, "whatsgate_group_admins", chat_id="200@g.us") == 2
    assert value(m, "whatsgate_group_created_timestamp_seconds", chat_id="200@g.us") == 1_600_000_000
    assert value(m, "whatsgate_poll_duration_seconds", **acc) == 0.25
    assert value(m, "whatsgate_last_success_timestamp_seconds", **acc) == NOW
    assert value(m, "whatsgate_poll_errors_total", reason="timeout", **acc) == 0
    assert value(m, "whatsgate_exporter_build_info") == 1
    # The name is only on the info metric.
    assert all(("name", WEIRD) not in k for k in m["whatsgate_chat_unread_messages"])
    # Per-group series only for groups; per-chat series carry chat_type.
    assert len(m["whatsgate_group_participants"]) == 2
    assert all(dict(k)["chat_type"] in ("contact", "group") for k in m["whatsgate_chat_unread_messages"])


def test_each_family_appears_once_across_accounts():
    store = new_store()
    store.publish(state_for(PAYLOAD, account=0))
    store.publish(state_for(PAYLOAD, account=1))
    text = metrics_body(store).decode()
    types = re.findall(r"^# TYPE (\S+)", text, flags=re.M)
    assert len(types) == len(set(types))
    m = scrape(store)
    assert value(m, "whatsgate_chats", whatsapp_id="W2", account="W2", chat_type="group") == 2
    assert len(m["whatsgate_chat_unread_messages"]) == 10


def test_failure_keeps_last_data_and_counts_reason():
    store = new_store()
    good = state_for(PAYLOAD)
    store.publish(good)
    exposition = Exposition(store)
    first = exposition.body.accounts["W1"].data
    bad = good.failed("timeout", "get-chats: no answer within 10s", 10.0)
    store.publish(bad)
    assert exposition.update()
    assert exposition.body.accounts["W1"].data is first  # rendered once, reused while polls fail
    m = scrape(store)
    assert value(m, "whatsgate_up", whatsapp_id="W1") == 0
    assert value(m, "whatsgate_poll_errors_total", whatsapp_id="W1", reason="timeout") == 1
    assert value(m, "whatsgate_poll_errors_total", whatsapp_id="W1", reason="connection") == 0
    assert value(m, "whatsgate_last_success_timestamp_seconds", whatsapp_id="W1") == NOW
    assert value(m, "whatsgate_chat_unread_messages", chat_id="102@c.us") == 7


def test_stale_data_drops_per_chat_series_but_keeps_up():
    store = new_store(clock=NOW + 301)
    store.publish(state_for(PAYLOAD).failed("connection", "refused", 0.1))
    m = scrape(store)
    assert "whatsgate_chat_unread_messages" not in m
    assert "whatsgate_group_participants" not in m
    assert "whatsgate_chat_info" not in m
    assert value(m, "whatsgate_up", whatsapp_id="W1") == 0
    assert value(m, "whatsgate_chats", whatsapp_id="W1", chat_type="contact") == 3


def test_fresh_poll_replaces_whole_snapshot():
    store = new_store()
    store.publish(state_for(PAYLOAD))
    smaller = {"result": "OK", "data": [chat_obj("102@c.us", unread=1)]}
    store.publish(state_for(smaller))
    m = scrape(store)
    assert set(dict(k)["chat_id"] for k in m["whatsgate_chat_unread_messages"]) == {"102@c.us"}
    assert value(m, "whatsgate_chat_unread_messages", chat_id="102@c.us") == 1
    assert "whatsgate_group_participants" not in m
    assert value(m, "whatsgate_chats", whatsapp_id="W1", chat_type="group") == 0


def test_cap_keeps_most_unread_then_most_recent_and_counts_the_rest():
    chats = [chat_obj(f"{i}@c.us", unread=u, ts=1_700_000_000 + i) for i, u in enumerate([0, 5, 0, 9, 5])]
    store = new_store()
    store.publish(state_for({"result": "OK", "data": chats}, config=make_config(max_per_account=3)))
    m = scrape(store)
    kept = {dict(k)["chat_id"] for k in m["whatsgate_chat_unread_messages"]}
    assert kept == {"3@c.us", "4@c.us", "1@c.us"}
    assert value(m, "whatsgate_chats_omitted", reason="max_per_account") == 2
    assert value(m, "whatsgate_chats", chat_type="contact") == 5  # aggregates count every chat
    assert value(m, "whatsgate_unread_messages", chat_type="contact") == 19


def test_include_exclude_filters_per_chat_series_only():
    config = make_config(include=["^10"], exclude=["muted|^Chat 101"])
    store = new_store()
    store.publish(state_for(PAYLOAD, config=config))
    m = scrape(store)
    kept = {dict(k)["chat_id"] for k in m["whatsgate_chat_unread_messages"]}
    assert kept == {"100@c.us", "102@c.us"}
    assert value(m, "whatsgate_chats_omitted", reason="filtered") == 3
    assert value(m, "whatsgate_chats", chat_type="group") == 2


def test_collectors_work_in_a_plain_registry():
    registry = CollectorRegistry()
    state = state_for(PAYLOAD)
    registry.register(HealthCollector(state))
    registry.register(ChatCollector(state.account, state.data))
    assert registry.get_sample_value("whatsgate_up", {"whatsapp_id": "W1", "account": "support"}) == 1
    labels = {"whatsapp_id": "W1", "account": "support", "chat_id": "200@g.us"}
    assert registry.get_sample_value("whatsgate_group_admins", labels) == 2


def test_ready_waits_for_every_expected_account():
    store = new_store()
    assert store.ready()[0] is False
    store.publish(state_for(PAYLOAD, account=0))
    assert store.ready() == (False, "1 of 2 accounts polled")
    store.publish(AccountState(make_config().accounts[1]).failed("timeout", "x", 1.0))
    assert store.ready() == (True, "2 of 2 accounts polled")


def test_removed_account_is_not_published_again():
    store = new_store()
    store.publish(state_for(PAYLOAD))
    store.remove("W1")
    store.publish(state_for(PAYLOAD))
    assert "whatsgate_up" not in scrape(store)


@pytest.mark.realtools
def test_promtool_accepts_the_exposition():
    store = new_store()
    store.publish(state_for(PAYLOAD, account=0))
    store.publish(state_for(PAYLOAD, account=1).failed("unauthorized", "bad key", 0.1))
    result = promtool_check_metrics(b"".join(Exposition(store).chunks()).decode())
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_scrapes_between_polls_reuse_the_snapshots_but_see_staleness_polls_and_live_metrics():
    """The snapshots' part of the body is reused between polls: never when time makes data stale,
    never after a publish, and the metrics rendered per scrape stay current."""
    now = [NOW]
    store = Store(stale_after=300, clock=lambda: now[0])
    exposition = Exposition(store)
    store.expect("W1")
    calls = [0]

    class Live:
        def collect(self):  # type: ignore[no-untyped-def]
            from prometheus_client.core import GaugeMetricFamily

            calls[0] += 1
            yield GaugeMetricFamily("whatsgate_test_live", "per scrape", value=calls[0])

    exposition.live.append(Live())
    store.publish(state_for(PAYLOAD))
    first, second = scrape(exposition), scrape(exposition)
    assert "whatsgate_chat_unread_messages" in first and first.keys() == second.keys()
    assert value(second, "whatsgate_test_live") == value(first, "whatsgate_test_live") + 1
    now[0] = NOW + 301  # the same snapshot, now stale: its per-chat series go
    stale = scrape(exposition)
    assert (
        "whatsgate_chat_unread_messages" not in stale and value(stale, "whatsgate_up", whatsapp_id="W1") == 1
    )
    store.publish(state_for({"result": "OK", "data": [chat_obj("102@c.us", unread=1)]}, polled_at=NOW + 301))
    fresh = scrape(exposition)
    assert set(dict(k)["chat_id"] for k in fresh["whatsgate_chat_unread_messages"]) == {"102@c.us"}
    assert value(fresh, "whatsgate_test_live") == 4


def test_gzip_scrapes_reuse_the_rebuilt_body_and_see_every_change(monkeypatch):  # type: ignore[no-untyped-def]
    """The snapshots' part is deflated once per rebuild (after a publish, or data turning stale),
    not per scrape, and a scrape deflates its own part only when that changed; a publish, a
    changed live metric and data turning stale each still give a body that inflates to the
    plain text of that moment."""
    from prometheus_client.core import GaugeMetricFamily

    now = [NOW]
    store = Store(stale_after=300, clock=lambda: now[0])
    exposition = Exposition(store)
    level = [1.0]

    class Live:
        def collect(self):  # type: ignore[no-untyped-def]
            yield GaugeMetricFamily("whatsgate_test_live", "per scrape", value=level[0])

    deflates: list[int] = []
    real = exposition_module.DEFLATE

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def compressobj(self, *args: object) -> object:
            deflates.append(1)
            return real.compressobj(*args)

    monkeypatch.setattr(exposition_module, "DEFLATE", Counting())
    monkeypatch.setattr(exposition_module, "PROCESS_METRICS_MAX_AGE", 3600.0)
    exposition.live.append(Live())
    store.expect("W1")
    store.publish(state_for(PAYLOAD))

    def check() -> bytes:
        body = gzip.decompress(b"".join(exposition.gzip_chunks()))
        assert body == b"".join(exposition.chunks())  # one rendering of the process metrics for both
        assert b"# HELP python_info" in body
        return body

    assert exposition.update() and len(deflates) == 1
    check()
    check()
    assert not exposition.update() and len(deflates) == 2  # two scrapes, one deflate of their own part
    store.publish(state_for(PAYLOAD, polled_at=NOW + 1))
    assert exposition.update()
    check()
    assert len(deflates) == 3  # a rebuild; the scrape's part unchanged
    level[0] = 2.0  # a live change: the same body, a new scrape part
    assert b"whatsgate_test_live 2.0" in check()
    assert len(deflates) == 4
    now[0] = NOW + 400  # stale: the per-chat series go
    assert b"whatsgate_chat_unread_messages{" in check()  # until the thread's next look
    assert exposition.update()
    body = check()
    assert b"whatsgate_chat_unread_messages{" not in body and len(deflates) == 5


def test_per_scrape_collectors_that_change_a_kept_family_in_place_or_sign_of_zero_are_written_again():  # type: ignore[no-untyped-def]
    """A collector may keep its family and change it in place, or go from 0.0 to -0.0 (equal as
    numbers, written apart): each scrape still shows what it collects now."""
    from prometheus_client.core import GaugeMetricFamily

    exposition = Exposition(Store(stale_after=300, clock=lambda: NOW))
    kept = GaugeMetricFamily("whatsgate_test_kept", "changed in place", value=1.0)
    signed = [0.0]

    class Live:
        def collect(self):  # type: ignore[no-untyped-def]
            yield kept
            yield GaugeMetricFamily("whatsgate_test_signed", "zero", value=signed[0])

    exposition.live.append(Live())
    assert b"whatsgate_test_kept 1.0" in b"".join(exposition.chunks())
    kept.samples[0] = kept.samples[0]._replace(value=2.0)
    signed[0] = -0.0
    body = b"".join(exposition.chunks())
    assert b"whatsgate_test_kept 2.0" in body
    assert b"whatsgate_test_signed -0.0" in body


def test_the_reload_and_shard_families_follow_what_they_write():  # type: ignore[no-untyped-def]
    from exporter.config.reload import Reloader
    from exporter.config.sharding import Shard
    from exporter.metrics.collectors import ReloadCollector, ShardCollector

    clock = [100.0]
    reloader = Reloader(load=lambda: None, apply=lambda config: None, clock=lambda: clock[0])  # type: ignore[arg-type,return-value]
    exposition = Exposition(Store(stale_after=300, clock=lambda: NOW))
    exposition.live.extend([ReloadCollector(reloader), ShardCollector(Shard(1, 3))])

    def body() -> bytes:
        return b"".join(exposition.chunks())

    assert b"whatsgate_exporter_config_last_reload_success_timestamp_seconds 100.0" in body()
    assert b'whatsgate_exporter_shard_info{index="1",total="3"} 1.0' in body()
    reloader.successful = False
    assert b"whatsgate_exporter_config_last_reload_successful 0.0" in body()
    clock[0] = 200.0
    reloader.reload("test")
    text = body()
    assert b"whatsgate_exporter_config_last_reload_successful 1.0" in text
    assert b"whatsgate_exporter_config_last_reload_success_timestamp_seconds 200.0" in text


@settings(max_examples=20, deadline=None)
@given(
    chats=st.lists(st.integers(0, 2000), max_size=3),
    live=st.lists(st.floats(allow_nan=False), max_size=3),
    stale=st.booleans(),
)
def test_any_gzip_body_is_one_member_of_exactly_the_plain_body(
    chats: list[int], live: list[float], stale: bool
) -> None:
    """Whatever the accounts (small, or large enough for their samples to be kept deflated), the
    per-scrape families and staleness: the gzip body is one member (see exposition for why) that
    inflates to the plain body, with the right CRC and length."""
    from prometheus_client.core import GaugeMetricFamily

    from exporter.model import Account, Chat, ChatsConfig

    now = [NOW]
    store = Store(stale_after=300, clock=lambda: now[0])
    exposition = Exposition(store)
    for n, count in enumerate(chats):
        store.expect(f"W{n}")
        answer = [Chat(f"{i}@c.us", f"n{i}", False, False, i % 5, i, False, False) for i in range(count)]
        data = ChatData.build(answer, ChatsConfig(max_per_account=0), NOW)
        store.publish(AccountState(Account(f"W{n}", f"a{n}")).succeeded(data, 0.1))

    class Live:
        def collect(self):  # type: ignore[no-untyped-def]
            for i, v in enumerate(live):
                yield GaugeMetricFamily(f"whatsgate_test_live_{i}", "per scrape", value=v)

    exposition.live.append(Live())
    now[0] += 301 if stale else 0
    exposition.update()
    plain = b"".join(exposition.chunks())
    body = b"".join(exposition.gzip_chunks())
    inflate = zlib.decompressobj(31)
    assert inflate.decompress(body) == plain
    assert inflate.eof and inflate.unused_data == b""
    assert gzip.decompress(body) == plain  # its CRC and length are right


def test_a_failed_rebuild_is_said_and_the_thread_goes_on(monkeypatch, caplog):  # type: ignore[no-untyped-def]
    """An exporter bug while rebuilding is an error line and ``failing`` (the web server answers
    503: the body left is older than the snapshots) until a rebuild works; the thread never dies."""
    store = Store(stale_after=300, clock=lambda: NOW)
    exposition = Exposition(store)
    store.subscribe(exposition.wake)
    monkeypatch.setattr(exposition_module, "INTERVAL", 0.01)
    real, broken = exposition_module._deflated, [True]

    def deflated(*args, **kwargs):  # type: ignore[no-untyped-def]
        if broken[0]:
            raise RuntimeError("a bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(exposition_module, "_deflated", deflated)
    exposition.start()
    try:
        store.expect("W1")
        store.publish(state_for(PAYLOAD))
        wait_until(lambda: exposition.failing, timeout=5, what="the failed rebuild")
        assert b"whatsgate_up{" not in b"".join(exposition.chunks())
        broken[0] = False
        wait_until(lambda: not exposition.failing, timeout=5, what="a rebuild that works")
        assert b"whatsgate_up{" in b"".join(exposition.chunks())
    finally:
        exposition.stop()
    assert "rebuilding /metrics failed" in caplog.text


def test_ready_only_once_the_metrics_served_show_every_account():
    """/ready answers as the store does, but says ready only once /metrics shows what made it so
    (regression: a body built before the accounts were expected said "0 of 0 accounts polled",
    ready, and /ready answered 200 with no account in /metrics)."""
    store = Store(stale_after=300, clock=lambda: NOW)
    exposition = Exposition(store)  # built before the accounts are expected, as at start-up
    store.expect("W1")
    store.expect("W2")
    assert exposition.ready() == (False, "0 of 2 accounts polled")
    store.publish(state_for(PAYLOAD, account=0))
    store.publish(state_for(PAYLOAD, account=1).failed("timeout", "x", 1.0))
    assert store.ready() == (True, "2 of 2 accounts polled")
    assert exposition.ready() == (False, "2 of 2 accounts polled; /metrics not rebuilt yet")
    exposition.update()
    assert exposition.ready() == (True, "2 of 2 accounts polled")
    assert 'whatsgate_up{account="support",whatsapp_id="W1"}' in b"".join(exposition.chunks()).decode()


def test_the_per_scrape_families_are_named_apart_from_every_snapshot_family():
    """A scrape writes its own families after the body's (Exposition._scrape): one named like a
    snapshot family would split that family into two groups, which the text format forbids."""
    import dataclasses

    from exporter.alerting.agent import Agent, AlertsCollector
    from exporter.config.reload import Reloader
    from exporter.config.sharding import Shard
    from exporter.metrics.collectors import ReloadCollector, ShardCollector
    from exporter.metrics.render import render
    from exporter.snapshot.replies import ReplyData, Tracker
    from exporter.snapshot.state import DiscoveryState

    config = parse_config(
        {
            "whatsgate": {"api_key": "k"},
            "accounts": [{"whatsapp_id": "W1"}],
            "alertmanager": {"url": "http://alertmanager:9093"},
            "thresholds": [{"name": "Busy", "metric": "unread_messages", "above": 1}],
        }
    )
    reloader = Reloader(load=lambda: config, apply=lambda config: None)
    live = [
        AlertsCollector(Agent(config, "http://exporter/")),
        ReloadCollector(reloader),
        ShardCollector(Shard(0, 2)),
    ]
    per_scrape = {name for collector in live for name, _ in render(collector)[0]}
    assert len(per_scrape) == 6  # every family they can write
    store = new_store()
    replies = ReplyData(Tracker.empty((60.0,)), up=True, last_success=NOW, unanswered=())
    store.publish(dataclasses.replace(state_for(PAYLOAD), replies=replies))
    store.publish_discovery(DiscoveryState(up=True, last_success=NOW))
    text = b"".join(Exposition(store).chunks()).decode()
    snapshot = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {"whatsgate_chat_unread_messages", "whatsgate_response_duration_seconds"} <= snapshot
    assert "whatsgate_discovery_up" in snapshot and "whatsgate_exporter_build_info" in snapshot
    assert not per_scrape & snapshot


def test_the_body_holds_no_snapshot_a_newer_one_replaced_and_probe_still_answers():
    """The body keeps each account's rendering until the next rebuild, but not its snapshot: a
    re-polled account's previous chat data is freed at the publish, not a rebuild later; /probe
    in between serves the rendering of the last rebuild with the newer snapshot's staleness."""
    import gc
    import weakref

    store = new_store()
    exposition = Exposition(store)
    store.publish(state_for(PAYLOAD))
    exposition.update()
    first = weakref.ref(store.snapshots()["W1"].data)
    store.publish(state_for(PAYLOAD, polled_at=NOW + 1))
    gc.collect()
    assert first() is None  # its chat data: only the store held it
    probe = b"".join(exposition.chunks("W1")).decode()
    assert 'whatsgate_up{account="support",whatsapp_id="W1"} 1.0' in probe
    assert "whatsgate_chat_unread_messages{" in probe


def test_a_family_longer_than_a_piece_inflated_at_once_is_written_whole():
    """A kept family is inflated in pieces of at most INFLATE_PIECE: one whose text is longer is
    still written whole, as prometheus-client writes it."""
    from prometheus_client import generate_latest

    from exporter.metrics.render import INFLATE_PIECE

    chats = [chat_obj(f"{i}@c.us", unread=i % 7, ts=1_700_000_000 + i) for i in range(3000)]
    state = state_for({"result": "OK", "data": chats}, make_config(max_per_account=0))
    store = new_store()
    store.publish(state)
    assert state.data is not None
    registry = CollectorRegistry()
    registry.register(ChatCollector(state.account, state.data))
    families = generate_latest(registry).split(b"# HELP ")[1:]
    assert max(map(len, families)) > 2 * INFLATE_PIECE
    body = metrics_body(store)
    for family in families:
        assert b"# HELP " + family in body


def test_many_small_accounts_are_each_rendered_into_a_few_kilobytes():
    """With many small accounts, their renderings were most of what the exporter held (issue 18:
    10,000 accounts of 20 chats within 150 MB): each collector's families are kept in one object,
    each of them, however small, deflated with a dictionary per family."""
    import gc
    import tracemalloc

    from exporter.metrics.render import render_account
    from exporter.model import Account

    config = make_config()
    chats = [chat_obj(f"7999{i:07d}@c.us", unread=i % 3, ts=1_700_000_000 + 97 * i) for i in range(18)]
    chats += [group_obj(f"1203{i:014d}@g.us", unread=i, members=5) for i in range(2)]
    states = []
    for n in range(300):
        data = ChatData.build(chats_of(chats), config.chats, NOW)
        states.append(AccountState(Account(f"7999{n:07d}", f"account-{n}")).succeeded(data, 0.25))
    render_account(states[0])  # the dictionaries and layouts, made once for every account
    gc.collect()
    tracemalloc.start()
    try:
        rendered = [render_account(state) for state in states]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] / len(rendered)
    finally:
        tracemalloc.stop()
    assert held < 3000, f"{held:.0f} bytes per account"


def test_a_rebuild_takes_the_heavy_work_lock_once_not_once_per_account(monkeypatch):  # type: ignore[no-untyped-def]
    """The polls' decodes take memory.HEAVY_WORK too: taken per rendering (three per account), a
    rebuild of 10,000 accounts queued behind them thousands of times, and /ready waited for it."""
    import threading

    from exporter import memory
    from exporter.model import Account

    class Counted:
        def __init__(self) -> None:
            self.lock, self.taken = threading.Lock(), 0

        def __enter__(self) -> None:
            self.lock.acquire()
            self.taken += 1

        def __exit__(self, *exc: object) -> None:
            self.lock.release()

    config = make_config()
    store = Store(stale_after=300, clock=lambda: NOW)
    exposition = Exposition(store)
    counted = Counted()
    monkeypatch.setattr(memory, "HEAVY_WORK", counted)
    for n in range(20):
        data = ChatData.build(chats_of(PAYLOAD["data"]), config.chats, NOW)
        state = AccountState(Account(f"7999{n:07d}", f"account-{n}")).succeeded(data, 0.25)
        store.expect(state.account.whatsapp_id)
        store.publish(state)
    assert exposition.update()
    assert counted.taken == 1
    last = (("account", "account-19"), ("whatsapp_id", "79990000019"))
    assert scrape(exposition)["whatsgate_up"][last] == 1.0


def test_a_rebuild_indexes_each_family_by_the_renderings_holding_it_one_entry_each():
    """At 10,000 accounts the rebuild's family index was 480,000 entries (two per family of each
    rendering: it and the family's index there), a large share of a rebuild's transient."""
    from exporter.metrics.render import _split

    one = _split([("a", b"# a\n", b"a 1\n"), ("b", b"# b\n", b"b 1\n")], pack=False)
    two = _split([("b", b"# b\n", b"b 2\n")], pack=False)  # "b" at another index in another layout
    families = exposition_module._families([(0, [one, two, one])])
    assert families[1] == {"a": [one, one], "b": [one, two, one]}
    assert b"".join(exposition_module._text(families, 1, {})) == b"# a\na 1\na 1\n# b\nb 1\nb 2\nb 1\n"
