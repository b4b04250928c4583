"""Load and validate the YAML configuration.

Validation happens at start-up (and on each reload). Each section is checked on
its own, so one run reports every problem it can find; each is a
:class:`ConfigError` whose message starts with the key path (``accounts[1].name``)
so that an operator can fix the file without reading a traceback. Values of
secrets never appear in a message.

A new section is a :class:`.schema.Schema` Struct whose fields are its keys, with
their types and defaults; a parser that reads it (:func:`.schema.read`), makes the
cross-field checks and builds the runtime type; a field of :class:`Config` and one
``parts.parse`` line in :func:`parse_config`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml
from msgspec import UNSET, Meta

from ..alerting.thresholds import Threshold
from ..model import Account, ChatsConfig
from ..snapshot.privacy import Privacy
from ..snapshot.replies import RepliesConfig
from ..snapshot.schedule import Schedule
from ..snapshot.waiting import WaitingConfig
from .files import read_text_secret
from .http import HttpClientConfig, parse_http_config, split_userinfo
from .privacy import parse_privacy
from .replies import parse_replies
from .schedules import parse_schedules
from .schema import (
    ConfigError,
    Count,
    Duration,
    Parts,
    Regex,
    Schema,
    Size,
    Text,
    Url,
    read,
    type_name,
)
from .sharding import Shard
from .thresholds import parse_thresholds
from .waiting import parse_waiting

_Positive = Annotated[int, Meta(ge=1)]
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

# The top-level keys are Config's fields; each section is read on its own, below.
_File = msgspec.defstruct("_File", [(f.name, Any, None) for f in fields(Config)], bases=(Schema,))


class _WhatsGate(Schema):
    url: Url | None = None
    # Both read only when polling: not even their environment variables need be set.
    api_key: Any = UNSET
    api_key_file: Any = UNSET
    timeout: Duration = Duration(WhatsGateConfig.timeout)
    max_response_size: Size = Size(WhatsGateConfig.max_response_size)
    # WhatsGate authenticates with X-Api-Key: of http_config it takes only TLS and the proxy.
    tls_config: Any = None
    proxy_url: Any = None


def _whatsgate(top: Mapping[str, Any], base_dir: Path, polling: bool) -> WhatsGateConfig:
    raw, path = top.get("whatsgate"), "whatsgate."
    w = read(raw, "whatsgate", _WhatsGate)
    if w.api_key is not UNSET and w.api_key_file is not UNSET:
        raise ConfigError(f"{path}api_key", "set either api_key or api_key_file, not both")
    key = f"{path}api_key_file" if w.api_key_file is not UNSET else f"{path}api_key"
    api_key = ""
    if not polling:
        pass  # not read at all: not even its environment variable need be set
    elif w.api_key_file is not UNSET:
        api_key = read_text_secret(read(w.api_key_file, key, Text), base_dir, key)
    elif w.api_key is not UNSET:
        if not (api_key := read(w.api_key, key, Text).strip()):
            raise ConfigError(key, "is empty")
    else:
        raise ConfigError(key, "required: set whatsgate.api_key or whatsgate.api_key_file")
    if api_key and not re.fullmatch(r"[!-~]+", api_key):
        # It goes into an HTTP header: anything else would fail every poll, obscurely.
        raise ConfigError(key, "the API key must be printable ASCII without spaces (value not shown)")
    # Not polling: neither read, like the key (the demo talks to its own simulator).
    http = parse_http_config(raw, path, base_dir, _WHATSGATE_HTTP_KEYS) if polling else HttpClientConfig()
    return WhatsGateConfig(w.url or DEFAULT_URL, api_key, w.timeout, w.max_response_size, http)


_WHATSGATE_HTTP_KEYS = frozenset({"tls_config", "proxy_url"})


class _Account(Schema):
    whatsapp_id: Text
    name: Text | None = None
    schedule: Text | None = None


_ACCOUNT = Annotated[_Account, Meta(description="a mapping with whatsapp_id")]


def _accounts(raw: Mapping[str, Any], schedules: Mapping[str, Schedule] | None) -> tuple[Account, ...]:
    """Each account checked on its own, then against the others (ids and names are unique)."""
    items = read([] if raw.get("accounts") is None else raw["accounts"], "accounts", tuple[Any, ...])
    parts = Parts()
    for i, item in enumerate(items):
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
    a = read(item, where, _ACCOUNT)
    if not (whatsapp_id := a.whatsapp_id.strip()):
        raise ConfigError(f"{where}.whatsapp_id", "is empty")
    schedule = a.schedule or None
    if schedule is not None and schedules is not None and schedule not in schedules:
        known = ", ".join(sorted(schedules)) or "none defined"
        raise ConfigError(f"{where}.schedule", f"no schedule is named {schedule!r} (schedules: {known})")
    return Account(whatsapp_id, (a.name or "").strip() or whatsapp_id, schedule)


class _Chats(Schema):
    include: tuple[Regex, ...] | None = None
    exclude: tuple[Regex, ...] | None = None
    max_per_account: Count = ChatsConfig.max_per_account


class _Alertmanager(Schema):
    url: Url
    timeout: Duration = Duration(AlertmanagerConfig.timeout)
    resend_interval: Duration = Duration(AlertmanagerConfig.resend_interval)
    basic_auth: Any = None  # these four: Prometheus' http_config, read by parse_http_config
    authorization: Any = None
    tls_config: Any = None
    proxy_url: Any = None


def _alertmanager(top: Mapping[str, Any], base_dir: Path) -> AlertmanagerConfig | None:
    if (raw := top.get("alertmanager")) in (None, {}):
        return None
    a = read(raw, "alertmanager", _Alertmanager)
    path = "alertmanager."
    url, http = split_userinfo(a.url, parse_http_config(raw, path, base_dir), f"{path}url")
    return AlertmanagerConfig(url=url, http=http, timeout=a.timeout, resend_interval=a.resend_interval)


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
    parts.check(read, raw, "", _File)
    parts.parse("discover", read, raw.get("discover", False), "discover", bool)
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
    parts.parse("poll_interval", _optional, raw, "poll_interval", Duration, Config.poll_interval)
    if "poll_interval" in parts:
        parts.parse("stale_after", _stale_after, raw, parts["poll_interval"])
    parts.parse("whatsgate", _whatsgate, raw, base_dir, polling)
    parts.parse("poll_concurrency", _optional, raw, "poll_concurrency", _Positive, Config.poll_concurrency)
    parts.parse("chats", _chats, raw)
    parts.parse("alertmanager", _alertmanager, raw, base_dir)
    parts.parse("state_file", _state_file, raw, base_dir)
    parts.parse("shard", _shard, raw)
    parts.done()
    return Config(**parts)


def _optional(raw: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    return read(raw[key], key, kind) if key in raw else default


def _chats(top: Mapping[str, Any]) -> ChatsConfig:
    c = read(top.get("chats"), "chats", _Chats)
    return ChatsConfig(c.include or (), c.exclude or (), c.max_per_account)


def _state_file(raw: Mapping[str, Any], base_dir: Path) -> Path | None:
    # Not checked for existence here: check-config runs where the file will not live (a
    # container's volume); a directory that is missing at run time is logged by the writer.
    name = read(raw.get("state_file"), "state_file", Text | None)
    return None if name is None else base_dir / name


def _stale_after(raw: Mapping[str, Any], poll_interval: float) -> float:
    stale_after: float = _optional(raw, "stale_after", Duration, max(300.0, 3 * poll_interval))
    if stale_after < poll_interval:
        raise ConfigError("stale_after", "must not be shorter than poll_interval")
    return stale_after


class _Shard(Schema):
    index: Count = 0
    total: _Positive = 1


def _shard(top: Mapping[str, Any]) -> Shard:
    s = read(top.get("shard"), "shard", _Shard)
    if s.index >= s.total:
        raise ConfigError("shard.index", f"must be less than shard.total ({s.total}), got {s.index}")
    return Shard(s.index, s.total)


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
