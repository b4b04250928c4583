"""Reading typed values out of a decoded YAML document, with the key path in every error.

Shared by the sections of the configuration (core, thresholds, alertmanager),
so that every problem reads the same way: ``accounts[1].name: expected a string``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import fields
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, with the key path it concerns in the message.

    ``errors`` holds every problem one check found (``(self,)`` for one); :meth:`of`
    joins several into one exception whose message is all of them on one line.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.errors: tuple[ConfigError, ...] = (self,)
        super().__init__(f"{path}: {message}" if path else message)

    @classmethod
    def of(cls, errors: Sequence[ConfigError]) -> ConfigError:
        if len(errors) == 1:
            return errors[0]
        joined = cls("", "; ".join(map(str, errors)))
        joined.path, joined.errors = errors[0].path, tuple(errors)
        return joined


class Parts(dict[Any, Any]):
    """The parts of a section, each checked on its own so that one run reports every problem.

    ``parse(key, parse, *args)`` keeps what ``parse(*args)`` returns under ``key``, or its errors; a part
    that failed is absent, so that a check depending on it is skipped rather than reporting
    a consequence of the first error. :meth:`done` raises them all, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[ConfigError] = []

    def parse(self, key: Any, parse: Callable[..., Any], *args: Any) -> None:
        try:
            self[key] = parse(*args)
        except ConfigError as exc:
            self.errors.extend(exc.errors)

    def check(self, check: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`parse`, for a check that keeps nothing."""
        try:
            check(*args)
        except ConfigError as exc:
            self.errors.extend(exc.errors)

    def done(self) -> None:
        if self.errors:
            raise ConfigError.of(self.errors)


# --- durations --------------------------------------------------------------

_DURATION_RE = re.compile(r"^((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m(?!s))?((\d+)s)?((\d+)ms)?$")


def parse_duration(value: Any, path: str) -> float:
    """Parse a Prometheus-style duration (``30s``, ``5m``, ``1h30m``, ``500ms``) into seconds.

    Bare numbers are refused, as Prometheus refuses them: ``timeout: 10`` is
    ambiguous (seconds? milliseconds?) and the fix is one letter.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        hint = f" (write it with a unit, e.g. '{value}s')" if isinstance(value, int | float) else ""
        raise ConfigError(path, f"expected a duration such as '30s' or '5m'{hint}")
    match = _DURATION_RE.match(value.strip())
    if not value.strip() or not match:
        raise ConfigError(path, f"invalid duration {value!r}: use units w, d, h, m, s, ms, e.g. '30s', '5m'")
    weeks, days, hours, minutes, seconds, millis = (int(match.group(i) or 0) for i in (2, 4, 6, 8, 10, 12))
    total = ((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60 + seconds + millis / 1000
    if total <= 0:
        raise ConfigError(path, f"duration {value!r} must be greater than zero")
    return total


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration`, for rule files and messages."""
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    s = int(seconds)
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out or "0s"


# --- small typed readers ----------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, path: str) -> str:
    """Replace ``${VAR}`` with the environment's value; an unset variable is an error."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(path, f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_RE.sub(sub, value)


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def get_str(section: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    if key not in section or section[key] is None:
        if default is None:
            raise ConfigError(f"{path}{key}", "required key is missing")
        return default
    value = section[key]
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{path}{key}", f"expected a string, got {type_name(value)}")
    return expand_env(str(value), f"{path}{key}")


def get_url(section: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    """An http(s) base URL, without a trailing slash."""
    url = get_str(section, key, path, default).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{path}{key}", f"expected an http:// or https:// URL, got {url!r}")
    return url


def get_bool(section: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path}{key}", f"expected true or false, got {type_name(value)}")
    return value


def get_int(section: Mapping[str, Any], key: str, path: str, default: int, minimum: int = 0) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}{key}", f"expected a whole number, got {type_name(value)}")
    if value < minimum:
        raise ConfigError(f"{path}{key}", f"must be at least {minimum}, got {value}")
    return value


def get_duration(section: Mapping[str, Any], key: str, path: str, default: float) -> float:
    return parse_duration(section[key], f"{path}{key}") if key in section else default


def read_section(value: Any, path: str, keys: Collection[str] | type) -> Mapping[str, Any]:
    """A mapping of the config at ``path`` (null: empty) that has no key but ``keys``.

    A dataclass given as ``keys`` stands for its fields: the type is the section's schema,
    so that a section read into a type of the same fields lists its keys once.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected a mapping, got {type_name(value)}")
    check_keys(value, {f.name for f in fields(keys)} if isinstance(keys, type) else set(keys), f"{path}.")
    return value


def get_mapping(section: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = section.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}{key}", f"expected a mapping, got {type_name(value)}")
    return value


def get_list(section: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}{key}", f"expected a list, got {type_name(value)}")
    return value


def get_durations(
    section: Mapping[str, Any], key: str, path: str, default: tuple[float, ...]
) -> tuple[float, ...]:
    """A non-empty list of durations, each longer than the one before (histogram buckets)."""
    if key not in section:
        return default
    items = get_list(section, key, path)
    if not items:
        raise ConfigError(f"{path}{key}", "must list at least one duration, e.g. ['5m', '15m', '1h']")
    out: list[float] = []
    for i, item in enumerate(items):
        seconds = parse_duration(item, f"{path}{key}[{i}]")
        if out and seconds <= out[-1]:
            raise ConfigError(
                f"{path}{key}[{i}]",
                f"{item!r} is not longer than {items[i - 1]!r} before it: list them from shortest to longest",
            )
        out.append(seconds)
    return tuple(out)


def check_keys(section: Mapping[str, Any], allowed: set[str], path: str) -> None:
    """Every key of ``section`` that is not ``allowed``, each one an error listing the known keys."""
    known = ", ".join(sorted(allowed))
    if unknown := [key for key in section if key not in allowed]:
        raise ConfigError.of(
            [ConfigError(f"{path}{key}", f"unknown key (known keys here: {known})") for key in unknown]
        )


def compile_regex(value: Any, path: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a regular expression string, got {type_name(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(path, f"invalid regular expression {value!r}: {exc}") from None


def regex_list(section: Mapping[str, Any], key: str, path: str) -> tuple[re.Pattern[str], ...]:
    return tuple(
        compile_regex(item, f"{path}{key}[{i}]") for i, item in enumerate(get_list(section, key, path))
    )
