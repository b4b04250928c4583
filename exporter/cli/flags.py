"""The command line's flags and commands, in the Prometheus style (``--config.file``, ``--log.level``)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import __version__
from . import logfmt

DEFAULT_LISTEN = ":9877"
# Paths the server answers itself (or will, with reload/probe/sd): metrics there would hide them.
RESERVED_PATHS = ("/", "/healthz", "/ready", "/-/reload", "/probe", "/sd")
USAGE = """
  whatsgate-exporter [FLAGS]                                       serve metrics
  whatsgate-exporter [FLAGS] check-config [--config.file] FILE
  whatsgate-exporter [FLAGS] rules (--config.file FILE | --demo) [--output FILE]
  whatsgate-exporter [FLAGS] healthcheck
  whatsgate-exporter hash-password [--cost N]"""
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
        " can never fire, or always do.",
        description="Validate a configuration file: FILE: OK (...) and exit 0, or every problem, one"
        " line each naming the key, and exit 1. Thresholds that can never fire (or always"
        " do) are warnings on stderr (still 0).",
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
    rules.add_argument(
        "--demo",
        dest="sub_demo",
        action="store_true",
        help="Write the rules of --demo: its own thresholds, or with --config.file the file's, as the"
        " demo takes them (the compose stack's deploy/prometheus/alerts.yml is this).",
    )
    health = sub.add_parser(
        "healthcheck",
        help="Exit 0 if the exporter on this host answers /healthz (for container HEALTHCHECKs).",
        description="Ask /healthz on the loopback address of --web.listen-address, over https when"
        " --web.config.file serves TLS; any answer (200, or 401 with basic auth on) within 4 s is healthy.",
    )
    # The two flags it needs also after its name, as --config.file after the other commands'.
    health.add_argument(
        "--web.listen-address", dest="sub_listen_address", metavar="[HOST]:PORT", help="The exporter's."
    )
    health.add_argument(
        "--web.config.file", dest="sub_web_config_file", metavar="FILE", help="The exporter's."
    )
    hashpw = sub.add_parser(
        "hash-password",
        help="Print a bcrypt hash of a password for the web config's basic_auth_users.",
        description="Ask for a password twice at a terminal (or read one line from stdin) and print"
        " its bcrypt hash, for basic_auth_users in --web.config.file. No htpasswd needed.",
    )
    hashpw.add_argument(
        "--cost",
        type=int,
        default=10,
        help="bcrypt cost (4-31; default 10). Each step doubles the time of a check: successful"
        " checks are cached, wrong passwords pay it every time.",
    )
    rules.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="Write the rule file here: replaced in one step and only on success, so a failed run"
        " leaves the old file in place (default: stdout).",
    )
    return parser
