"""Load and validate the YAML configuration.

Validation happens at start-up (and on each reload). Each section is checked on
its own, so one run reports every problem it can find; each is a
:class:`ConfigError` whose message starts with the key path (``accounts[1].name``)
so that an operator can fix the file without reading a traceback. Values of
secrets never appear in a message.

A new section is a frozen dataclass whose fields are its keys (``read_section``
checks them against it), a parser that reads them with the readers of
:mod:`.schema`, a field of :class:`Config` and one ``parts.parse`` line in
:func:`parse_config`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..alerting.thresholds import Threshold
from ..model import Account, ChatsConfig
from ..snapshot.privacy import Privacy
from ..snapshot.replies import RepliesConfig
from ..snapshot.schedule import Schedule
from ..snapshot.waiting import WaitingConfig
from .http import HTTP_KEYS, HttpClientConfig, parse_http_config, split_userinfo
from .privacy import parse_privacy
from .replies import parse_replies
from .schedules import parse_schedules
from .schema import (
    ConfigError,
    Parts,
    check_keys,
    get_bool,
    get_duration,
    get_int,
    get_list,
    get_str,
    get_url,
    read_section,
    regex_list,
    type_name,
)
from .sharding import Shard
from .thresholds import parse_thresholds
from .waiting import parse_waiting

DEFAULT_URL = "https://whatsgate.org/api/v1"


@dataclass(frozen=True)
class WhatsGateConfig:
    url: str = DEFAULT_URL
    # repr=False: a config printed in a debugger, log or exception never shows the key.
    api_key: str = field(default="", repr=False)
    timeout: float = 10.0
    # Decompressed bytes; see config.example.yaml for how the default was sized.
    max_response_size: int = 64 * 1024 * 1024
    # tls_config and proxy_url (Prometheus' http_config keys); auth stays the X-Api-Key header.
    http: HttpClientConfig = field(default_factory=HttpClientConfig)


@dataclass(frozen=True)
class AlertmanagerConfig:
    url: str  # never with user:password@ (moved into http.basic_auth), so it can be logged
    timeout: float = 10.0
    resend_interval: float = 60.0
    # basic_auth, authorization, tls_config, proxy_url (Prometheus' http_config keys).
    http: HttpClientConfig = field(default_factory=HttpClientConfig)


@dataclass(frozen=True)
class Config:
    whatsgate: WhatsGateConfig
    accounts: tuple[Account, ...]
    discover: bool = False
    poll_interval: float = 60.0
    stale_after: float = 300.0
    # Worker threads polling accounts; they mostly wait on the API, so a few serve thousands.
    poll_concurrency: int = 8
    chats: ChatsConfig = field(default_factory=ChatsConfig)
    thresholds: tuple[Threshold, ...] = ()
    alertmanager: AlertmanagerConfig | None = None
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    waiting: WaitingConfig = field(default_factory=WaitingConfig)
    # Reply times from the event log (events-get, get-history); enabled by default.
    replies: RepliesConfig = field(default_factory=RepliesConfig)
    # Where the open waits survive a restart; None keeps them in memory only.
    state_file: Path | None = None
    # Which accounts this exporter polls when several split one API key (shard.index of shard.total).
    shard: Shard = field(default_factory=Shard)
    # What chat ids and names become before anything sees them (privacy mode); plain by default.
    privacy: Privacy = field(default_factory=Privacy)

    @property
    def alerts_read_chats(self) -> bool:
        """Whether a threshold measures single chats: then snapshots keep theirs (ChatData.released)."""
        return any(t.spec.reads_chats for t in self.thresholds)

    def schedule_for(self, account: Account) -> Schedule | None:
        """The account's own schedule, else waiting.schedule, else none (24/7)."""
        name = account.schedule or self.waiting.schedule
        return self.schedules.get(name) if name else None


# --- sections ---------------------------------------------------------------

# The top-level keys are Config's fields.
_TOP_KEYS = {f.name for f in fields(Config)}


# WhatsGate authenticates with X-Api-Key: of http_config it takes only TLS and the proxy.
_WHATSGATE_HTTP_KEYS = frozenset({"tls_config", "proxy_url"})


def _whatsgate(top: Mapping[str, Any], base_dir: Path, polling: bool) -> WhatsGateConfig:
    keys = {"url", "api_key", "api_key_file", "timeout", "max_response_size", *_WHATSGATE_HTTP_KEYS}
    raw, path = read_section(top.get("whatsgate"), "whatsgate", keys), "whatsgate."
    url = get_url(raw, "url", path, DEFAULT_URL)
    if "api_key" in raw and "api_key_file" in raw:
        raise ConfigError(f"{path}api_key", "set either api_key or api_key_file, not both")
    api_key = ""
    if not polling:
        pass  # not read at all: not even its environment variable need be set
    elif "api_key_file" in raw:
        key_path = Path(get_str(raw, "api_key_file", path))
        key_path = key_path if key_path.is_absolute() else base_dir / key_path
        try:
            api_key = key_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{path}api_key_file", f"cannot read {key_path}: {reason}") from None
        if not api_key:
            raise ConfigError(f"{path}api_key_file", f"{key_path} is empty")
    elif "api_key" in raw:
        api_key = get_str(raw, "api_key", path).strip()
        if not api_key:
            raise ConfigError(f"{path}api_key", "is empty")
    else:
        raise ConfigError(f"{path}api_key", "required: set whatsgate.api_key or whatsgate.api_key_file")
    if api_key and not re.fullmatch(r"[!-~]+", api_key):
        # It goes into an HTTP header: anything else would fail every poll, obscurely.
        key = f"{path}api_key_file" if "api_key_file" in raw else f"{path}api_key"
        raise ConfigError(key, "the API key must be printable ASCII without spaces (value not shown)")
    timeout = get_duration(raw, "timeout", path, WhatsGateConfig.timeout)
    max_size = _size(raw, "max_response_size", path, WhatsGateConfig.max_response_size)
    # Not polling: neither read, like the key (the demo talks to its own simulator).
    http = parse_http_config(raw, path, base_dir, _WHATSGATE_HTTP_KEYS) if polling else HttpClientConfig()
    return WhatsGateConfig(url=url, api_key=api_key, timeout=timeout, max_response_size=max_size, http=http)


_SIZE_RE = re.compile(r"^(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _size(raw: Mapping[str, Any], key: str, path: str, default: int) -> int:
    """A byte count: a whole number of bytes, or a number with a unit (``64MiB``, ``100MB``).

    Units are case-sensitive as written by IEC and SI (KiB = 1024, KB = 1000).
    At least ``1KiB``: anything smaller could not hold even an error object.
    """
    value = raw.get(key, default)
    if isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}{key}", f"expected a size such as '64MiB' or '100MB', got {value!r}")
    if value < 1024:
        raise ConfigError(f"{path}{key}", f"must be at least 1KiB (1024 bytes), got {value}")
    return value


def _accounts(raw: Mapping[str, Any], schedules: Mapping[str, Schedule] | None) -> tuple[Account, ...]:
    """Each account checked on its own, then against the others (ids and names are unique)."""
    parts = Parts()
    for i, item in enumerate(get_list(raw, "accounts", "")):
        parts.parse(i, _account, item, f"accounts[{i}]", schedules)
    ids: set[str] = set()
    names: set[str] = set()
    for i, account in parts.items():
        if account.whatsapp_id in ids:
            parts.errors.append(
                ConfigError(f"accounts[{i}].whatsapp_id", f"duplicate account {account.whatsapp_id!r}")
            )
        elif account.name in names:
            parts.errors.append(
                ConfigError(f"accounts[{i}].name", f"duplicate account name {account.name!r}")
            )
        ids.add(account.whatsapp_id)
        names.add(account.name)
    parts.done()
    return tuple(parts.values())


def _account(item: Any, where: str, schedules: Mapping[str, Schedule] | None) -> Account:
    if not isinstance(item, dict):
        raise ConfigError(where, f"expected a mapping with whatsapp_id, got {type_name(item)}")
    path = f"{where}."
    check_keys(item, {"whatsapp_id", "name", "schedule"}, path)
    whatsapp_id = get_str(item, "whatsapp_id", path).strip()
    if not whatsapp_id:
        raise ConfigError(f"{path}whatsapp_id", "is empty")
    name = get_str(item, "name", path, whatsapp_id).strip() or whatsapp_id
    schedule = get_str(item, "schedule", path, "") or None
    if schedule is not None and schedules is not None and schedule not in schedules:
        known = ", ".join(sorted(schedules)) or "none defined"
        raise ConfigError(f"{path}schedule", f"no schedule is named {schedule!r} (schedules: {known})")
    return Account(whatsapp_id, name, schedule)


def _chats(top: Mapping[str, Any]) -> ChatsConfig:
    raw, path = read_section(top.get("chats"), "chats", ChatsConfig), "chats."
    return ChatsConfig(
        include=regex_list(raw, "include", path),
        exclude=regex_list(raw, "exclude", path),
        max_per_account=get_int(raw, "max_per_account", path, ChatsConfig.max_per_account),
    )


def _alertmanager(top: Mapping[str, Any], base_dir: Path) -> AlertmanagerConfig | None:
    keys = {"url", "timeout", "resend_interval", *HTTP_KEYS}
    raw, path = read_section(top.get("alertmanager"), "alertmanager", keys), "alertmanager."
    if not raw:
        return None
    url, http = split_userinfo(
        get_url(raw, "url", path), parse_http_config(raw, path, base_dir), f"{path}url"
    )
    return AlertmanagerConfig(
        url=url,
        http=http,
        timeout=get_duration(raw, "timeout", path, AlertmanagerConfig.timeout),
        resend_interval=get_duration(raw, "resend_interval", path, AlertmanagerConfig.resend_interval),
    )


def parse_config(raw: Any, base_dir: Path = Path("."), polling: bool = True) -> Config:
    """Validate a decoded YAML document: each section on its own, every problem found reported.

    ``polling=False`` is for configs that will not poll WhatsGate with their own
    key and accounts (the demo brings its own, ``rules`` needs neither): then
    neither is required, and the key is not even read.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"the configuration must be a YAML mapping, got {type_name(raw)}")
    # Each part on its own; one that needs another (accounts need schedules' names) is given
    # None when that one failed, and skips the checks against it.
    parts = Parts()
    parts.check(check_keys, raw, _TOP_KEYS, "")
    parts.parse("discover", get_bool, raw, "discover", "", False)
    parts.parse("schedules", parse_schedules, raw.get("schedules"))
    parts.parse("waiting", parse_waiting, raw.get("waiting"), parts.get("schedules"))
    parts.parse("replies", parse_replies, raw.get("replies"))
    parts.parse("accounts", _accounts, raw, parts.get("schedules"))
    if polling and parts.get("discover") is False and parts.get("accounts") == ():
        parts.errors.append(
            ConfigError("accounts", "at least one account is required (or set discover: true)")
        )
    parts.parse("privacy", parse_privacy, raw.get("privacy"), base_dir)
    checked = polling and parts.get("discover") is False and "accounts" in parts
    names = {a.name for a in parts["accounts"]} if checked else None
    buckets = parts["waiting"].buckets if "waiting" in parts else None
    reply_buckets = parts["replies"].buckets if "replies" in parts else None
    parts.parse(
        "thresholds",
        parse_thresholds,
        raw.get("thresholds"),
        names,
        buckets,
        parts.get("privacy"),
        reply_buckets,
    )
    parts.parse("poll_interval", get_duration, raw, "poll_interval", "", Config.poll_interval)
    if "poll_interval" in parts:
        parts.parse("stale_after", _stale_after, raw, parts["poll_interval"])
    parts.parse("whatsgate", _whatsgate, raw, base_dir, polling)
    parts.parse("poll_concurrency", get_int, raw, "poll_concurrency", "", Config.poll_concurrency, 1)
    parts.parse("chats", _chats, raw)
    parts.parse("alertmanager", _alertmanager, raw, base_dir)
    parts.parse("state_file", _state_file, raw, base_dir)
    parts.parse("shard", _shard, raw)
    parts.done()
    return Config(**parts)


def _stale_after(raw: Mapping[str, Any], poll_interval: float) -> float:
    stale_after = get_duration(raw, "stale_after", "", max(300.0, 3 * poll_interval))
    if stale_after < poll_interval:
        raise ConfigError("stale_after", "must not be shorter than poll_interval")
    return stale_after


def _shard(top: Mapping[str, Any]) -> Shard:
    raw = read_section(top.get("shard"), "shard", Shard)
    if not raw:
        return Shard()
    total = get_int(raw, "total", "shard.", 1, minimum=1)
    index = get_int(raw, "index", "shard.", 0)
    if index >= total:
        raise ConfigError("shard.index", f"must be less than shard.total ({total}), got {index}")
    return Shard(index, total)


def _state_file(raw: Mapping[str, Any], base_dir: Path) -> Path | None:
    if raw.get("state_file") is None:
        return None
    # Not checked for existence here: check-config runs where the file will not live (a
    # container's volume); a directory that is missing at run time is logged by the writer.
    path = Path(get_str(raw, "state_file", ""))
    return path if path.is_absolute() else base_dir / path


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that numbers YAML 1.1 would silently rewrite stay text.

    ``whatsapp_id: 012345`` is octal to YAML 1.1 (5349), and ``1:30`` is
    base 60 (90): an id written like that must stay as written, not become
    another number that check-config would call OK.
    """


def _int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    if isinstance(text, str) and (re.match(r"^[-+]?0[0-9_]", text) or ":" in text):
        return text
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int_or_text)


def load_config(path: str | os.PathLike[str], polling: bool = True) -> Config:
    """Read, parse and validate a config file; every failure is a :class:`ConfigError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {file} is not UTF-8 text") from None
    try:
        raw = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise ConfigError("", f"invalid YAML in {file}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"invalid YAML in {file}{where}: {problem}") from None
    return parse_config(raw, file.parent, polling)
