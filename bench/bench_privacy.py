"""What privacy mode costs a poll: snapshot + render of one account, plain vs hash vs drop.

The transform (two HMAC-SHA256 per chat under hash, a copy of every chat) runs
once per poll in ``ChatData.build``; this measures build + render of a
generated account in each mode, as a median of repeated runs.

    python bench/bench_privacy.py [--chats 10000] [--repeat 7]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from common import arguments

from exporter.config.settings import parse_config
from exporter.metrics.render import render_account
from exporter.simulator import Simulator
from exporter.snapshot.state import AccountState, ChatData
from exporter.whatsgate.parse import parse_chats

MODES = {
    "plain": None,
    "hash ids + names": {"chat_ids": "hash", "names": "hash", "key_file": "key"},
    "hash ids, drop names": {"chat_ids": "hash", "names": "drop", "key_file": "key"},
    "drop ids + names": {"chat_ids": "drop", "names": "drop", "key_file": "key"},
}


def main() -> None:
    args = arguments(__doc__, chats=10_000, repeat=7).parse_args()

    sim = Simulator.generate(accounts=1, chats=args.chats, group_fraction=0.1, participants=20)
    chats = parse_chats(json.dumps({"result": "OK", "data": sim.chats("bench-00")}).encode())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "key").write_text("bench-privacy-key-0123456789")
        base = {"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": "bench-00"}]}
        base["chats"] = {"max_per_account": 0}
        print(f"{args.chats} chats, build + render, median of {args.repeat}")
        plain = 0.0
        for mode, section in MODES.items():
            config = parse_config({**base, **({"privacy": section} if section else {})}, Path(tmp))
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                data = ChatData.build(chats, config.chats, time.time(), privacy=config.privacy)
                render_account(AccountState(config.accounts[0]).succeeded(data, 0.0))
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            plain = plain or median
            print(f"  {mode:22s} {median * 1000:7.1f} ms  ({median / plain:.2f}x plain)")


if __name__ == "__main__":
    main()
