"""The ``privacy:`` section (the thresholds it makes meaningless: :mod:`exporter.config.thresholds`).

Parsed into an :class:`exporter.snapshot.privacy.Privacy` policy. The key file is read
here, once per load (a reload reads it again, so a rotated key applies, and
re-keys every hashed chat); its contents are registered with
:func:`exporter.config.redaction.redact` the moment they are read, so no log line can
carry the key, and never appear in an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..snapshot.privacy import HASH, MODES, PLAIN, Privacy
from . import redaction
from .files import read_secret
from .schema import ConfigError, Schema, Text, read


class _Privacy(Schema):
    chat_ids: Text | None = None  # None: plain
    names: Text | None = None
    key_file: Text | None = None


def parse_privacy(raw: Any, base_dir: Path) -> Privacy:
    """The ``privacy:`` section (``None``: plain, today's behaviour); key_file is relative to the config."""
    p = read(raw, "privacy", _Privacy)
    modes = {
        "chat_ids": PLAIN if p.chat_ids is None else p.chat_ids,
        "names": PLAIN if p.names is None else p.names,
    }
    for what, mode in modes.items():
        if mode not in MODES:
            raise ConfigError(f"privacy.{what}", f"expected one of {', '.join(MODES)}, got {mode!r}")
    key = read_secret(p.key_file, base_dir, "privacy.key_file") if p.key_file is not None else b""
    # The key is bytes to the HMAC; as text it may still end up somewhere printable.
    redaction.redact(key.decode("utf-8", "replace"))
    for what, mode in modes.items():
        if mode == HASH and not key:
            raise ConfigError(
                "privacy.key_file", f"required when privacy.{what} is hash: a file holding the HMAC key"
            )
    return Privacy(key=key, **modes)
