"""``hash-password``: a hash that bcrypt (and so basic_auth_users) accepts, the password never printed."""

from __future__ import annotations

import io
import subprocess
import sys

import bcrypt
import pytest

from exporter.cli import hashpw, main


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_password_hashes_the_first_line_without_its_newline(capsys: pytest.CaptureFixture[str]) -> None:
    assert hashpw.run(4, io.StringIO("s3cret pass\nignored\n")) == 0
    out, err = capsys.readouterr()
    hashed = out.strip().encode()
    assert hashed.startswith(b"$2b$04$")
    assert bcrypt.checkpw(b"s3cret pass", hashed)
    assert not bcrypt.checkpw(b"s3cret pass\n", hashed)
    assert "s3cret" not in out + err


def test_a_piped_line_ending_in_crlf_hashes_without_either(capsys: pytest.CaptureFixture[str]) -> None:
    assert hashpw.run(4, io.StringIO("s3cret\r\n")) == 0
    assert bcrypt.checkpw(b"s3cret", capsys.readouterr().out.strip().encode())


def test_terminal_asks_twice(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["pw-one", "pw-one"])
    monkeypatch.setattr(hashpw.getpass, "getpass", lambda _prompt: next(answers))
    assert hashpw.run(4, Tty()) == 0
    assert bcrypt.checkpw(b"pw-one", capsys.readouterr().out.strip().encode())


def test_terminal_mismatch_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["pw-one", "pw-two"])
    monkeypatch.setattr(hashpw.getpass, "getpass", lambda _prompt: next(answers))
    assert hashpw.run(4, Tty()) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "whatsgate-exporter: hash-password: the two passwords differ\n"
    assert "pw-" not in err


@pytest.mark.parametrize(
    ("cost", "stdin", "reason"),
    [
        (3, "pw\n", "--cost must be between 4 and 31, got 3"),
        (32, "pw\n", "--cost must be between 4 and 31, got 32"),
        (4, "", "the password is empty"),
        (4, "\n", "the password is empty"),
        (4, "é" * 37 + "\n", "the password is 74 bytes long; bcrypt uses at most 72"),
    ],
)
def test_refusals_name_the_reason(
    cost: int, stdin: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hashpw.run(cost, io.StringIO(stdin)) == 1
    assert capsys.readouterr() == ("", f"whatsgate-exporter: hash-password: {reason}\n")


def test_bad_cost_is_refused_before_the_password_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    def ask(_prompt: str) -> str:
        raise AssertionError("asked for a password with a cost that cannot be used")

    monkeypatch.setattr(hashpw.getpass, "getpass", ask)
    assert hashpw.run(40, Tty()) == 1


def test_default_cost_through_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert main(["hash-password"]) == 0
    assert capsys.readouterr().out.startswith("$2b$10$")


def test_as_a_process_with_a_pipe() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "hash-password", "--cost", "4"],
        input="pipe-pw\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stderr == ""
    assert bcrypt.checkpw(b"pipe-pw", done.stdout.strip().encode())
