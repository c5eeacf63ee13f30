"""Exit codes, the one error that carries one, and how a failure is worded on stderr.

Every failure that ends a command becomes one line, ``dfs-async: error: ...``, and an exit
code from the table below (`EXIT_CODES_HELP` is that table as the help shows it).
"""

from __future__ import annotations

import os
import re
import sys

#: typing.TYPE_CHECKING without importing typing (a few ms of every --help); type checkers
#: take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Options(Protocol):
        """What the closing lines read of the options (`dfs_async.cli.options.Options` has it;
        a protocol, so that this module, which that one imports, imports nothing back)."""

        @property
        def debug(self) -> bool: ...
        @property
        def proxy(self) -> str | None: ...


__all__ = ["CliError", "classify", "cli_wording", "error_line", "print_traceback", "say"]

EXIT_OK = 0
EXIT_FAILURE = 1  # anything else: an I/O error on the output or the state file, a bug
EXIT_USAGE = 2
EXIT_AUTH = 3  # the credentials: login and API password, or the proxy's (HTTP 407)
EXIT_UNAVAILABLE = 4
EXIT_ACCOUNT = 5  # the account was refused (payment, cost limit, subscription, IP whitelist)
EXIT_INTERRUPTED = 128 + 2  # 130, the shell's convention for death by SIGINT (2)
EXIT_BROKEN_PIPE = 128 + 13  # 141: the reader of stdout went away (SIGPIPE's number)

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 other failure (writing a file); 2 bad arguments or state file, or "
    "another run is writing the same -o or --state file; 3 authentication failed (login or "
    "API password, or the proxy's credentials); 4 rate limit or server trouble that outlasted "
    "the retries, or an unreadable reply; 5 the API refused the account (payment required, "
    "cost limit, subscription, IP not whitelisted); 130 interrupted (Ctrl-C); 141 the reader "
    "of standard output went away; 143 terminated (SIGTERM)."
)


class CliError(Exception):
    """A failure with its exit code and a one-line message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The library names its arguments as Python does; on the command line they are options.
_WORDING = (
    (r"; pass None for 'now'", "; omit --to for 'now'"),
    (r"\binclude_metadata=True\b", "--metadata"),
    (r"\bdatetime_from\b", "--from"),
    (r"\bdatetime_to\b", "--to"),
    (r"\bpage_size\b", "--page-size"),
    (r"\bmax_items\b", "--max-items"),
    (r"\bfiltered_function\b", "--function"),
    (r"\b(?:the|this) resume state\b", "the state file"),
    (r"^proxy must\b", "--proxy must"),
)


def cli_wording(message: str) -> str:
    """A library message with its argument names replaced by the matching options."""
    for pattern, replacement in _WORDING:  # compiled on first use (re's cache), not at import
        message = re.sub(pattern, replacement, message)
    return message


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ends the command."""
    from dfs_async import (
        APIError,
        AuthenticationError,
        DecodeError,
        InvalidArgumentError,
        InvalidRequestError,
        MalformedResponseError,
        RateLimitedError,
        ServerError,
        TransportError,
    )

    if isinstance(exc, CliError):
        return exc.code, exc.message
    if isinstance(exc, InvalidArgumentError):
        return EXIT_USAGE, cli_wording(str(exc))
    if isinstance(exc, AuthenticationError):
        # Only 40100 (HTTP 401) is about the credentials; the other account refusals (payment,
        # cost limit, subscription, IP whitelist) need the API's own words, not a password hint.
        if exc.status_code == 40100 or exc.http_status == 401:
            return EXIT_AUTH, (
                f"authentication failed: {exc}; check the login and the API password "
                "(which is not the password of the dashboard)"
            )
        return EXIT_ACCOUNT, f"the API refused the account: {exc}"
    if isinstance(exc, APIError) and exc.http_status == 407:
        # The proxy's answer, not the API's (whose body it would quote: the proxy's page).
        return EXIT_AUTH, (
            "the proxy refused the request (HTTP 407 Proxy Authentication Required): check "
            "its credentials (--proxy, or HTTPS_PROXY in the environment)"
        )
    if isinstance(exc, InvalidRequestError):
        return EXIT_USAGE, f"the API refused the request: {exc}"
    if isinstance(exc, RateLimitedError):
        return EXIT_UNAVAILABLE, f"still rate limited after retrying: {exc}"
    if isinstance(exc, ServerError):
        return EXIT_UNAVAILABLE, f"server trouble outlasted the retries: {exc}"
    if isinstance(exc, TransportError) and not isinstance(exc, MalformedResponseError):
        return EXIT_UNAVAILABLE, f"no answer from the API after retrying: {exc}"
    if isinstance(exc, (DecodeError, MalformedResponseError)):
        return EXIT_UNAVAILABLE, f"the API sent a reply that cannot be read: {exc}"
    if isinstance(exc, APIError):
        return EXIT_UNAVAILABLE, f"the API answered with an error: {exc}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_FAILURE, f"{where}{exc.strerror or exc}"
    return EXIT_FAILURE, f"unexpected {type(exc).__name__}: {exc} (--debug shows a traceback)"


def print_traceback(options: Options) -> None:
    """With --debug, the exception being handled, without a proxy's credentials."""
    if options.debug:
        import traceback

        from .secrets import proxy_secrets, redact

        text = traceback.format_exc()
        sys.stderr.write(redact(text, proxy_secrets(options.proxy, os.environ)))
        sys.stderr.flush()


def error_line(message: str, options: Options) -> str:
    """The closing error line. Its message may quote a reply, and a proxy's reply (an error
    page) may quote the proxy's credentials: they are taken out."""
    from .secrets import proxy_secrets, redact

    return "dfs-async: error: " + redact(message, proxy_secrets(options.proxy, os.environ))


def say(message: str) -> None:
    """A line on stderr, at once."""
    print(message, file=sys.stderr, flush=True)
