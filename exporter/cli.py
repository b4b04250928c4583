"""Command line: run the exporter, the demo, or check a config file.

Flags follow the Prometheus style (``--config.file``, ``--web.listen-address``,
``--log.level``). Every start-up problem ends in one line on stderr and exit
code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from . import __version__, logfmt, memory, statefile
from .alerting.agent import Agent, AlertsCollector
from .alerting.rules import rule_file
from .config.schema import ConfigError
from .config.settings import load_config
from .demo import demo_config
from .metrics.store import Store
from .poller import Supervisor
from .web.reload import WebConfigWatcher
from .web.server import ExporterServer, parse_listen_address
from .web.webconfig import WebConfigError
from .whatsgate.client import WhatsGateClient

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ":9877"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=sorted(logfmt.LEVELS),
        default="info",
        help="Only log messages with the given severity or above (default: info).",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=("logfmt", "json"),
        default="logfmt",
        help="Output format of log messages (default: logfmt).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whatsgate-exporter",
        description="Prometheus exporter for WhatsApp accounts run through the WhatsGate gateway.",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="FILE",
        help="Path to the YAML configuration file (see config.example.yaml).",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN,
        metavar="[HOST]:PORT",
        help=f"Address to serve metrics on (default: {DEFAULT_LISTEN}).",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="Path under which to expose metrics (default: /metrics).",
    )
    parser.add_argument(
        "--web.external-url",
        dest="external_url",
        metavar="URL",
        help="The URL under which the exporter is reachable, for the generatorURL of alerts it sends"
        " (default: http://HOSTNAME:PORT/ from the listen address).",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="Path to a web config file (the Prometheus exporter-toolkit format) that enables TLS,"
        " basic auth and security headers; re-read when it changes (see deploy/web-config.example.yml).",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="Run against a built-in WhatsGate simulator; needs no API key and no config.",
    )
    parser.add_argument("--version", action="version", version=f"whatsgate-exporter {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check-config", help="Validate a configuration file and exit (0 valid, 1 not).")
    check.add_argument("file", metavar="FILE")
    rules = sub.add_parser(
        "rules", help="Print the thresholds of a configuration file as a Prometheus alerting rule file."
    )
    rules.add_argument(
        "--config.file",
        dest="rules_config_file",
        metavar="FILE",
        required=True,
        help="The configuration whose thresholds to write.",
    )
    return parser


def _fail(message: str) -> int:
    print(f"whatsgate-exporter: {message}", file=sys.stderr)
    return 1


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _fail(f"{path}: config error: {exc}")
    n = len(config.accounts)
    found = f"{n} account{'s' if n != 1 else ''}" + (" + discovery" if config.discover else "")
    print(f"{path}: OK ({found}, poll every {config.poll_interval:g}s)")
    return 0


def print_rules(path: str) -> int:
    try:
        # The rule file needs no API key: do not ask for one (nor its environment variable).
        config = load_config(path, polling=False)
    except ConfigError as exc:
        return _fail(f"{path}: config error: {exc}")
    if not config.thresholds:
        return _fail(f"{path}: no thresholds configured, so no rules to write")
    sys.stdout.write(rule_file(config.thresholds))
    return 0


def run(args: argparse.Namespace) -> int:
    logfmt.setup(args.log_level, args.log_format)
    memory.limit_arenas()
    # Handlers first: a SIGTERM during start-up (first discovery, the demo's
    # simulator) must also end in a clean exit, not the default 143.
    stopping = threading.Event()
    servers: list[ExporterServer] = []

    def shutdown(signum: int, _frame: object) -> None:
        log.info("shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        stopping.set()
        for server in servers:
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    simulator = None
    try:
        base = load_config(args.config_file, polling=not args.demo) if args.config_file else None
        listen = parse_listen_address(args.listen_address)
        web_config = WebConfigWatcher(args.web_config_file) if args.web_config_file else None
    except WebConfigError as exc:
        return _fail(f"web config error: {exc}")
    except (ConfigError, ValueError) as exc:
        prefix = "config error: " if isinstance(exc, ConfigError) else ""
        return _fail(f"{prefix}{exc}")
    if args.demo:
        from .simulator import Simulator

        simulator = Simulator.demo()
        config = demo_config(simulator.start(), simulator.api_key, base)
    elif base is None:
        return _fail("no configuration: pass --config.file FILE, or --demo to try it out")
    else:
        config = base
    if not args.demo:  # the demo's key is public, and a word ("demo") that names its accounts
        logfmt.redact(config.whatsgate.api_key)
        for credential in logfmt.url_credentials(config.whatsgate.url):
            logfmt.redact(credential)

    store = Store(stale_after=config.stale_after)
    try:
        server = ExporterServer(listen, store, args.telemetry_path, web_config=web_config)
    except OSError as exc:
        return _fail(f"cannot listen on {args.listen_address}: {exc.strerror or exc}")
    client = WhatsGateClient(
        config.whatsgate.url,
        config.whatsgate.api_key,
        config.whatsgate.timeout,
        config.whatsgate.max_response_size,
        pool_size=config.poll_concurrency,
        http=config.whatsgate.http,
    )
    writer = None
    restored = {}
    if config.state_file is not None:
        restored = statefile.load(config.state_file, config.waiting.buckets)
        writer = statefile.StateWriter(config.state_file, store.states)
        store.subscribe(writer.wake)
    supervisor = Supervisor(config, client, store, restored=restored)
    agent = None
    if config.thresholds:
        agent = Agent(config, args.external_url or server.external_url)
        store.subscribe(agent.wake)
        store.live.append(AlertsCollector(agent))
    elif config.alertmanager is not None:
        log.warning("alertmanager.url is set but no thresholds are configured: nothing to send")

    servers.append(server)
    log.info(
        "starting",
        extra={
            "fields": {
                "version": __version__,
                "accounts": len(config.accounts),
                "discover": config.discover,
                "url": logfmt.redact_url(config.whatsgate.url),
            }
        },
    )
    supervisor.start()
    if writer is not None:
        writer.start()
    if agent is not None:
        agent.start(lambda: (store.states(), store.discovery))
    if simulator is not None:
        print(f"Demo: simulated WhatsGate API at {simulator.url}", flush=True)
    print(f"Serving metrics on {server.url}{args.telemetry_path}", flush=True)
    try:
        if not stopping.is_set():
            server.serve_forever()
    finally:
        supervisor.stop()
        if writer is not None:
            writer.stop()
        if agent is not None:
            agent.stop()
        server.server_close()
        client.close()
        if simulator is not None:
            simulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "rules":
        return print_rules(args.rules_config_file)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
