"""Reading typed values out of a decoded YAML document, with the key path in every error.

Each section declares its keys as a msgspec Struct (:class:`Schema`); :func:`read` checks
a mapping against it and words msgspec's first problem the way every message of this
config reads: ``accounts[1].name: expected a string, got a list``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypeVar, get_origin, overload

import msgspec


class ConfigError(ValueError):
    """A configuration problem, with the key path it concerns in the message.

    ``errors`` holds every problem one check found (``(self,)`` for one); :meth:`of`
    joins several into one exception whose message is all of them on one line.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path, self.message = path, message
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


def _duration_hint(value: Any) -> str:
    """The bare number written as a valid duration, where it can be one: not for true (a bool),
    a negative, zero or fractional number of milliseconds, which no duration says."""
    if type(value) not in (int, float) or not 0 < value < 10**12:
        return ""
    millis = value * 1000
    text = (
        f"{int(value)}s" if value == int(value) else f"{round(millis)}ms" if millis == round(millis) else ""
    )
    return f" (write it with a unit, e.g. '{text}')" if text else ""


def parse_duration(value: Any, path: str) -> float:
    """Parse a Prometheus-style duration (``30s``, ``5m``, ``1h30m``, ``500ms``) into seconds.

    Bare numbers are refused, as Prometheus refuses them: ``timeout: 10`` is
    ambiguous (seconds? milliseconds?) and the fix is one letter.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError(path, f"expected a duration such as '30s' or '5m'{_duration_hint(value)}")
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


# --- the schema: a section's keys, types and defaults as one Struct -------------

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


class Schema(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A section of the config: its fields are the section's keys, with their types and defaults.

    A key given as null is left out where it has a default (``T | None``) and missing where it
    is required; ``T | UnsetType = UNSET`` tells a key left out from one given as null.

    :func:`read` checks a mapping against it. The types below are read by :func:`_decode`
    the way an operator writes them (``30s``, ``64MiB``, ``${VAR}``); a field whose type
    is ``Annotated[..., Meta(description="...")]`` says in those words what it expected.
    """


class Text(str):
    """A string with ``${VAR}`` expanded; a YAML number is taken as written (``name: 2024``)."""


class Duration(float):
    """A Prometheus-style duration in seconds: :func:`parse_duration`."""


class Durations(tuple[float, ...]):
    """A non-empty list of durations, each longer than the one before (histogram buckets)."""


class Url(str):
    """An http(s) base URL, without a trailing slash."""


class Size(int):
    """A byte count: a whole number of bytes, or a number with a unit (``64MiB``, ``100MB``).

    Units are case-sensitive as written by IEC and SI (KiB = 1024, KB = 1000).
    At least ``1KiB``: anything smaller could not hold even an error object.
    """


Regex = re.Pattern[str]
Count = Annotated[int, msgspec.Meta(ge=0)]
_SIZE_RE = re.compile(r"^(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _decode(kind: type, value: Any) -> Any:
    """msgspec's hook for the types above; a ConfigError's path is relative to the value's."""
    if kind is Text:
        if value is None:  # a required key (optional ones are ``Text | None``)
            raise ConfigError("", "required key is missing")
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError("", f"expected a string, got {type_name(value)}")
        return Text(expand_env(str(value), ""))
    if kind is Duration:
        return Duration(parse_duration(value, ""))
    if kind is Durations:
        return Durations(_durations(value))
    if kind is Url:
        url = _decode(Text, value).rstrip("/")
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError("", f"expected an http:// or https:// URL, got {url!r}")
        return Url(url)
    if kind is Size:
        if isinstance(value, str) and (match := _SIZE_RE.match(value.strip())):
            value = int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("", f"expected a size such as '64MiB' or '100MB', got {value!r}")
        if value < 1024:
            raise ConfigError("", f"must be at least 1KiB (1024 bytes), got {value}")
        return Size(value)
    if get_origin(kind) is re.Pattern:
        return compile_regex(value, "")
    raise NotImplementedError(kind)


def _durations(items: Any) -> tuple[float, ...]:
    if items is not None and not isinstance(items, list):
        raise ConfigError("", f"expected a list, got {type_name(items)}")
    if not items:
        raise ConfigError("", "must list at least one duration, e.g. ['5m', '15m', '1h']")
    out: list[float] = []
    for i, item in enumerate(items):
        seconds = parse_duration(item, f"[{i}]")
        if out and seconds <= out[-1]:
            raise ConfigError(
                f"[{i}]",
                f"{item!r} is not longer than {items[i - 1]!r} before it: list them from shortest to longest",
            )
        out.append(seconds)
    return tuple(out)


S = TypeVar("S")


@overload
def read(value: Any, path: str, schema: type[S]) -> S: ...
@overload
def read(value: Any, path: str, schema: Any) -> Any: ...
def read(value: Any, path: str, schema: Any) -> Any:
    """``value`` (the config at ``path``; null: an empty section) checked against ``schema``.

    msgspec stops at the first problem and words it for JSON; the error names the key
    path as today's messages do, lists the known keys for a typo (every unknown key of
    that mapping), and says what was expected in the schema's words.
    """
    try:
        section = value is None and isinstance(schema, type) and issubclass(schema, msgspec.Struct)
        found = msgspec.convert({} if section else value, schema, strict=True, dec_hook=_decode)
    except msgspec.ValidationError as exc:
        raise _error(str(exc), exc.__cause__, value, schema, path) from None
    return _plain(found)


def _plain(value: Any) -> Any:
    """The value with the schema's marker types made plain again (msgspec cannot encode a str subclass)."""
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.replace(
            value, **{f: _plain(getattr(value, f)) for f in value.__struct_fields__}
        )
    if plain := _PLAIN.get(type(value)):
        return plain(value)
    return tuple(map(_plain, value)) if type(value) is tuple else value


_PLAIN: dict[type, type] = {Text: str, Url: str, Duration: float, Durations: tuple, Size: int}
_WHERE_RE = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_EXPECTED = {"int": "a whole number", "str": "a string", "bool": "true or false", "array": "a list"}


def _error(text: str, cause: BaseException | None, value: Any, schema: type, path: str) -> ConfigError:
    message, _, where = text.rpartition(" - at `")
    if not message:
        message, where = text, "$`"
    info: Any = msgspec.inspect.type_info(schema)
    for name, index in _WHERE_RE.findall(where[1:-1]):
        info, _ = _unwrap(info)
        if name:
            value = value.get(name) if isinstance(value, dict) else None
            info = next(f.type for f in info.fields if f.encode_name == name)
            path = f"{path}.{name}" if path else name
        else:
            value = value[int(index)]
            info = info.item_type
            path = f"{path}[{index}]"
    info, description = _unwrap(info)
    if isinstance(cause, ConfigError):
        return ConfigError(path + cause.path, cause.message)
    if field := re.match(r"Object missing required field `(.*)`$", message):
        return ConfigError(f"{path}.{field.group(1)}" if path else field.group(1), "required key is missing")
    if message.startswith("Object contains unknown field"):
        return _unknown_keys(value, {f.encode_name for f in info.fields}, f"{path}." if path else "")
    if bound := re.match(r"Expected `int` (>=|<=) (-?\d+)$", message):
        least = bound.group(1) == ">="
        return ConfigError(path, f"must be at {'least' if least else 'most'} {bound.group(2)}, got {value}")
    if expected := re.match(r"Expected `(\w+)[ |a-z]*`", message):
        what = description or _EXPECTED.get(expected.group(1), "a mapping")
        return ConfigError(path, f"expected {what}, got {type_name(value)}")
    return ConfigError(path, message)  # nothing else is expected: kept as msgspec says it


def _unwrap(info: Any) -> tuple[Any, str]:
    """The type a value at this place has to be: without ``| None``, and what its Meta describes."""
    description = ""
    while True:
        if isinstance(info, msgspec.inspect.Metadata):
            description = (info.extra_json_schema or {}).get("description", description)
            info = info.type
        elif isinstance(info, msgspec.inspect.UnionType):
            info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        else:
            return info, description


def _unknown_keys(section: Mapping[str, Any], allowed: Collection[str], path: str) -> ConfigError:
    """Every key of ``section`` that is not ``allowed``, each one an error listing the known keys."""
    known = ", ".join(sorted(allowed))
    unknown = [key for key in section if key not in allowed]
    return ConfigError.of(
        [ConfigError(f"{path}{key}", f"unknown key (known keys here: {known})") for key in unknown]
    )


def compile_regex(value: Any, path: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a regular expression string, got {type_name(value)}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ConfigError(path, f"invalid regular expression {value!r}: {exc}") from None
