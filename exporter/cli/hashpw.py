"""``hash-password``: a bcrypt hash for the web config's ``basic_auth_users``, without htpasswd.

The password is asked twice at a terminal (not echoed), or read as one line from stdin when
piped (``printf %s "$PW" | whatsgate-exporter hash-password``). The hash goes to stdout, every
problem to stderr as one line; the password itself is never printed.
"""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

import bcrypt

DEFAULT_COST = 10  # exporter-toolkit's documented example cost; checks are cached (web/auth.py)
MIN_COST, MAX_COST = 4, 31  # what bcrypt itself accepts
MAX_BYTES = 72  # bcrypt ignores (bcrypt 5 refuses) what lies beyond: refuse it here, with a reason


def read_password(stdin: TextIO) -> str:
    """From a terminal: asked twice, must match. From a pipe: the first line, its line ending
    removed, "\r\n" too (a file saved on Windows: the "\r" would be hashed, and the password
    typed at login would not match)."""
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    line = stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def check_cost(cost: int) -> None:
    if not MIN_COST <= cost <= MAX_COST:
        raise ValueError(f"--cost must be between {MIN_COST} and {MAX_COST}, got {cost}")


def hash_password(password: str, cost: int) -> bytes:
    check_cost(cost)
    secret = password.encode()
    if not secret:
        raise ValueError("the password is empty")
    if len(secret) > MAX_BYTES:
        raise ValueError(f"the password is {len(secret)} bytes long; bcrypt uses at most {MAX_BYTES}")
    return bcrypt.hashpw(secret, bcrypt.gensalt(cost))


def run(cost: int, stdin: TextIO | None = None) -> int:
    try:
        check_cost(cost)  # before asking: a typo in --cost should not cost typing the password
        hashed = hash_password(read_password(stdin or sys.stdin), cost)
    except (ValueError, EOFError, KeyboardInterrupt) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "no password given"
        print(f"whatsgate-exporter: hash-password: {reason}", file=sys.stderr)
        return 1
    print(hashed.decode())
    return 0
