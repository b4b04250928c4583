"""Command line: run the exporter, the demo, or a command (check-config, rules, healthcheck, hash-password).

Flags follow the Prometheus style (:mod:`.flags`). Every start-up problem ends in one
line on stderr and exit code 1 (2 for a flag argparse rejects), never a traceback.
While serving (:mod:`.serve`), every line is a log line in the ``--log.format``
chosen; the commands (:mod:`.commands`, :mod:`.healthcheck`) print plain text,
their output being the point.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from .flags import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    # Each command imports only its own module: `healthcheck` is a container's liveness and
    # readiness probe, run every few seconds inside the pod's memory limit and CPU request, and
    # the server's modules (aiohttp, prometheus-client, the pollers) would triple its cost.
    args = build_parser().parse_args(argv)
    if args.command == "healthcheck":
        from . import healthcheck

        return healthcheck.check(
            args.sub_listen_address or args.listen_address, args.sub_web_config_file or args.web_config_file
        )
    if args.command == "hash-password":
        from . import hashpw

        return hashpw.run(args.cost)
    if args.command is not None:
        from . import commands

        return commands.run(args)
    _without_what_serving_never_uses()
    from . import serve

    return serve.run(args)


def _without_what_serving_never_uses() -> None:
    """Keep two libraries' parts out of the process before anything imports them: both are loaded
    by the libraries the exporter uses, never used by it, and held for the process's whole life,
    a share of the memory budget that large accounts need (bench/RESULTS.md).

    - charset_normalizer (or chardet): requests uses it for one thing, guessing the encoding of an
      answer that names none (``Response.apparent_encoding``), and without it takes UTF-8 instead.
      The exporter never needs a guess: WhatsGate's answers are decoded as JSON from their bytes,
      and an error text from the Alertmanager, read as UTF-8 when it names no charset, only ever
      becomes an excerpt in a log line. Its tables are built at import. requests warns at import
      that it found neither; that is expected here.
    - frozenlist's compiled extension: aiohttp keeps the handlers of its signals in frozen lists,
      which the low-level server the exporter runs (web/server.py) never fires. Compiled as C++,
      the extension maps the C++ runtime into the process. ``FROZENLIST_NO_EXTENSIONS``, frozenlist's
      own switch, gives the same class in Python; a value the user set is kept.
    """
    if "requests" not in sys.modules:  # else imported already (a test runs main in-process)
        for name in ("charset_normalizer", "chardet"):
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # import raises ImportError
        warnings.filterwarnings("ignore", "Unable to find acceptable character detection dependency")
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")


if __name__ == "__main__":
    sys.exit(main())
