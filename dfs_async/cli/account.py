"""The account's credentials: the login, and the API password from the environment or a file.

A password is never taken on the command line (where the process list shows it), and never
kept where a repr or a traceback's locals would show it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .exits import EXIT_AUTH, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from .options import Options

__all__ = ["credentials"]


def credentials(options: Options, environ: Mapping[str, str]) -> tuple[str, str]:
    """The login and password to use; CliError (exit 3) when either is missing."""
    login = options.login or environ.get("DATAFORSEO_LOGIN") or ""
    password = environ.get("DATAFORSEO_PASSWORD") or ""
    if options.password_file is not None:
        password = _read_password(options.password_file)
    missing = [name for name, value in (("login", login), ("password", password)) if not value]
    if missing:
        raise CliError(
            EXIT_AUTH,
            f"no DataForSEO {' or '.join(missing)}: set DATAFORSEO_LOGIN and "
            "DATAFORSEO_PASSWORD, or pass --login and --password-file",
        )
    return login, password


def _read_password(path: str) -> str:
    # Bytes, so that no newline translation splits a password at a lone CR.
    try:
        if path == "-":
            if sys.stdin is None:  # started with standard input closed (<&-)
                raise CliError(EXIT_USAGE, "--password-file -: standard input is closed")
            raw = sys.stdin.buffer.readline()
        else:
            with open(path, "rb") as file:
                raw = file.readline()
        line = raw.decode("utf-8")
    except OSError as exc:
        raise CliError(EXIT_USAGE, f"--password-file: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(EXIT_USAGE, f"--password-file: {path} is not UTF-8 text") from None
    # Only the line ending goes: blanks may belong to the password (as in the environment).
    password = line.removesuffix("\n").removesuffix("\r") if line.endswith("\n") else line
    if not password:
        raise CliError(EXIT_AUTH, f"--password-file: {path} is empty")
    return password
