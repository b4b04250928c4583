"""Serving: build the exporter from the flags and the config, then run it until SIGTERM or SIGINT.

:func:`build` makes every part (store, exposition, pollers, agent, web server, state file
writer, reloader) and wires them so that data flows one way: config → poller →
snapshot → store → HTTP. :func:`run` starts them, waits, and stops them in
order. A start-up problem is one log line and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import __version__, memory
from ..alerting.agent import Agent, AlertsCollector
from ..config import redaction
from ..config.reload import Reloader
from ..config.schema import ConfigError
from ..config.settings import Config, load_config
from ..config.sharding import Shard
from ..config.sharding import parse_flag as parse_shard
from ..metrics.collectors import ReloadCollector, ShardCollector
from ..metrics.definitions import STATE_FILE_WRITE_ERRORS
from ..metrics.exposition import Exposition
from ..poller import Supervisor
from ..snapshot import statefile
from ..snapshot.store import Store
from ..web.listen import parse_listen_address
from ..web.server import ExporterServer
from ..web.watcher import WebConfigWatcher
from ..whatsgate.client import WhatsGateClient
from . import logfmt
from .demo import demo_config

if TYPE_CHECKING:  # imported by --demo alone: a running exporter does without its modules
    from ..simulator import Simulator

# On SIGTERM, polls under way get this long to finish before the client closes (and the demo's
# simulator stops): a poll cut off by the shutdown itself would log a failure nothing caused,
# and the state file's last save would miss its result. Well inside `docker stop`'s 10 s and
# Kubernetes' 30 s before SIGKILL.
SHUTDOWN_GRACE = 5.0

log = logging.getLogger(__name__)


class StartupError(Exception):
    """A problem that stops the exporter before it serves: logged as one line, exit code 1."""


@dataclass
class Exporter:
    """Every running part, built but not started."""

    config: Config
    server: ExporterServer
    exposition: Exposition
    supervisor: Supervisor
    agent: Agent
    client: WhatsGateClient
    reloader: Reloader
    writer: statefile.StateWriter | None
    simulator: Simulator | None


def _shard_flag(value: str) -> Shard:
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise ValueError(f"--shard: {exc}") from None


def _read_flags(args: argparse.Namespace) -> tuple[Config | None, Shard | None]:
    """The config file (when given) and the --shard flag, each checked; StartupError otherwise."""
    try:
        base = load_config(args.config_file, polling=not args.demo) if args.config_file else None
        parse_listen_address(args.listen_address)
        shard = _shard_flag(args.shard) if args.shard else None
    except (ConfigError, ValueError) as exc:
        prefix = "config error: " if isinstance(exc, ConfigError) else ""
        raise StartupError(f"{prefix}{exc}") from None
    if base is None and not args.demo:
        raise StartupError("no configuration: pass --config.file FILE, or --demo to try it out")
    return base, shard


def build(args: argparse.Namespace) -> Exporter:
    """Make and wire every part from the flags; StartupError on anything that stops a start."""
    base, shard = _read_flags(args)
    try:
        web_config = WebConfigWatcher(args.web_config_file) if args.web_config_file else None
    except ConfigError as exc:
        raise StartupError(f"web config error: {exc}") from None
    simulator: Simulator | None = None
    if args.demo:
        from ..simulator import Simulator

        simulator = Simulator.demo()

    def finish(loaded: Config | None) -> Config:
        """The config to run: the file's (or the demo's), with the --shard flag over it."""
        final = demo_config(simulator.url, simulator.api_key, loaded) if simulator is not None else loaded
        assert final is not None
        return dataclasses.replace(final, shard=shard) if shard is not None else final

    if simulator is not None:
        simulator.start()
    config = finish(base)
    redaction.redact(config.whatsgate.api_key)  # the simulator's too: no account id or name holds it
    for credential in redaction.url_credentials(config.whatsgate.url):
        redaction.redact(credential)

    store = Store(stale_after=config.stale_after)
    exposition = Exposition(store)
    store.subscribe(exposition.wake, render=exposition.prepare)
    try:
        server = ExporterServer(
            parse_listen_address(args.listen_address),
            store,
            exposition,
            args.telemetry_path,
            web_config=web_config,
        )
    except OSError as exc:
        if simulator is not None:
            simulator.stop()
        raise StartupError(f"cannot listen on {args.listen_address}: {exc.strerror or exc}") from None
    client = WhatsGateClient(
        config.whatsgate.url,
        config.whatsgate.api_key,
        config.whatsgate.timeout,
        config.whatsgate.max_response_size,
        pool_size=config.poll_concurrency,
        http=config.whatsgate.http,
    )
    restored = statefile.load(config.state_file) if config.state_file is not None else {}
    supervisor = Supervisor(config, client, store, restored=restored)
    writer = None
    if config.state_file is not None:
        writer = statefile.StateWriter(config.state_file, supervisor.saved)
        store.subscribe(writer.wake)
        exposition.live.append(statefile.WriteErrors(writer, STATE_FILE_WRITE_ERRORS.family))
    # The agent always runs (it is idle without thresholds), so a reload can add some.
    agent = Agent(config, args.external_url or server.external_url)
    store.subscribe(agent.wake)
    exposition.live.append(AlertsCollector(agent))
    server.alerts = agent.evaluator.alerts
    if config.alertmanager is not None and not config.thresholds:
        log.warning("alertmanager.url is set but no thresholds are configured: nothing to send")

    def load() -> Config:
        new = finish(load_config(args.config_file, polling=not args.demo) if args.config_file else None)
        redaction.redact(new.whatsgate.api_key)  # a rotated key is a secret from now on, before a restart
        return new

    def apply(new: Config) -> None:
        """What may change (the reloader keeps the running value of what may not)."""
        supervisor.apply(new)
        agent.apply(new)
        store.stale_after = new.stale_after

    reloader = Reloader(load, apply, running=config)
    exposition.live.extend([ReloadCollector(reloader), ShardCollector(config.shard)])
    if args.enable_lifecycle:
        server.reload = lambda: reloader.reload("/-/reload")
    return Exporter(config, server, exposition, supervisor, agent, client, reloader, writer, simulator)


def run(args: argparse.Namespace) -> int:
    logfmt.setup(args.log_level, args.log_format)
    memory.limit_arenas()
    memory.fix_mmap_threshold()
    # A scrape takes the GIL back several times (accept, read, write); each time a poll's
    # rendering holds it, the wait is up to one switch interval (CPython's default ``0.005``). A shorter
    # interval bounds that wait; with one busy thread there is no switch, so polls lose nothing.
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
    try:
        exporter = build(args)
    except StartupError as exc:
        log.error(str(exc))
        return 1
    reload_requested = threading.Event()
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set())

    def reload_on_sighup() -> None:
        """Signal handlers only set the event: the reload runs here, on a thread of its own."""
        while reload_requested.wait() and not stopping.is_set():
            reload_requested.clear()
            exporter.reloader.reload("SIGHUP")

    threading.Thread(target=reload_on_sighup, name="reload", daemon=True).start()
    servers.append(exporter.server)
    _serve(exporter, args, stopping)
    reload_requested.set()
    return 0


def _serve(exporter: Exporter, args: argparse.Namespace, stopping: threading.Event) -> None:
    """Start the parts, serve until stopped, then stop them in order."""
    config, server = exporter.config, exporter.server
    log.info(
        "starting",
        extra={
            "fields": {
                "version": __version__,
                "accounts": len(config.accounts),
                "discover": config.discover,
                "url": redaction.redact_url(config.whatsgate.url),
                "shard": f"{config.shard.index}/{config.shard.total}",
            }
        },
    )
    exporter.exposition.start()
    exporter.supervisor.start()
    if exporter.writer is not None:
        exporter.writer.start()
    exporter.agent.start(exporter.supervisor.store)
    if exporter.simulator is not None:
        log.info(f"Demo: simulated WhatsGate API at {exporter.simulator.url}")
    # What is really bound (every interface, or one address), then where to point a browser.
    log.info("Listening", extra={"fields": {"address": server.bound, "tls": server.scheme == "https"}})
    log.info(f"Serving metrics on {server.url}{args.telemetry_path}")
    try:
        if not stopping.is_set():
            server.serve_forever()
    finally:
        stopping.set()
        exporter.supervisor.stop(SHUTDOWN_GRACE)
        exporter.exposition.stop()
        if exporter.writer is not None:
            exporter.writer.stop()
        exporter.agent.stop()
        server.server_close()
        exporter.client.close()
        if exporter.simulator is not None:
            exporter.simulator.stop()
