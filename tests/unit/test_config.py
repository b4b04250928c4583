"""Unit tests for exporter.config and the ``check-config`` command."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from exporter.cli import main
from exporter.config.schema import ConfigError, format_duration, parse_duration
from exporter.config.settings import DEFAULT_URL, WhatsGateConfig, load_config, parse_config
from exporter.model import DEFAULT_MAX_PER_ACCOUNT, Account, ChatsConfig
from exporter.snapshot.replies import RepliesConfig

SECRET = "SECRET-abc123"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def valid() -> dict[str, Any]:
    """A small valid decoded config with a distinctive API key."""
    return {
        "whatsgate": {"api_key": SECRET},
        "accounts": [{"whatsapp_id": "acc-1", "name": "sales"}, {"whatsapp_id": "acc-2"}],
    }


def config_error(raw: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, **kwargs)
    return info.value


# --- a full, valid file -----------------------------------------------------

FULL = """\
    whatsgate:
      url: https://gw.example.com/api/v1/
      api_key: SECRET-abc123
      timeout: 15s
    accounts:
      - whatsapp_id: "79991112233"
        name: support
      - whatsapp_id: abc-def
    discover: true
    poll_interval: 30s
    stale_after: 10m
    chats:
      include: ["@g\\\\.us$", "^VIP"]
      exclude: ["spam"]
      max_per_account: 50
    """


def test_full_config_parses_every_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))

    assert config.whatsgate.url == "https://gw.example.com/api/v1"  # trailing slash dropped
    assert config.whatsgate.api_key == SECRET
    assert config.whatsgate.timeout == 15.0
    assert config.accounts == (Account("79991112233", "support"), Account("abc-def", "abc-def"))
    assert config.accounts[1].labels == ("abc-def", "abc-def")
    assert config.discover is True
    assert config.poll_interval == 30.0
    assert config.stale_after == 600.0
    assert [p.pattern for p in config.chats.include] == [r"@g\.us$", "^VIP"]
    assert [p.pattern for p in config.chats.exclude] == ["spam"]
    assert all(isinstance(p, re.Pattern) for p in config.chats.include + config.chats.exclude)
    assert config.chats.max_per_account == 50


def test_minimal_config_gets_defaults() -> None:
    config = parse_config({"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": "acc-1"}]})

    assert config.whatsgate.url == DEFAULT_URL == "https://whatsgate.org/api/v1"
    assert config.whatsgate.timeout == 10.0
    assert config.accounts == (Account("acc-1", "acc-1"),)
    assert config.discover is False
    assert config.poll_interval == 60.0
    assert config.stale_after == 300.0
    assert config.chats.include == ()
    assert config.chats.exclude == ()
    assert config.chats.max_per_account == DEFAULT_MAX_PER_ACCOUNT == 1000


def test_blank_name_defaults_to_id() -> None:
    config = parse_config({"whatsgate": {"api_key": "k"}, "accounts": [{"whatsapp_id": "a", "name": "  "}]})
    assert config.accounts[0].name == "a"


def test_discover_without_accounts_is_valid() -> None:
    config = parse_config({"whatsgate": {"api_key": "k"}, "discover": True})
    assert config.accounts == ()
    assert config.discover is True


def test_stale_after_defaults_to_three_poll_intervals_when_longer_than_5m() -> None:
    raw = valid() | {"poll_interval": "4m"}
    assert parse_config(raw).stale_after == 720.0


def test_stale_after_equal_to_poll_interval_is_allowed() -> None:
    raw = valid() | {"poll_interval": "1m", "stale_after": "1m"}
    assert parse_config(raw).stale_after == 60.0


def test_polling_false_allows_missing_key() -> None:
    config = parse_config({"accounts": [{"whatsapp_id": "a"}]}, polling=False)
    assert config.whatsgate.api_key == ""


def test_api_key_never_in_repr() -> None:
    config = parse_config(valid())
    assert SECRET not in repr(config)
    assert SECRET not in repr(config.whatsgate)
    assert SECRET not in str(WhatsGateConfig(api_key=SECRET))


def test_chats_selects_matches_id_or_name() -> None:
    chats = parse_config(valid() | {"chats": {"include": ["@g\\.us$", "^VIP"], "exclude": ["spam"]}}).chats
    assert chats.selects("1@g.us", "friends")  # include by id
    assert chats.selects("2@c.us", "VIP Alice")  # include by name
    assert not chats.selects("3@c.us", "Bob")  # not included
    assert not chats.selects("4@g.us", "spam ring")  # excluded by name
    assert not chats.selects("spam@g.us", "x")  # excluded by id
    assert ChatsConfig().selects("anything", "at all")  # no rules: everything


# --- environment variables -------------------------------------------------


def test_env_var_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_KEY", SECRET)
    monkeypatch.setenv("WG_HOST", "gw.example.com")
    monkeypatch.setenv("WG_ID", "acc-9")
    raw = {
        "whatsgate": {"api_key": "${WG_KEY}", "url": "https://${WG_HOST}/api/v1"},
        "accounts": [{"whatsapp_id": "${WG_ID}", "name": "n-${WG_ID}"}],
    }
    config = parse_config(raw)
    assert config.whatsgate.api_key == SECRET
    assert config.whatsgate.url == "https://gw.example.com/api/v1"
    assert config.accounts == (Account("acc-9", "n-acc-9"),)


def test_env_var_value_is_not_expanded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WG_KEY", "${NOT_A_VAR}")
    monkeypatch.delenv("NOT_A_VAR", raising=False)
    config = parse_config({"whatsgate": {"api_key": "${WG_KEY}"}, "accounts": [{"whatsapp_id": "a"}]})
    assert config.whatsgate.api_key == "${NOT_A_VAR}"


def test_unset_env_var_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WG_MISSING_KEY", raising=False)
    exc = config_error({"whatsgate": {"api_key": "${WG_MISSING_KEY}"}, "accounts": [{"whatsapp_id": "a"}]})
    assert exc.path == "whatsgate.api_key"
    assert str(exc).startswith("whatsgate.api_key: ")
    assert "WG_MISSING_KEY" in str(exc)


def test_env_var_in_key_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key.txt").write_text(SECRET, encoding="utf-8")
    monkeypatch.setenv("WG_KEY_FILE", str(tmp_path / "key.txt"))
    raw = {"whatsgate": {"api_key_file": "${WG_KEY_FILE}"}, "accounts": [{"whatsapp_id": "a"}]}
    assert parse_config(raw).whatsgate.api_key == SECRET


# --- api_key_file ----------------------------------------------------------


def test_api_key_file_relative_to_config_dir_and_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    (conf_dir / "secrets").mkdir(parents=True)
    (conf_dir / "secrets" / "key").write_text(f"  {SECRET}\n\n", encoding="utf-8")
    path = write(
        conf_dir,
        """\
        whatsgate:
          api_key_file: secrets/key
        accounts: [{whatsapp_id: a}]
        """,
    )
    # The current directory must not matter: only the config file's directory does.
    monkeypatch.chdir(tmp_path)
    assert load_config(path).whatsgate.api_key == SECRET


def test_api_key_file_absolute(tmp_path: Path) -> None:
    key = tmp_path / "abs-key"
    key.write_text(SECRET + "\n", encoding="utf-8")
    raw = {"whatsgate": {"api_key_file": str(key)}, "accounts": [{"whatsapp_id": "a"}]}
    assert parse_config(raw, base_dir=Path("/nonexistent")).whatsgate.api_key == SECRET


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda d: None, id="missing"),
        pytest.param(lambda d: (d / "key").write_text(" \n\t\n", encoding="utf-8"), id="empty"),
        pytest.param(lambda d: (d / "key").mkdir(), id="directory"),
        pytest.param(lambda d: (d / "key").write_bytes(b"\xff\xfe\x00bad"), id="not-utf8"),
    ],
)
def test_bad_api_key_file_names_the_key(tmp_path: Path, setup: Any) -> None:
    setup(tmp_path)
    path = write(
        tmp_path,
        """\
        whatsgate:
          api_key_file: key
        accounts: [{whatsapp_id: a}]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == "whatsgate.api_key_file"
    assert str(info.value).startswith("whatsgate.api_key_file: ")
    assert "\n" not in str(info.value)


def test_api_key_and_api_key_file_together_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("other", encoding="utf-8")
    exc = config_error(
        {"whatsgate": {"api_key": SECRET, "api_key_file": "key"}, "accounts": [{"whatsapp_id": "a"}]},
        base_dir=tmp_path,
    )
    assert str(exc).startswith("whatsgate.api_key")
    assert "api_key_file" in str(exc)
    assert SECRET not in str(exc)


# --- bad configs: one ConfigError, message starting with the key path --------


def _set(path: str, value: Any) -> Any:
    """A mutation of valid(): set a dotted path (list indexes as ints) to value; DELETE removes it."""

    def apply(raw: dict[str, Any]) -> None:
        parts: list[Any] = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = raw
        for part in parts[:-1]:
            if isinstance(part, str) and part not in target:
                target[part] = {}
            target = target[part]
        if value is DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value

    return apply


class _Delete:
    def __repr__(self) -> str:  # a stable test id (pytest-xdist compares ids across workers)
        return "<deleted>"


DELETE = _Delete()

BAD = [
    ("accounts.0.whatsapp_id", DELETE, "accounts[0].whatsapp_id"),
    ("accounts.1.whatsapp_id", "  ", "accounts[1].whatsapp_id"),
    ("accounts.1.whatsapp_id", "acc-1", "accounts[1].whatsapp_id"),  # duplicate id
    ("accounts.1.name", "sales", "accounts[1].name"),  # duplicate name
    ("accounts.1.nmae", "typo", "accounts[1].nmae"),
    ("accounts.0.name", ["x"], "accounts[0].name"),
    ("accounts.0", "acc-1", "accounts[0]"),
    ("accounts", {}, "accounts"),
    ("accounts", "acc-1", "accounts"),
    ("accounts", [], "accounts"),  # no accounts, no discover
    ("accounts", None, "accounts"),
    ("whatsgate.api_key", DELETE, "whatsgate.api_key"),
    ("whatsgate.api_key", "   ", "whatsgate.api_key"),
    ("whatsgate.api_key", ["k"], "whatsgate.api_key"),
    ("whatsgate.api_key", True, "whatsgate.api_key"),
    ("whatsgate.url", "ftp://gw.example.com", "whatsgate.url"),
    ("whatsgate.url", "gw.example.com/api", "whatsgate.url"),
    ("whatsgate.token", "x", "whatsgate.token"),
    ("whatsgate.timeout", 10, "whatsgate.timeout"),
    ("whatsgate", ["x"], "whatsgate"),
    ("discover", "yes", "discover"),
    ("discover", 1, "discover"),
    ("poll_interval", "5 minutes", "poll_interval"),
    ("poll_interval", "abc", "poll_interval"),
    ("poll_interval", 60, "poll_interval"),
    ("poll_interval", 1.5, "poll_interval"),
    ("poll_interval", "0s", "poll_interval"),
    ("poll_interval", "", "poll_interval"),
    ("poll_interval", True, "poll_interval"),
    ("stale_after", "30s", "stale_after"),  # shorter than the default poll_interval (60s)
    ("stale_after", "-5m", "stale_after"),
    ("chats", "all", "chats"),
    ("chats.foo", 1, "chats.foo"),
    ("chats.max_per_account", "ten", "chats.max_per_account"),
    ("chats.max_per_account", -1, "chats.max_per_account"),
    ("chats.max_per_account", 2.5, "chats.max_per_account"),
    ("chats.max_per_account", True, "chats.max_per_account"),
    ("chats.include", "^VIP", "chats.include"),
    ("chats.include", ["ok", 5], "chats.include[1]"),
    ("chats.exclude", ["(unclosed"], "chats.exclude[0]"),
    ("chats.exclude", ["fine", "[z-a]"], "chats.exclude[1]"),
    ("metrics", {}, "metrics"),  # unknown top-level key
    ("replies", "on", "replies"),
    ("replies.foo", 1, "replies.foo"),
    ("replies.enabled", "yes", "replies.enabled"),
    ("replies.conversation_gap", 86400, "replies.conversation_gap"),
    ("replies.conversation_gap", "0s", "replies.conversation_gap"),
    ("replies.buckets", [], "replies.buckets"),
    ("replies.buckets", ["5m", "1m"], "replies.buckets[1]"),
    ("replies.max_pages", 0, "replies.max_pages"),
    ("replies.max_pages", 1001, "replies.max_pages"),
    ("replies.max_pages", "20", "replies.max_pages"),
    ("replies.history_per_poll", -1, "replies.history_per_poll"),
    ("replies.history_per_poll", 2.5, "replies.history_per_poll"),
]


@pytest.mark.parametrize(("where", "value", "key_path"), BAD, ids=[f"{w}={v!r}" for w, v, _ in BAD])
def test_bad_config_names_the_key(where: str, value: Any, key_path: str) -> None:
    raw = copy.deepcopy(valid())
    _set(where, value)(raw)
    exc = config_error(raw)
    assert exc.path == key_path
    assert str(exc).startswith(f"{key_path}: ")
    assert "\n" not in str(exc)
    # The key is distinctive and valid: whatever else is wrong, it must never be echoed.
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)


def test_replies_section() -> None:
    assert parse_config(valid()).replies == RepliesConfig()
    raw = valid() | {
        "replies": {
            "enabled": False,
            "conversation_gap": "8h",
            "buckets": ["30s", "2m"],
            "max_pages": 1000,
            "history_per_poll": 0,
        }
    }
    assert parse_config(raw).replies == RepliesConfig(False, 28800.0, (30.0, 120.0), 1000, 0)


def test_unknown_key_lists_known_keys() -> None:
    exc = config_error(valid() | {"chats": {"foo": 1}})
    assert "unknown key" in str(exc)
    assert "max_per_account" in str(exc)


def test_duration_error_hints_unit_for_bare_number() -> None:
    exc = config_error(valid() | {"poll_interval": 60})
    assert "'60s'" in str(exc)


def test_invalid_regex_message_mentions_pattern() -> None:
    exc = config_error(valid() | {"chats": {"exclude": ["(unclosed"]}})
    assert "(unclosed" in str(exc)


def test_error_in_key_file_config_does_not_leak_key(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(SECRET, encoding="utf-8")
    path = write(
        tmp_path,
        """\
        whatsgate:
          api_key_file: key
        accounts: [{whatsapp_id: a}]
        poll_interval: forever
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith("poll_interval: ")
    assert SECRET not in str(info.value)


# --- whole files ------------------------------------------------------------


def test_invalid_yaml_mentions_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        whatsgate:
          api_key: SECRET-abc123
        accounts:
          - whatsapp_id: a
           name: b
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "invalid YAML" in message
    assert "line 5" in message
    assert str(path) in message
    assert "\n" not in message
    assert SECRET not in message


def test_unterminated_quote_does_not_leak_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'whatsgate:\n  api_key: "SECRET-abc123\naccounts: []\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "invalid YAML" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("text", "what"),
    [("- whatsapp_id: a\n", "a list"), ("just a string\n", "a string"), ("42\n", "int")],
)
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str, what: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert "must be a YAML mapping" in str(info.value)
    assert what in str(info.value)


def test_empty_file_asks_for_accounts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ""))
    assert str(info.value).startswith("accounts: ")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read config file" in str(info.value)
    assert "nope.yaml" in str(info.value)


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"accounts: [\xff\xfe]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not UTF-8" in str(info.value)


def test_quoted_yes_is_a_string_but_bare_yes_is_yaml_true(tmp_path: Path) -> None:
    bare = write(tmp_path, "whatsgate: {api_key: k}\ndiscover: yes\n")
    assert load_config(bare).discover is True
    quoted = write(tmp_path, 'whatsgate: {api_key: k}\ndiscover: "yes"\n', name="q.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(quoted)
    assert str(info.value).startswith("discover: ")


# --- durations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1ms", 0.001),
        ("1m30s", 90.0),
        ("1h2m3s4ms", 3723.004),
        ("1d", 86400.0),
        ("1w1d12h", 734400.0),
        ("90s", 90.0),
        (" 30s ", 30.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "5 minutes",
        "abc",
        "",
        "   ",
        "0s",
        "0h0m0s0ms",
        "1y",
        "1d1w",
        "1.5s",
        "5M",
        "s",
        "m30",
        "30s5m",
        "-1s",
        60,
        0.5,
        None,
        True,
    ],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "some.key")
    assert str(info.value).startswith("some.key: ")
    assert info.value.path == "some.key"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (90, "1m30s"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (0.5, "500ms"),
        (1.25, "1250ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "5m", "1h30m", "500ms", "1m30s", "2h", "1s1ms", "100ms", "1h2m3s"])
def test_format_duration_round_trips(text: str) -> None:
    seconds = parse_duration(text, "x")
    assert parse_duration(format_duration(seconds), "x") == pytest.approx(seconds)


# --- check-config ----------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, FULL)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out
    assert "2 accounts" in out
    assert "discovery" in out
    assert "30s" in out
    assert err == ""
    assert SECRET not in out


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        (
            "whatsgate: {api_key: SECRET-abc123}\naccounts: [{whatsapp_id: a}]\npoll_interval: 60\n",
            "poll_interval",
        ),
        ("whatsgate: {api_key: SECRET-abc123}\naccounts: [{name: a}]\n", "accounts[0].whatsapp_id"),
        ("accounts: [{whatsapp_id: a}]\n", "whatsgate.api_key"),
        ("whatsgate: {api_key: SECRET-abc123}\naccounts: [{whatsapp_id: a}]\nchats: {foo: 1}\n", "chats.foo"),
        (
            "whatsgate: {api_key: SECRET-abc123}\naccounts: [{whatsapp_id: a}, {whatsapp_id: b, nmae: c}]\n",
            "accounts[1].nmae",
        ),
    ],
)
def test_check_config_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key_path: str
) -> None:
    path = write(tmp_path, text)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    output = out + err
    assert output.count("\n") == 1
    assert f"{key_path}: " in output
    assert "Traceback" not in output
    assert SECRET not in output


EVERY_ERROR = """\
    whatsgate: {api_key: SECRET-abc123}
    accounts: [{whatsapp_id: "1", name: support}]
    chats: {includes: [VIP]}
    thresholds:
      - {name: Unread, metric: unread_message, above: 5}
      - {name: Fine, metric: account_down}
      - {name: CustomerWaiting, metric: chat_waiting, above: 10}
      - {name: Muted, metric: chats_muted, above: 1, accounts: [suport]}
      - {name: Queue, metric: chats_waiting, longer_than: 7m, above: 2}
    """


def test_check_config_reports_every_error_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four bad thresholds of five and a bad key elsewhere: five lines, each naming its key."""
    path = write(tmp_path, EVERY_ERROR)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    prefix = f"whatsgate-exporter: {path}: config error: "
    lines = err.splitlines()
    assert all(line.startswith(prefix) for line in lines), err
    assert [line.removeprefix(prefix).split(": ")[0] for line in lines] == [
        "thresholds[0] (Unread).metric",
        "thresholds[2] (CustomerWaiting).above",
        "thresholds[3] (Muted).accounts[0]",
        "thresholds[4] (Queue).longer_than",
        "chats.includes",
    ]
    assert SECRET not in err


@pytest.mark.parametrize(
    "text",
    ["whatsgate: [\n", "- a\n- b\n"],
    ids=["invalid-yaml", "list"],
)
def test_check_config_bad_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write(tmp_path, text)
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert (out + err).count("\n") == 1
    assert "Traceback" not in out + err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 1
    out, err = capsys.readouterr()
    assert (out + err).count("\n") == 1
    assert "missing.yaml" in err


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "accounts: " + "[" * 1000 + "\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_numbers_yaml_would_rewrite_stay_as_written(tmp_path: Path) -> None:
    # YAML 1.1 reads 012345 as octal (5349) and 1:30 as base 60 (90): an id must not change silently.
    path = tmp_path / "c.yaml"
    ids = "{whatsapp_id: 012345}, {whatsapp_id: 79991234567}, {whatsapp_id: '1:30'}, {whatsapp_id: 1:30}"
    path.write_text("whatsgate: {api_key: k}\naccounts: [" + ids + "]\n")
    with pytest.raises(ConfigError, match=r"accounts\[3\]\.whatsapp_id: duplicate"):
        load_config(path)
    path.write_text("whatsgate: {api_key: k}\naccounts: [{whatsapp_id: 012345}, {whatsapp_id: 79991234567}]")
    assert [a.whatsapp_id for a in load_config(path).accounts] == ["012345", "79991234567"]


def test_the_example_names_every_key_of_every_section() -> None:
    """The sections' Structs are the schema: each of their keys is documented in config.example.yaml."""
    from exporter.config.schema import Schema

    def sections(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *sections(sub))]

    text = (Path(__file__).parents[2] / "config.example.yaml").read_text(encoding="utf-8")
    keys = {
        (section.__name__, field.encode_name)
        for section in sections(Schema)
        if section.__module__ != "exporter.config.webconfig"  # the web config is documented in deploy/
        for field in msgspec.structs.fields(section)
    }
    assert len(keys) > 60
    assert [key for key in sorted(keys) if not re.search(rf"\b{key[1]}\b", text)] == []


def test_the_values_read_are_plain_builtins() -> None:
    """The schema's marker types (Text, Duration, ...) stay inside config/: msgspec, the state file's
    encoder, cannot encode a str subclass."""
    config = parse_config(valid() | {"poll_interval": "30s", "waiting": {"buckets": ["1m", "5m"]}})
    values = [config.accounts[0].whatsapp_id, config.whatsgate.url, config.whatsgate.api_key]
    values += [config.poll_interval, config.whatsgate.timeout, config.whatsgate.max_response_size]
    assert {type(v) for v in values} == {str, float, int}
    assert type(config.waiting.buckets) is tuple and {type(b) for b in config.waiting.buckets} == {float}
    msgspec.json.encode(values)


@pytest.mark.parametrize("value", [10, 2.0, 1.5, 0.25, -5, 0, True, 1.0001, float("nan")])
def test_a_bare_numbers_hint_is_a_duration_that_parses_to_it(value: object) -> None:
    """The hint for a duration written as a bare number was the number and an "s": '-5s', '0s',
    '1.5s' and 'Trues', none of which parse. Now it names a valid duration of that many seconds,
    or nothing."""
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, "timeout")
    hint = re.search(r"write it with a unit, e\.g\. '([^']*)'", str(caught.value))
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and (value * 1000) % 1 == 0
    ):
        assert hint is not None and parse_duration(hint[1], "timeout") == value
    else:
        assert hint is None, str(caught.value)
