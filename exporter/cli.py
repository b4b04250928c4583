"""Command line: run the exporter, the demo, or check a config file.

Flags follow the Prometheus style (``--config.file``, ``--web.listen-address``,
``--log.level``). Every start-up problem ends in one line on stderr and exit
code 1 (2 for a flag argparse rejects), never a traceback. While serving, every
line is a log line in the ``--log.format`` chosen; the subcommands print plain
text, their output being the point.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from . import __version__, commands, healthcheck, logfmt, memory, statefile
from .alerting.agent import Agent, AlertsCollector
from .config.schema import ConfigError
from .config.settings import Config, load_config
from .demo import demo_config
from .metrics.collectors import ShardCollector
from .metrics.store import Store
from .poller import Supervisor
from .reload import ReloadCollector, Reloader
from .sharding import Shard
from .sharding import parse_flag as parse_shard
from .web.reload import WebConfigWatcher
from .web.server import ExporterServer, parse_listen_address
from .web.webconfig import WebConfigError
from .whatsgate.client import WhatsGateClient

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ":9877"
# Paths the server answers itself (or will, with reload/probe/sd): metrics there would hide them.
RESERVED_PATHS = ("/", "/healthz", "/ready", "/-/reload", "/probe", "/sd")
USAGE = """
  whatsgate-exporter [FLAGS]                                       serve metrics
  whatsgate-exporter [FLAGS] check-config [--config.file] FILE
  whatsgate-exporter [FLAGS] rules --config.file FILE [--output FILE]"""
EPILOG = """\
Without a COMMAND it runs the exporter: polls WhatsGate and serves metrics on
--web.listen-address at --web.telemetry-path, until SIGTERM or SIGINT.

examples:
  whatsgate-exporter --config.file config.yaml      serve metrics
  whatsgate-exporter --demo                         serve metrics of a built-in simulator
  whatsgate-exporter check-config --config.file config.yaml
  whatsgate-exporter rules --config.file config.yaml --output alerts.yml
"""


class Parser(argparse.ArgumentParser):
    """argparse, but a rejected flag is one line (with a pointer to --help), not usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def telemetry_path(value: str) -> str:
    """The --web.telemetry-path value, checked: the server matches it exactly against request paths."""
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(f"{value!r} must start with / (e.g. /metrics)")
    if any(c in value for c in "?#") or not value.isprintable() or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f"{value!r} must be a plain path: no ?, #, spaces or controls")
    if value in RESERVED_PATHS:
        raise argparse.ArgumentTypeError(f"{value!r} is taken by the exporter itself")
    return value


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


def _config_file_flag(parser: argparse.ArgumentParser, dest: str, help: str) -> None:
    parser.add_argument("--config.file", dest=dest, metavar="FILE", help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="whatsgate-exporter",
        # argparse's own usage line would end in "COMMAND ...", as if a command were required.
        usage=USAGE,
        description="Prometheus exporter for WhatsApp accounts run through the WhatsGate gateway.\n"
        "Without a COMMAND it serves metrics.",
        epilog=EPILOG,
        # Keeps the epilog's line breaks and example columns.
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        metavar="PATH",
        type=telemetry_path,
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
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="Enable POST /-/reload (re-reads the config file, as SIGHUP does), as Prometheus does.",
    )
    parser.add_argument(
        "--shard",
        metavar="INDEX/TOTAL",
        help="Poll only the accounts of this shard (e.g. 0/3: the first of three exporters); overrides"
        " the config's shard: {index, total}.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="Run against a built-in WhatsGate simulator; needs no API key and no config.",
    )
    parser.add_argument("--version", action="version", version=f"whatsgate-exporter {__version__}")
    _common(parser)
    # The subcommands take --config.file after their name too; a dest of their own
    # (sub_config_file), so the subparser's default cannot overwrite a global --config.file.
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands (default: serve metrics)",
        prog="whatsgate-exporter [FLAGS]",  # the prefix of a command's usage line (not USAGE's three)
    )
    check = sub.add_parser(
        "check-config",
        help="Validate a configuration file and exit (0 valid, 1 not); warn about thresholds that"
        " can never fire.",
        description="Validate a configuration file: FILE: OK (...) and exit 0, or one line naming"
        " the key and exit 1. Thresholds that can never fire are warnings on stderr (still 0).",
    )
    check.add_argument("file", metavar="FILE", nargs="?", help="Same as --config.file FILE.")
    _config_file_flag(check, "sub_config_file", "The configuration file to check.")
    rules = sub.add_parser(
        "rules",
        help="Write the thresholds of a configuration file as a Prometheus alerting rule file.",
        description="Write the thresholds of a configuration file as a Prometheus alerting rule file,"
        " to stdout or (atomically, only on success) to --output FILE.",
    )
    _config_file_flag(rules, "sub_config_file", "The configuration whose thresholds to write.")
    sub.add_parser(
        "healthcheck",
        help="Exit 0 if the exporter on this host answers /healthz (for container HEALTHCHECKs).",
        description="Ask /healthz on the loopback address of --web.listen-address, over https when"
        " --web.config.file serves TLS; any answer (200, or 401 with basic auth on) within 4 s is healthy.",
    )
    rules.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="Write the rule file here: replaced in one step and only on success, so a failed run"
        " leaves the old file in place (default: stdout).",
    )
    return parser


def _shard_flag(value: str) -> Shard:
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise ValueError(f"--shard: {exc}") from None


def _fatal(message: str) -> int:
    """A start-up failure while serving: one log line, in the --log.format chosen."""
    log.error(message)
    return 1


def run(args: argparse.Namespace) -> int:
    logfmt.setup(args.log_level, args.log_format)
    memory.limit_arenas()
    # A scrape takes the GIL back several times (accept, read, write); each time a poll's
    # rendering holds it, the wait is up to one switch interval. 1 ms instead of the default
    # 5 ms: bench_cycles.py (10 x 10,000 chats re-polling, 5 scrapers) p99 117 -> 78 ms, and
    # the polls' own CPU unchanged (0.79 vs 0.81 s per cycle): with one busy thread, no switch.
    sys.setswitchinterval(0.001)
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
        shard = _shard_flag(args.shard) if args.shard else None
    except WebConfigError as exc:
        return _fatal(f"web config error: {exc}")
    except (ConfigError, ValueError) as exc:
        prefix = "config error: " if isinstance(exc, ConfigError) else ""
        return _fatal(f"{prefix}{exc}")
    if args.demo:
        from .simulator import Simulator

        simulator = Simulator.demo()
        simulator.start()
    elif base is None:
        return _fatal("no configuration: pass --config.file FILE, or --demo to try it out")

    def finish(loaded: Config | None) -> Config:
        """The config to run: the file's (or the demo's), with the --shard flag over it."""
        final = demo_config(simulator.url, simulator.api_key, loaded) if simulator is not None else loaded
        assert final is not None
        return dataclasses.replace(final, shard=shard) if shard is not None else final

    config = finish(base)
    if not args.demo:  # the demo's key is public, and a word ("demo") that names its accounts
        logfmt.redact(config.whatsgate.api_key)
        for credential in logfmt.url_credentials(config.whatsgate.url):
            logfmt.redact(credential)

    store = Store(stale_after=config.stale_after)
    try:
        server = ExporterServer(listen, store, args.telemetry_path, web_config=web_config)
    except OSError as exc:
        return _fatal(f"cannot listen on {args.listen_address}: {exc.strerror or exc}")
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
    # The agent always runs (it is idle without thresholds), so a reload can add some.
    agent = Agent(config, args.external_url or server.external_url)
    store.subscribe(agent.wake)
    store.live.append(AlertsCollector(agent))
    server.alerts = agent.evaluator.alerts
    if config.alertmanager is not None and not config.thresholds:
        log.warning("alertmanager.url is set but no thresholds are configured: nothing to send")

    def apply(new: Config) -> None:
        if not args.demo:  # a rotated key is a secret from now on, even before a restart uses it
            logfmt.redact(new.whatsgate.api_key)
        kept = dataclasses.replace(
            new, state_file=config.state_file, shard=config.shard, whatsgate=config.whatsgate
        )
        changed = [
            key for key in ("state_file", "shard", "whatsgate") if getattr(new, key) != getattr(kept, key)
        ]
        if changed:
            log.warning(
                "these settings cannot change on reload; restart to apply them",
                extra={"fields": {"settings": ", ".join(changed)}},
            )
        new = kept
        supervisor.apply(new)
        agent.apply(new)
        store.stale_after = new.stale_after

    def load() -> Config:
        return finish(load_config(args.config_file, polling=not args.demo) if args.config_file else None)

    reloader = Reloader(load, apply)
    store.live.extend([ReloadCollector(reloader), ShardCollector(config.shard)])
    if args.enable_lifecycle:
        server.reload = lambda: reloader.reload("/-/reload")
    reload_requested = threading.Event()
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set())

    def reload_on_sighup() -> None:
        """Signal handlers only set the event: the reload runs here, on a thread of its own."""
        while reload_requested.wait() and not stopping.is_set():
            reload_requested.clear()
            reloader.reload("SIGHUP")

    threading.Thread(target=reload_on_sighup, name="reload", daemon=True).start()

    servers.append(server)
    log.info(
        "starting",
        extra={
            "fields": {
                "version": __version__,
                "accounts": len(config.accounts),
                "discover": config.discover,
                "url": logfmt.redact_url(config.whatsgate.url),
                "shard": f"{config.shard.index}/{config.shard.total}",
            }
        },
    )
    supervisor.start()
    if writer is not None:
        writer.start()
    agent.start(lambda: (store.states(), store.discovery))
    if simulator is not None:
        log.info(f"Demo: simulated WhatsGate API at {simulator.url}")
    log.info(f"Serving metrics on {server.url}{args.telemetry_path}")
    try:
        if not stopping.is_set():
            server.serve_forever()
    finally:
        stopping.set()
        reload_requested.set()
        supervisor.stop()
        if writer is not None:
            writer.stop()
        agent.stop()
        server.server_close()
        client.close()
        if simulator is not None:
            simulator.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "healthcheck":
        return healthcheck.check(args.listen_address, args.web_config_file)
    if args.command is not None:
        return commands.run(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
