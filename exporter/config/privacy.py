"""The ``privacy:`` section (the thresholds it makes meaningless: :mod:`exporter.config.thresholds`).

Parsed into an :class:`exporter.snapshot.privacy.Privacy` policy. The key file is read
here, once per load (a reload reads it again, so a rotated key applies, and
re-keys every hashed chat); its contents are registered with
:func:`exporter.config.redaction.redact` the moment they are read, so no log line can
carry the key, and never appear in an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..snapshot.privacy import HASH, MODES, PLAIN, Privacy
from . import redaction
from .schema import ConfigError, get_str, read_section


def parse_privacy(raw: Any, base_dir: Path) -> Privacy:
    """The ``privacy:`` section (``None``: plain, today's behaviour); key_file is relative to the config."""
    raw = read_section(raw, "privacy", {"chat_ids", "names", "key_file"})
    chat_ids = _mode(raw, "chat_ids")
    names = _mode(raw, "names")
    key = _key(raw, base_dir) if raw.get("key_file") is not None else b""
    for what, mode in (("chat_ids", chat_ids), ("names", names)):
        if mode == HASH and not key:
            raise ConfigError(
                "privacy.key_file", f"required when privacy.{what} is hash: a file holding the HMAC key"
            )
    return Privacy(chat_ids=chat_ids, names=names, key=key)


def _mode(raw: Mapping[str, Any], key: str) -> str:
    mode = get_str(raw, key, "privacy.", PLAIN)
    if mode not in MODES:
        raise ConfigError(f"privacy.{key}", f"expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _key(raw: Mapping[str, Any], base_dir: Path) -> bytes:
    path = Path(get_str(raw, "key_file", "privacy."))
    path = path if path.is_absolute() else base_dir / path
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError("privacy.key_file", f"cannot read {path}: {exc.strerror}") from None
    if not key:
        raise ConfigError("privacy.key_file", f"{path} is empty")
    # The key is bytes to the HMAC; as text it may still end up somewhere printable.
    redaction.redact(key.decode("utf-8", "replace"))
    return key
