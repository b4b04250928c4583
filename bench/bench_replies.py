"""Reply times' cost: CPU per event of the events poll against bare ``json.loads``; memory.

1. CPU per event (in process): one account of ``--chats`` chats whose event log grows by
   ``--events`` messages per get-chats poll (the simulator's benchmark traffic). The events-get
   pages of one poll are fetched once; then, alternating back to back, ``json.loads`` of those
   pages' bytes (the baseline) and the real events poll (``EventsPoller.poll_once``: decoding,
   the cursor, sorting, the chat filter, the tracker, the open spans) reading the same pages
   from memory, restarted each time from the state before them. ``history_per_poll`` is 0, so
   no get-history call (network) is timed. Timed twice: without publishing (the poll's own
   work) and with the real Store (which renders the account's exposition again). The figure is
   the median of each repeat's own ratio.
2. Peak RSS (``--rss``): the exporter and the simulator as processes, ``--accounts`` accounts of
   ``--chats`` chats with ``--events`` messages per account per poll, five re-poll cycles, once
   with ``replies.enabled: true`` and once false; VmHWM reset after the first cycle, so it is
   the steady state's peak.

    python bench/bench_replies.py [--chats 10000] [--events 2000] [--repeat 15] [--rss]
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import common
import requests

from exporter.config.settings import parse_config
from exporter.metrics.exposition import Exposition
from exporter.poller import AccountPoller
from exporter.poller.events import EventsPoller
from exporter.simulator import Simulator
from exporter.snapshot.state import AccountState
from exporter.snapshot.store import Store
from exporter.whatsgate.client import WhatsGateClient
from exporter.whatsgate.events import EventsPage, decode_events

WID = "bench-00"


class Pages:
    """events-get answered from bytes in memory; get-history is never asked (history_per_poll 0)."""

    def __init__(self, bodies: dict[int, bytes]) -> None:
        self.bodies = bodies

    def events_page(self, whatsapp_id: str, date: str | None, page: int, page_cnt: int = 100) -> EventsPage:
        decoded = decode_events(self.bodies[page])
        assert decoded is not None
        return decoded

    def history(self, whatsapp_id: str, chat_id: str) -> tuple[tuple[()], int]:
        raise AssertionError("history_per_poll is 0")


class Quiet:
    def publish(self, state: AccountState) -> None:
        pass

    def prepare(self, state: AccountState) -> object:
        return None


class Rendered:
    """Publishes to the store, and renders the account again as the exposition's thread would."""

    def __init__(self, store: Store) -> None:
        self.store, self.exposition = store, Exposition(store)

    def publish(self, state: AccountState) -> None:
        self.store.publish(state)
        self.exposition.update()

    def prepare(self, state: AccountState) -> object:
        return self.exposition.prepare(state)


def cpu_per_event(chats: int, events: int, repeat: int) -> None:
    sim = Simulator.generate(
        accounts=1, chats=chats, group_fraction=0.1, participants=20, events_per_poll=events
    )
    sim.start()
    try:
        config = parse_config(
            {
                "whatsgate": {"url": sim.url, "api_key": sim.api_key, "timeout": "60s"},
                "accounts": [{"whatsapp_id": WID}],
                "replies": {"history_per_poll": 0, "max_pages": 1000},
                "stale_after": "1h",
            }
        )
        client = WhatsGateClient(sim.url, sim.api_key, timeout=60)
        store = Store(stale_after=3600)
        store.expect(WID)
        chats_poller = AccountPoller(config.accounts[0], client, lambda: config, store)
        events_poller = EventsPoller(chats_poller, client)
        chats_poller.poll_once()
        events_poller.poll_once()  # the first start: the cursor at the newest event
        chats_poller.poll_once()  # the simulator writes --events messages
        before = chats_poller.state.replies
        assert before is not None and before.cursor is not None
        headers = {"X-Api-Key": sim.api_key}
        bodies: dict[int, bytes] = {}
        page, pages = 1, 1
        while page <= pages:
            body = {"WhatsappID": WID, "date": before.cursor.date, "page_cnt": 100, "page": page}
            bodies[page] = requests.post(
                f"{sim.url}/events-get", json=body, headers=headers, timeout=60
            ).content
            pages = json.loads(bodies[page])["pages"]
            page += 1
        read = sum(len(json.loads(b)["data"]) for b in bodies.values())
        size = sum(map(len, bodies.values()))
        print(f"{chats} chats, one poll's events: {read} events in {pages} pages, {size / 1e6:.2f} MB")
        events_poller.source = Pages(bodies)
        sinks = {
            "the poll's own work": Quiet(),
            "with publishing (the account rendered again)": Rendered(store),
        }
        for label, sink in sinks.items():
            chats_poller.sink = sink
            ratios, ours, base = [], [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                for b in bodies.values():
                    json.loads(b)
                t1 = time.perf_counter()
                chats_poller.state = dataclasses.replace(chats_poller.state, replies=before)
                t2 = time.perf_counter()
                state = events_poller.poll_once()
                t3 = time.perf_counter()
                assert state.replies is not None and state.replies.up, state.replies
                ours.append(t3 - t2)
                base.append(t1 - t0)
                ratios.append((t3 - t2) / (t1 - t0))
            per, loads = statistics.median(ours) / read * 1e6, statistics.median(base) / read * 1e6
            print(
                f"  {label}: {per:.1f} us per event, json.loads {loads:.1f} us;"
                f" ratio (median of {repeat}) {statistics.median(ratios):.2f}x"
            )
        client.close()
    finally:
        sim.stop()


def peak_rss(accounts: int, chats: int, events: int, enabled: bool, cycles: int = 5) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="bench-replies-"))
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_port, exp_port = common.free_port(), common.free_port()
        sim_cmd = common.simulator_command(sim_port, accounts, chats, "--events-per-poll", str(events))
        procs.append(subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, cwd=common.REPO, env=env))
        (tmp / "config.yaml").write_text(
            common.exporter_config(sim_port, accounts, "600s") + "poll_interval: 1s\nstale_after: 1h\n"
            f"replies:\n  enabled: {'true' if enabled else 'false'}\n"
        )
        time.sleep(1.0)
        log_path = tmp / "exporter.log"
        exp_cmd = common.exporter_command(tmp / "config.yaml", exp_port, "debug")
        with log_path.open("w") as log:
            exporter = subprocess.Popen(
                exp_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=common.REPO, env=env
            )
        procs.append(exporter)

        def polls() -> int:
            return log_path.read_text(errors="replace").count("poll ok")

        while polls() < accounts:
            time.sleep(0.5)
        time.sleep(3)  # the first events polls (first start) too
        Path(f"/proc/{exporter.pid}/clear_refs").write_text("5")
        target = polls() + cycles * accounts
        while polls() < target:
            time.sleep(0.5)
        return common.vm_hwm_mb(exporter.pid)
    finally:
        common.stop_all(procs)


def main() -> None:
    parser = common.arguments(__doc__, accounts=10, chats=10_000, events=2000, repeat=15)
    parser.add_argument("--rss", action="store_true", help="also the peak RSS, replies on and off (minutes)")
    args = parser.parse_args()
    cpu_per_event(args.chats, args.events, args.repeat)
    if args.rss:
        on = peak_rss(args.accounts, args.chats, args.events, True)
        off = peak_rss(args.accounts, args.chats, args.events, False)
        print(
            f"peak RSS over 5 re-poll cycles, {args.accounts} x {args.chats} chats, {args.events} events"
            f" per account per poll: replies on {on:.0f} MB, off {off:.0f} MB: {on - off:+.0f} MB"
        )


if __name__ == "__main__":
    main()
