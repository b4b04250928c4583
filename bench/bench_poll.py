"""Poll-processing cost against bare ``json.loads`` of the same get-chats answer.

Processing is everything the exporter does with an answer once its bytes have
arrived: decode, check and parse every chat, build the snapshot (aggregates,
waits, selection), render its exposition text and compress it. The baseline is
``json.loads`` alone. The two alternate, back to back, with nothing between
them; the figure is the median of each repeat's own ratio, since the machine's
speed drifts. The same through the client's call (its HTTP faked in-process by
``responses``) is timed apart, for reference: done inside the same loop, its
garbage and second snapshot slowed the processing measured after it by a fifth.
The decoding alone (answer bytes to checked records) alternates with ``json.loads``
the same way; a refused answer (its last chat broken) is timed through the client.

    python bench/bench_poll.py [--chats 10000] [--repeat 15]
"""

from __future__ import annotations

import json
import statistics
import time

import responses
from common import arguments

from exporter.config.settings import parse_config
from exporter.metrics.render import render_account
from exporter.model import Chat
from exporter.simulator import Simulator
from exporter.snapshot.state import AccountState, ChatData
from exporter.whatsgate.client import PollError, WhatsGateClient
from exporter.whatsgate.parse import parse_chats

URL = "http://whatsgate.bench/api/v1"


def main() -> None:
    args = arguments(__doc__, chats=10_000, repeat=15).parse_args()

    sim = Simulator.generate(accounts=1, chats=args.chats, group_fraction=0.1, participants=20)
    whatsapp_id = "bench-00"
    body = json.dumps({"result": "OK", "data": sim.chats(whatsapp_id)}).encode()
    config = parse_config(
        {
            "whatsgate": {"url": URL, "api_key": "k"},
            "accounts": [{"whatsapp_id": whatsapp_id}],
            "chats": {"max_per_account": 0},
        }
    )
    client = WhatsGateClient(URL, "k")
    print(f"payload: {len(body) / 1e6:.2f} MB, {args.chats} chats")

    def snapshot_and_render(chats: list[Chat]) -> None:
        data = ChatData.build(chats, config.chats, polled_at=time.time())
        render_account(AccountState(config.accounts[0]).succeeded(data, 0.0))

    # json.loads and the processing alternate, back to back, with nothing else between them.
    loads, direct = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        json.loads(body)
        t1 = time.perf_counter()
        decoded = parse_chats(body)
        snapshot_and_render(decoded)
        t2 = time.perf_counter()
        del decoded
        loads.append(t1 - t0)
        direct.append(t2 - t1)
    # The decoding alone (bytes to checked records), against json.loads, alternating likewise.
    decode_ratios, decode_times = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        json.loads(body)
        t1 = time.perf_counter()
        parse_chats(body)
        t2 = time.perf_counter()
        decode_ratios.append((t2 - t1) / (t1 - t0))
        decode_times.append(t2 - t1)
    decode_ratios.sort()
    # For reference, apart: the same through the client's call, its HTTP faked by responses.
    process, parse_only = [], []
    with responses.RequestsMock() as mock:
        mock.post(f"{URL}/get-chats", body=body, content_type="application/json")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            chats = client.get_chats(whatsapp_id)
            t1 = time.perf_counter()
            snapshot_and_render(chats)
            t2 = time.perf_counter()
            del chats
            parse_only.append(t1 - t0)
            process.append(t2 - t0)
    # A refused answer: the same with its last chat's unreadCount a string, through the client.
    bad = (
        body[: body.rindex(b'"unreadCount": ')]
        + b'"unreadCount": "1", '
        + body[body.rindex(b'"timestamp"') :]
    )
    refused = []
    with responses.RequestsMock() as mock:
        mock.post(f"{URL}/get-chats", body=bad, content_type="application/json")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            try:
                client.get_chats(whatsapp_id)
            except PollError as exc:
                assert exc.reason == "invalid_response", exc
            else:
                raise AssertionError("the broken answer was accepted")
            refused.append(time.perf_counter() - t0)
    m_loads, m_parse, m_process = (statistics.median(x) for x in (loads, parse_only, process))
    m_direct = statistics.median(direct)
    # Each repeat's own ratio (its json.loads and its processing ran back to back), so that the
    # machine's speed drifting between repeats cancels out; their median is the figure.
    ratios = sorted(p / j for p, j in zip(direct, loads, strict=True))
    print(f"json.loads alone:            median {m_loads * 1000:7.1f} ms")
    print(
        f"poll processing (decode, validate, snapshot, waits, render, compress):\n"
        f"                             median {m_direct * 1000:7.1f} ms"
        f"  ratio to json.loads: median {statistics.median(ratios):.2f}x"
        f" (range {ratios[0]:.2f}-{ratios[-1]:.2f}x over {len(ratios)} repeats;"
        f" ratio of the medians {m_direct / m_loads:.2f}x)"
    )
    print(
        f"decoding alone (bytes to checked records): median {statistics.median(decode_times) * 1000:7.1f} ms"
        f"  ratio to json.loads: median"
        f" {statistics.median(decode_ratios):.2f}x (range {decode_ratios[0]:.2f}-{decode_ratios[-1]:.2f}x)"
    )
    # Not processing, shown for reference: the client's call through requests, faked by responses.
    print(
        f"with the client's faked HTTP round trip: median {m_process * 1000:7.1f} ms"
        f" ({m_process / m_loads:.2f}x); fetch(faked)+decode alone {m_parse * 1000:.1f} ms;"
        f" a refused answer {statistics.median(refused) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
