"""The subcommands, check-config and rules: plain output on stdout, each problem one line on stderr.

A bad config gets one line per problem found (every section, every threshold is
checked on its own), so that a file is fixed in one round, not one run per error.

They read a config file and exit; nothing here listens or logs (the serving
mode, in :mod:`exporter.cli.serve`, is the one whose every line is a log line).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..alerting.lint import cannot_fire
from ..alerting.rules import rule_file
from ..config.files import write_atomically
from ..config.schema import ConfigError
from ..config.settings import load_config
from . import logfmt
from .demo import demo_config

NO_CONFIG = "no configuration file: pass --config.file FILE"
# Rules hold no URL: the demo's simulator is not started to write them.
DEMO_URL = "http://127.0.0.1:0"


def _fail(message: str) -> int:
    print(f"whatsgate-exporter: {message}", file=sys.stderr)
    return 1


def _config_errors(path: str, exc: ConfigError) -> int:
    for error in exc.errors:
        _fail(f"{path}: config error: {error}")
    return 1


def config_path(args: argparse.Namespace) -> str | None:
    """The file a subcommand works on: --config.file before or after its name, or check-config's FILE."""
    given = [getattr(args, key, None) for key in ("config_file", "sub_config_file", "file")]
    named = list(dict.fromkeys(path for path in given if path))
    if len(named) > 1:
        raise ValueError(f"{args.command}: two configuration files given ({' and '.join(named)}): give one")
    return named[0] if named else None


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_errors(path, exc)
    n = len(config.accounts)
    found = f"{n} account{'s' if n != 1 else ''}" + (" + discovery" if config.discover else "")
    print(f"{path}: OK ({found}, poll every {config.poll_interval:g}s)")
    for warning in cannot_fire(config.thresholds, config.discover, config.replies.enabled):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    # A warning, not an error: the file may be checked away from where it runs (a volume mounted
    # there). Where it runs, every write would fail: waits and reply times would not survive a restart.
    if config.state_file is not None and not os.access(config.state_file.parent, os.W_OK | os.X_OK):
        where = config.state_file.parent
        print(
            f"{path}: warning: state_file: cannot write in {where} here (missing or not writable)",
            file=sys.stderr,
        )
    return 0


def print_rules(path: str | None, output: str | None = None, demo: bool = False) -> int:
    """``demo``: the rules of ``--demo`` (its thresholds, or the file's, as the demo takes them)."""
    try:
        # The rule file needs no API key: do not ask for one (nor its environment variable).
        config = load_config(path, polling=False) if path is not None else None
    except ConfigError as exc:
        return _config_errors(f"{path}", exc)  # path is set: only a file's config can fail
    if demo:
        from ..simulator import DEFAULT_API_KEY  # rules --demo only: see demo.demo_config

        config = demo_config(DEMO_URL, DEFAULT_API_KEY, config)
    assert config is not None
    if not config.thresholds:
        return _fail(f"{path}: no thresholds configured, so no rules to write")
    text = rule_file(config.thresholds)
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        write_atomically(output, text.encode())
    except OSError as exc:
        return _fail(f"cannot write {output}: {exc.strerror or exc}")
    return 0


def run(args: argparse.Namespace) -> int:
    """check-config or rules: plain output on stdout, each problem as one line on stderr."""
    try:
        path = config_path(args)
    except ValueError as exc:
        return _fail(str(exc))
    demo = args.command == "rules" and (args.demo or args.sub_demo)
    if path is None and not demo:
        return _fail(f"{args.command}: {NO_CONFIG}{' (or --demo)' if args.command == 'rules' else ''}")
    try:
        if args.command == "check-config":
            assert path is not None
            return check_config(path)
        return print_rules(path, args.output, demo)
    except BrokenPipeError:
        # The reader went away (`... | head -1`): not worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        logfmt.silence(sys.stdout)
        return 1
