"""The command line in process: flags and subcommands, check-config's warnings, rules --output.

Each test calls :func:`exporter.cli.main` as the console script does and reads
what it printed; nothing here starts a server (the flag checks all happen before).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from exporter.alerting.rules import rule_file
from exporter.cli import logfmt, main
from exporter.cli.demo import demo_config
from exporter.config.settings import load_config

CONFIG = """\
whatsgate: {api_key: k-123}
accounts:
  - {whatsapp_id: "1", name: support}
  - {whatsapp_id: "2", name: sales}
thresholds:
  - {name: UnreadHigh, metric: unread_messages, above: 5}
"""
NO_THRESHOLDS = 'whatsgate: {api_key: k-123}\naccounts: [{whatsapp_id: "1"}]\n'


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main's exit code (also when argparse exits), stdout and stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- check-config and rules take --config.file like the exporter does ---------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check-config", "{path}"],
        ["check-config", "--config.file", "{path}"],
        ["check-config", "--config.file={path}"],
        ["--config.file", "{path}", "check-config"],
        ["--config.file", "{path}", "check-config", "{path}"],
    ],
    ids=["positional", "subcommand-flag", "subcommand-flag-equals", "global-flag", "both-agree"],
)
def test_check_config_takes_the_file_every_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    path = write(tmp_path, CONFIG)
    code, out, err = run([a.format(path=path) for a in argv], capsys)
    assert code == 0 and err == "", err
    assert one_line(out) == f"{path}: OK (2 accounts, poll every 60s)"


def test_check_config_with_two_different_files_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write(tmp_path, CONFIG, "a.yaml"), write(tmp_path, CONFIG, "b.yaml")
    code, out, err = run(["check-config", "--config.file", str(a), str(b)], capsys)
    assert code == 1 and out == ""
    assert "a.yaml" in one_line(err) and "b.yaml" in err


@pytest.mark.parametrize("command", ["check-config", "rules"])
def test_a_missing_config_file_flag_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run([command], capsys)
    assert code == 1 and out == ""
    line = one_line(err)
    assert "--config.file FILE" in line and "required" not in line and "usage" not in line, line


@pytest.mark.parametrize(
    "argv",
    [
        ["rules", "--config.file", "{path}"],
        ["--config.file", "{path}", "rules"],
        ["--config.file={path}", "rules"],
    ],
    ids=["after", "before", "before-equals"],
)
def test_rules_takes_the_file_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    path = write(tmp_path, CONFIG)
    code, out, err = run([a.format(path=path) for a in argv], capsys)
    assert code == 0 and err == "", err
    assert out == rule_file(load_config(str(path), polling=False).thresholds)
    assert "alert: UnreadHigh" in out


@pytest.mark.parametrize("argv", [["rules", "--demo"], ["--demo", "rules"]], ids=["after", "before"])
def test_rules_demo_writes_the_rules_the_demo_evaluates(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 0 and err == "", err
    demo = demo_config("http://127.0.0.1:1", "key", None)
    assert demo.thresholds and out == rule_file(demo.thresholds)


def test_rules_demo_with_a_file_writes_the_files_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As --demo --config.file runs: the file's thresholds replace the demo's."""
    path = write(tmp_path, CONFIG)
    code, out, _ = run(["rules", "--demo", "--config.file", str(path)], capsys)
    assert code == 0 and out == rule_file(load_config(str(path), polling=False).thresholds)


def test_help_says_that_no_subcommand_serves_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert "Without a COMMAND" in flat and "serves metrics" in flat, out
    assert "check-config" in out and "rules" in out and "--output" in out


def test_subcommand_help_shows_the_config_file_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("check-config", "rules"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0 and "--config.file FILE" in out, out


# --- rules --output ---------------------------------------------------------------------------


def test_rules_output_writes_the_file_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CONFIG)
    target = tmp_path / "alerts.yml"
    code, out, err = run(["rules", "--config.file", str(path), "--output", str(target)], capsys)
    assert (code, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8") == rule_file(load_config(str(path), polling=False).thresholds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.yml", "config.yaml"], "temporary file left"
    # A new file is readable like any other the user creates (not the 0600 of a temporary file).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_rules_output_replaces_an_existing_file_and_keeps_its_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CONFIG)
    target = write(tmp_path, "old rules\n", "alerts.yml")
    target.chmod(0o640)
    code, _, err = run(["rules", "--config.file", str(path), "-o", str(target)], capsys)
    assert code == 0 and err == ""
    assert "alert: UnreadHigh" in target.read_text(encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "config, expected",
    [
        (NO_THRESHOLDS, "no thresholds configured"),
        ("thresholds: [{name: X, metric: nope}]\n", "thresholds[0] (X).metric"),
        (None, "missing.yaml"),
    ],
    ids=["no-thresholds", "config-error", "missing-config"],
)
def test_rules_output_leaves_the_existing_file_alone_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str | None, expected: str
) -> None:
    path = write(tmp_path, config) if config is not None else tmp_path / "missing.yaml"
    target = write(tmp_path, "groups: [precious]\n", "alerts.yml")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(["rules", "--config.file", str(path), "--output", str(target)], capsys)
    assert code == 1 and out == ""
    assert expected in one_line(err)
    assert target.read_text(encoding="utf-8") == "groups: [precious]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_rules_output_into_a_missing_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CONFIG)
    target = tmp_path / "nope" / "alerts.yml"
    code, out, err = run(["rules", "--config.file", str(path), "--output", str(target)], capsys)
    assert code == 1 and out == ""
    assert str(target) in one_line(err) and "Traceback" not in err
    assert not target.parent.exists()


# --- check-config warns about thresholds that can never fire ----------------------------------

ACCOUNTS = 'whatsgate: {api_key: k-123}\naccounts: [{whatsapp_id: "1", name: support}]\n'


@pytest.mark.parametrize(
    "threshold, warning",
    [
        (
            "{name: NotReady, metric: session_not_ready, for: 5m}",
            "thresholds[1] (NotReady): metric session_not_ready needs discover: true; it can never fire",
        ),
        (
            "{name: NoChats, metric: chats, below: 0}",
            "thresholds[1] (NoChats): below: 0: a count is never below 0; it can never fire",
        ),
        (
            "{name: FewMembers, metric: group_participants, above: 10, overrides: {support: {below: -1}}}",
            "thresholds[1] (FewMembers): overrides.support: below: -1: a count is never below 0;"
            " it can never fire for support",
        ),
        (
            "{name: Down, metric: account_down, accounts: [support], overrides: {sales: {for: 1m}}}",
            "thresholds[1] (Down): overrides.sales: sales is not in the threshold's accounts;"
            " the override never applies",
        ),
        (
            "{name: Unread, metric: unread_messages, above: -1}",
            "thresholds[1] (Unread): above: -1: a count is never below 0; it always fires",
        ),
        (
            "{name: Unread, metric: chats_unread, above: 3, overrides: {support: {above: -0.5}}}",
            "thresholds[1] (Unread): overrides.support: above: -0.5: a count is never below 0;"
            " it always fires for support",
        ),
    ],
    ids=[
        "session-without-discover",
        "count-below-zero",
        "override-below-zero",
        "override-filtered-out",
        "count-above-minus-one",
        "override-above-minus-one",
    ],
)
def test_check_config_warns_about_thresholds_that_cannot_fire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], threshold: str, warning: str
) -> None:
    ok = "{name: Fine, metric: unread_messages, above: 5}"
    sales = ', {whatsapp_id: "2", name: sales}]'
    accounts = ACCOUNTS.replace("]", sales, 1) if "sales" in threshold else ACCOUNTS
    path = write(tmp_path, accounts + f"thresholds:\n  - {ok}\n  - {threshold}\n")
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0 and ": OK (" in out
    assert one_line(err) == f"{path}: warning: {warning}"


def test_no_warning_when_the_threshold_can_fire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        "whatsgate: {api_key: k-123}\ndiscover: true\nthresholds:\n"
        "  - {name: NotReady, metric: session_not_ready}\n"
        "  - {name: FewChats, metric: chats, below: 1}\n"
        "  - {name: Down, metric: account_down, accounts: [a], overrides: {a: {for: 1m}}}\n",
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert (code, err) == (0, "") and ": OK (" in out


def test_the_example_config_has_no_threshold_that_cannot_fire(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHATSGATE_API_KEY", "example-key")
    code, out, err = run(["check-config", str(REPO / "config.example.yaml")], capsys)
    assert code == 0 and ": OK (" in out
    assert err == "", err


# --- --web.telemetry-path ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        *("metrics", "", "/metrics?x=1", "/metrics#top", "/my metrics", "/metrics\t"),
        *("/", "/healthz", "/ready", "/-/reload", "/probe", "/sd"),
    ],
)
def test_a_bad_telemetry_path_is_rejected_in_one_line(
    capsys: pytest.CaptureFixture[str], path: str, tmp_path: Path
) -> None:
    # Checked while parsing the flags, so also before a subcommand (which never listens: safe here).
    config = write(tmp_path, CONFIG)
    code, out, err = run(["--web.telemetry-path", path, "check-config", str(config)], capsys)
    assert code == 2 and out == ""
    line = one_line(err)
    assert "--web.telemetry-path" in line and "usage:" not in line and "Traceback" not in err, line


@pytest.mark.parametrize("path", ["/metrics", "/x/metrics", "/whatsgate-metrics"])
def test_good_telemetry_paths_pass_the_flag_check(
    capsys: pytest.CaptureFixture[str], path: str, tmp_path: Path
) -> None:
    # check-config parses the same global flags and exits before anything listens.
    config = write(tmp_path, CONFIG)
    code, _, err = run(["--web.telemetry-path", path, "check-config", str(config)], capsys)
    assert code == 0 and err == "", err


# --- a log stream whose reader has gone -------------------------------------------------------


class GoneReader(io.StringIO):
    """A stream like stderr after ``2>&1 | head -0``: every write fails with EPIPE."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_log_line_into_a_broken_pipe_is_dropped_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logfmt.setup("info", "json")
        (handler,) = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(GoneReader())
        logging.getLogger("exporter.test").info("nobody reads this")
        logging.getLogger("exporter.test").info("nor this")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    # logging's default for a failed write is a "--- Logging error ---" traceback on stderr.
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("before", [True, False])
def test_healthcheck_takes_its_flags_before_or_after_its_name(
    before: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README says: give healthcheck the same --web.listen-address and --web.config.file."""
    asked: list[tuple[str, str | None]] = []
    monkeypatch.setattr("exporter.cli.healthcheck.check", lambda *args: asked.append(args) or 0)
    flags = ["--web.listen-address", "127.0.0.1:9100", "--web.config.file", str(tmp_path / "web.yml")]
    assert main([*flags, "healthcheck"] if before else ["healthcheck", *flags]) == 0
    assert asked == [("127.0.0.1:9100", str(tmp_path / "web.yml"))]


def modules_after(code: str) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after running ``code`` (the checkout's exporter), and
    what it wrote to stderr."""
    report = "\nimport sys\nprint(' '.join(name for name, module in sys.modules.items() if module))\n"
    done = subprocess.run(
        [sys.executable, "-c", code + report],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return set(done.stdout.split()), done.stderr


def test_healthcheck_imports_nothing_of_the_server() -> None:
    """It is the Kubernetes probe (deploy/kubernetes/web-config), run every few seconds in the
    pod's cgroup: it imported the whole server (aiohttp, prometheus-client, the pollers and
    alerting) to make one request (its cost before and after: bench/RESULTS.md)."""
    loaded, stderr = modules_after(
        "from exporter.cli import main\nmain(['healthcheck', '--web.listen-address', '127.0.0.1:1'])"
    )
    assert "exporter.cli.healthcheck" in loaded, stderr
    heavy = {"aiohttp", "prometheus_client", "requests", "bcrypt", "exporter.cli.serve", "exporter.alerting"}
    assert not loaded & heavy


def test_the_usage_lines_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    for command in ("check-config", "rules", "healthcheck", "hash-password"):
        assert f" {command}" in usage, command


def test_serving_without_demo_imports_no_simulator() -> None:
    """The simulator's modules cost a running exporter memory it never uses: only --demo (and
    ``rules --demo``) import them."""
    loaded, stderr = modules_after("import exporter.cli")
    assert "exporter.cli" in loaded, stderr
    assert not [name for name in loaded if "simulator" in name]


def test_serving_imports_no_charset_guessing_and_no_compiled_frozenlist() -> None:
    """requests imports charset_normalizer only to guess encodings the exporter never asks it to
    guess, and frozenlist's compiled extension (aiohttp's signals, which the low-level server never
    fires) maps the C++ runtime: both were held for the process's whole life (bench/RESULTS.md).
    Kept out, and without the warning requests gives at import when it finds no such library."""
    loaded, stderr = modules_after(
        "from exporter.cli import main\nmain(['--config.file', '/nonexistent/config.yaml'])"
    )
    assert {"exporter.cli.serve", "requests", "aiohttp", "frozenlist"} <= loaded, stderr
    assert not loaded & {"charset_normalizer", "chardet", "frozenlist._frozenlist"}
    assert "/nonexistent/config.yaml" in stderr and "Warning" not in stderr, stderr


def test_check_config_warns_when_the_state_files_directory_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing" / "state.json"
    path = write(tmp_path, ACCOUNTS + f"state_file: {missing}\n")
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0 and ": OK (" in out
    assert (
        one_line(err)
        == f"{path}: warning: state_file: cannot write in {missing.parent} here (missing or not writable)"
    )
    missing.parent.mkdir()
    code, out, err = run(["check-config", str(path)], capsys)
    assert (code, err) == (0, "")
