"""Command line: run the exporter, the demo, or a command (check-config, rules, healthcheck, hash-password).

Flags follow the Prometheus style (:mod:`.flags`). Every start-up problem ends in one
line on stderr and exit code 1 (2 for a flag argparse rejects), never a traceback.
While serving (:mod:`.serve`), every line is a log line in the ``--log.format``
chosen; the commands (:mod:`.commands`, :mod:`.healthcheck`) print plain text,
their output being the point.
"""

from __future__ import annotations

import sys
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
    from . import serve

    return serve.run(args)


if __name__ == "__main__":
    sys.exit(main())
