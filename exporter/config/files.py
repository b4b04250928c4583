"""Files the operator points the exporter at: secrets read once and checked, outputs written in one step."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from .schema import ConfigError


def read_secret(name: str, base_dir: Path, path: str) -> bytes:
    """The file ``name`` (relative to the config's directory) holds, stripped as Prometheus does.

    Errors name the key at ``path``, the file and why, never what it holds; an empty file is one.
    """
    file = base_dir / name  # an absolute name stays as it is
    try:
        value = file.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(path, f"cannot read {file}: {exc.strerror}") from None
    if not value:
        raise ConfigError(path, f"{file} is empty")
    return value


def readable(file: Path, path: str) -> Path:
    """``file``, once it is known to be readable (checked at start-up, not at the first handshake)."""
    try:
        with file.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(path, f"cannot read {file}: {exc.strerror or exc}") from None
    return file


def read_text_secret(name: str, base_dir: Path, path: str) -> str:
    try:  # stripped again as text: Prometheus trims Unicode spaces too
        value = read_secret(name, base_dir, path).decode().strip()
    except UnicodeDecodeError:
        raise ConfigError(path, f"cannot read {base_dir / name}: not UTF-8 text") from None
    if not value:
        raise ConfigError(path, f"{base_dir / name} is empty")
    return value


def write_atomically(target: str | Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``target`` in one step: a reader (Prometheus, a restart) sees the old file or the new.

    The temporary file sits in the target's directory, so ``os.replace`` is a rename
    within one file system, and it is synced before the rename, so a crash leaves
    one whole file. ``mode``: the new file's permissions; None keeps the old file's,
    or gives a new file the usual ones under the umask.
    """
    path = Path(target)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
