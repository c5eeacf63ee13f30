"""The `dfs-async` command line: export a stream of task ids or errors to JSONL or CSV.

    dfs-async id-list --from 2026-11-01 --to "2026-11-22 12:00" -o tasks.jsonl --state tasks.state
    dfs-async errors --function backlinks/live --format csv
    dfs-async id-list --emulate --from 30d                 # the built-in emulator, no account

Strategy: the stream is read a page at a time. Each page is written whole (one `write`, then
flush and fsync), and only then is the state file replaced (temp file + `os.replace`), so the
state never claims a record the output does not hold. The state also records the output's size;
a resumed run first cuts the output back to that size, so a run killed between the two writes
(even by SIGKILL) still resumes without a duplicate. That is why `--state` needs `-o`: standard
output cannot be cut back. The output is opened only when the first page has arrived, so a run
that fails at once leaves an existing file as it was. SIGINT and SIGTERM cancel the main task,
and a task is only cancelled where it awaits, never in the middle of writing a page.

Everything that reads a file or the terminal before the stream (the arguments' paths, the state
file, the password) is done before the event loop starts: a Ctrl-C there is a plain
KeyboardInterrupt, which `main` turns into exit 130 like any other.

Only the public API of `dfs_async` (and `dfs_async.testing` for `--emulate`) is used here;
`rich` is imported only when a progress display is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import errno
import io
import json
import logging
import os
import re
import signal
import stat
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, Protocol

import attrs

import dfs_async
from dfs_async import (
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidArgumentError,
    InvalidRequestError,
    PagerState,
    RateLimitedError,
    Retry,
    ServerError,
    Stats,
    TaskError,
    TaskId,
    TransportError,
    _cli_lock,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

    from dfs_async import Client, Pager
    from dfs_async.testing import Emulator

__all__ = ["main"]

UTC = timezone.utc

EXIT_OK = 0
EXIT_FAILURE = 1  # anything else: an I/O error on the output or the state file, a bug
EXIT_USAGE = 2
EXIT_AUTH = 3  # the credentials: login and API password, or the proxy's (HTTP 407)
EXIT_UNAVAILABLE = 4
EXIT_ACCOUNT = 5  # the account was refused (payment, cost limit, subscription, IP whitelist)
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's convention for death by SIGINT
EXIT_BROKEN_PIPE = 128 + 13  # 141: the reader of stdout went away (SIGPIPE's number)

#: For tests only: an ISO 8601 time that the clock of --emulate (the emulator's, the client's
#: and the "now" of relative dates) stands still at, instead of following the real time.
EMULATE_NOW_ENV = "DFS_ASYNC_EMULATE_NOW"
#: The demo's tasks lie over this many days before the export's start: six calendar months are
#: at most 184 days, so every window the API accepts then finds data all through.
EMULATOR_DAYS = 186
EMULATOR_LOGIN = "demo@example.com"
EMULATOR_PASSWORD = "demo"  # noqa: S105 -- the emulator's throwaway credential, not a secret
EMULATOR_TASKS = 50_000
EMULATOR_ERRORS = 2_000
EMULATOR_RATE = (10, 1.0)
REAL_RATE = (10, 60.0)
DEFAULT_RETRIES = Retry().attempts - 1

DEFAULT_API = "backlinks"

STATE_FORMAT = 1

_DATE_EXAMPLES = "2026-11-01, 2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z"
_RELATIVE_EXAMPLES = "30d, 12h, 2w, 90m or now"
DATES_HELP = (
    f"Dates are ISO 8601 ({_DATE_EXAMPLES}) or the API's own form (2026-11-01 12:00:00 +00:00). "
    "A date or time without a zone is UTC. Or relative: a whole number and m, h, d or w "
    "(minutes, hours, days, weeks) means that long before now, as in --from 30d or --from 90m; "
    "'now' is now. Now is read once, when the command starts; an export resumed from its "
    "state file keeps the first run's."
)

logger = logging.getLogger("dfs_async")


class CliError(Exception):
    """A failure with its exit code and a one-line message for stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- pure helpers ------------------------------------------------------------------------------

_WHEN = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?"
    r" ?(?P<zone>[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"
)


_RELATIVE = re.compile(r"(?P<count>[0-9]{1,12})(?P<unit>[mhdw])|now")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

#: A parsed --from/--to: a moment, or how long before "now" (which is read later, once).
When = datetime | timedelta


def parse_when_spec(text: str) -> When:
    """A command-line date or time: an aware UTC datetime, or a timedelta before "now".

    Accepts ISO 8601 dates and times (``T`` or a blank between them, ``Z`` or ``+HH:MM``), the
    API's ``YYYY-MM-DD HH:MM:SS +00:00`` (no zone means UTC), ``30d``, ``12h``, ``2w``,
    ``90m`` and ``now``. Raises ValueError with a readable reason.
    """
    relative = _RELATIVE.fullmatch(text.strip())
    if relative is not None:
        if relative.group("unit") is None:
            return timedelta(0)
        try:
            return timedelta(**{_UNITS[relative.group("unit")]: int(relative.group("count"))})
        except OverflowError:
            raise ValueError(f"{text!r} reaches too far back") from None
    match = _WHEN.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a date: use ISO 8601 such as {_DATE_EXAMPLES}, or "
            f"{_RELATIVE_EXAMPLES}; without a zone it is UTC"
        )
    part = match.groupdict()
    zone = UTC
    if part["zone"] is not None and part["zone"] not in "Zz":
        digits = part["zone"].replace(":", "")
        offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
        try:
            zone = timezone(-offset if digits[0] == "-" else offset)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date: bad zone offset") from None
    try:
        moment = datetime(
            int(part["year"]),
            int(part["month"]),
            int(part["day"]),
            int(part["hour"] or 0),
            int(part["minute"] or 0),
            int(part["second"] or 0),
            int((part["fraction"] or "0").ljust(6, "0")),
            tzinfo=zone,
        )
        # Inside the try: 0001-01-01T00:00+01:00 is a valid local time but before year 1 in UTC.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def resolve_when(when: When, now: datetime) -> datetime:
    """The moment `when` names, a relative one read against `now`; ValueError if out of range."""
    if isinstance(when, datetime):
        return when
    try:
        return now - when
    except OverflowError:
        raise ValueError(f"{_ago(when)} before {now.isoformat()} is before the year 1") from None


def _ago(when: timedelta) -> str:
    return f"{when.days} days" if not when.seconds else str(when)


def parse_when(text: str, *, now: datetime) -> datetime:
    """`parse_when_spec` and `resolve_when` in one: the moment `text` names at `now`."""
    return resolve_when(parse_when_spec(text), now)


def parse_rate(text: str) -> tuple[int, float]:
    """``CALLS/SECONDS`` (``10/2``) as a pair; raises ValueError otherwise."""
    calls, sep, seconds = text.partition("/")
    try:
        rate = (int(calls), float(seconds))
    except ValueError:
        rate = (0, 0.0)
    if not sep or rate[0] < 1 or not 0 < rate[1] < float("inf"):
        raise ValueError(f"{text!r} is not a rate: expected CALLS/SECONDS such as 10/2")
    return rate


# The library names its arguments as Python does; on the command line they are options.
_WORDING = (
    (re.compile(r"; pass None for 'now'"), "; omit --to for 'now'"),
    (re.compile(r"\binclude_metadata=True\b"), "--metadata"),
    (re.compile(r"\bdatetime_from\b"), "--from"),
    (re.compile(r"\bdatetime_to\b"), "--to"),
    (re.compile(r"\bpage_size\b"), "--page-size"),
    (re.compile(r"\bmax_items\b"), "--max-items"),
    (re.compile(r"\bfiltered_function\b"), "--function"),
    (re.compile(r"\b(?:the|this) resume state\b"), "the state file"),
    (re.compile(r"^proxy must\b"), "--proxy must"),
)


def cli_wording(message: str) -> str:
    """A library message with its argument names replaced by the matching options."""
    for pattern, replacement in _WORDING:
        message = pattern.sub(replacement, message)
    return message


def classify(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an exception that ends the command."""
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
    if isinstance(exc, TransportError):
        return EXIT_UNAVAILABLE, f"no answer from the API after retrying: {exc}"
    if isinstance(exc, DecodeError):
        return EXIT_UNAVAILABLE, f"the API sent a reply that cannot be read: {exc}"
    if isinstance(exc, APIError):
        return EXIT_UNAVAILABLE, f"the API answered with an error: {exc}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_FAILURE, f"{where}{exc.strerror or exc}"
    return EXIT_FAILURE, f"unexpected {type(exc).__name__}: {exc} (--debug shows a traceback)"


#: The environment variables a proxy (with its credentials) may come from, in lower case.
_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def _userinfo(url: str) -> str | None:
    """The ``USER:PASSWORD`` of a URL, None without one (plain string work, so a URL too
    broken to parse still has its credentials found)."""
    rest = url.partition("://")[2] or url
    # The authority ends at the first / ? or #, none of which credentials hold unescaped.
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    userinfo, at, _host = rest[:end].rpartition("@")
    return userinfo if at else None


def proxy_secrets(proxy: str | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every text that would give away a proxy's credentials, longest first.

    For --proxy and the proxy variables of the environment (the client may use either): the
    password as written and percent-decoded, and the Proxy-Authorization token made of them,
    since a proxy's error page may quote either. Without a password (``http://TOKEN@host``)
    the user name is the secret.
    """
    urls = [proxy] + [value for name, value in environ.items() if name.lower() in _PROXY_VARIABLES]
    found: set[str] = set()
    for url in urls:
        userinfo = None if url is None else _userinfo(url)
        if not userinfo:
            continue
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        found.update({secret, urllib.parse.unquote(secret)})
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        for encoding in ("latin-1", "utf-8"):  # aiohttp's, and what else a proxy may expect
            with contextlib.suppress(UnicodeEncodeError):
                found.add(base64.b64encode(pair.encode(encoding)).decode("ascii"))
    return tuple(sorted((text for text in found if text), key=len, reverse=True))


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with each of `secrets` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes} min {rest} s"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}"


def summary_line(*, records: int, earlier: int, pages: int, stats: Stats, elapsed: float) -> str:
    """``2,500 records in 3 pages, 3 calls, 0.0 s rate-limit wait, 1.2 s``."""
    text = _plural(records, "record")
    if earlier:
        text += f" ({earlier + records:,} with the earlier runs)"
    calls = _plural(stats.calls, "call")
    if stats.retries:
        calls += f" ({_plural(stats.retries, 'retry', 'retries')})"
    wait = "rate-limit and retry wait" if stats.retries else "rate-limit wait"
    return (
        f"{text} in {_plural(pages, 'page')}, {calls}, "
        f"{stats.seconds_waited:.1f} s {wait}, {_duration(elapsed)}"
    )


def progress_line(
    *,
    records: int,
    calls: int,
    waited: float,
    elapsed: float,
    percent: float | None = None,
    remaining: float | None = None,
) -> str:
    """The live line: ``42% 840 records · 1 call · 0:00:03 (0:00:01 waiting) · ETA 0:00:04``.

    The percentage and the ETA come only with --max-items (the API gives no total). Below ten
    million records and ten hours it takes at most 78 columns, so it fits an 80-column terminal.
    """
    text = (
        f"{_plural(records, 'record')} · {_plural(calls, 'call')} · "
        f"{_clock(elapsed)} ({_clock(waited)} waiting)"
    )
    if percent is None:
        return text
    eta = "-:--:--" if remaining is None else _clock(remaining)
    return f"{percent:.0f}% {text} · ETA {eta}"


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def _compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


# With ensure_ascii=False, json.dumps leaves these as they are, yet str.splitlines() (and
# readers built on it) breaks a line at each: escaped, a record stays on its one line.
_LINE_BREAKS_IN_STRINGS = str.maketrans(
    {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
)


def field_names(record_type: type[attrs.AttrsInstance]) -> list[str]:
    """The output columns: the record's fields, in their declared order."""
    return [field.name for field in attrs.fields(record_type)]


def jsonl_lines(records: Sequence[attrs.AttrsInstance]) -> str:
    """One JSON object per record and line; ISO 8601 datetimes, null for None."""
    return "".join(
        _compact_json(attrs.asdict(record, recurse=False)).translate(_LINE_BREAKS_IN_STRINGS) + "\n"
        for record in records
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return _compact_json(value)
    return str(value)


def csv_rows(records: Sequence[attrs.AttrsInstance], header: Sequence[str] | None = None) -> str:
    """CSV text (CRLF line ends, RFC 4180) of the records, after a header row if given."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    if header is not None:
        writer.writerow(header)
    for record in records:
        writer.writerow([_cell(value) for value in attrs.astuple(record, recurse=False)])
    return buffer.getvalue()


# -- options -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line error form (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        raise CliError(EXIT_USAGE, f"{message} (see '{self.prog} --help')")


def _when(text: str) -> When:
    try:
        return parse_when_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> tuple[int, float]:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        return int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _common_options() -> _Parser:
    common = _Parser(add_help=False)
    output = common.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default=None,  # left out: a continued export keeps its own (see _FROM_STATE)
        help="JSON Lines (default) or CSV with a header row",
    )
    output.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    output.add_argument(
        "--state",
        metavar="FILE",
        help="(needs -o) save the position after every page; the same command with the same "
        "FILE continues where an interrupted run stopped, appending to -o; a finished export "
        "stays marked done, so running it again writes nothing",
    )
    output.add_argument("--max-items", type=_count, metavar="N", help="stop after N records")
    output.add_argument(
        "--page-size", type=_count, default=1000, metavar="N", help="records per call (1-1000)"
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    output.add_argument(
        "--debug",
        action="store_true",
        help="log the client's work to stderr and show tracebacks",
    )
    add_account_options(common)
    return common


def add_account_options(common: argparse.ArgumentParser) -> None:
    """The account and --emulate options every command shares."""
    account = common.add_argument_group(
        "account",
        "Credentials come from DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD, or --login and "
        "--password-file. A password is never taken on the command line.",
    )
    account.add_argument("--login", help="the API login (default: $DATAFORSEO_LOGIN)")
    account.add_argument(
        "--password-file",
        metavar="FILE",
        help="read the API password from the first line of FILE ('-': standard input)",
    )
    account.add_argument(
        "--api",
        default=None,  # left out: a continued export keeps its own (see _FROM_STATE)
        help=f"which DataForSEO API's endpoint (default {DEFAULT_API}; also serp, merchant, ...)",
    )
    account.add_argument(
        "--base-url",
        metavar="URL",
        default=dfs_async.DEFAULT_BASE_URL,
        help=f"the API's address (default {dfs_async.DEFAULT_BASE_URL}; the sandbox is "
        f"{dfs_async.SANDBOX_BASE_URL})",
    )
    account.add_argument(
        "--proxy",
        metavar="URL",
        help="send the calls through this HTTP proxy, e.g. http://user:pass@proxy:3128 "
        "(default: HTTPS_PROXY / HTTP_PROXY unless NO_PROXY names the host); its "
        "credentials are never printed",
    )
    account.add_argument(
        "--retries",
        type=_count,
        default=DEFAULT_RETRIES,
        metavar="N",
        help="try a call that failed for a transient reason (server trouble, no answer) up "
        f"to N more times, with growing waits, before giving up (default {DEFAULT_RETRIES})",
    )
    demo = common.add_argument_group(
        "demo",
        "--emulate runs the command against the built-in emulator on the real clock: no "
        "account, synthetic data over the six months before the command started (a resumed "
        "export sees the same records again: its state file keeps that moment).",
    )
    demo.add_argument("--emulate", action="store_true", help="use the built-in emulator")
    demo.add_argument(
        "--emulate-rate",
        type=_rate,
        metavar="CALLS/SECONDS",
        help=f"its rate limit, and the client's (default {EMULATOR_RATE[0]}/"
        f"{EMULATOR_RATE[1]:g}; the real API allows {REAL_RATE[0]}/{REAL_RATE[1]:g})",
    )
    demo.add_argument(
        "--emulate-tasks",
        type=_count,
        default=EMULATOR_TASKS,
        metavar="N",
        help=f"synthetic tasks (default {EMULATOR_TASKS:,})",
    )
    demo.add_argument(
        "--emulate-errors",
        type=_count,
        default=EMULATOR_ERRORS,
        metavar="N",
        help=f"synthetic errors entries (default {EMULATOR_ERRORS:,})",
    )


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 other failure (writing a file); 2 bad arguments or state file, or "
    "another run is writing the same -o or --state file; 3 authentication failed (login or "
    "API password, or the proxy's credentials); 4 rate limit or server trouble that outlasted "
    "the retries, or an unreadable reply; 5 the API refused the account (payment required, "
    "cost limit, subscription, IP not whitelisted); 130 interrupted (Ctrl-C); 141 the reader "
    "of standard output went away; 143 terminated (SIGTERM)."
)


def _window(*, reach: str, inside: str) -> tuple[_Parser, argparse._ArgumentGroup]:
    """A parent parser with --from and --to, and its group, where each command adds more."""
    window = _Parser(add_help=False)
    group = window.add_argument_group("window")
    group.add_argument(
        "--from",
        dest="when_from",
        type=_when,
        metavar="WHEN",
        help=f"start (at most {reach} back: {inside}); no zone means UTC; also 30d, 12h, 2w, "
        "90m (that long before now); with --state of an earlier export, omitted options come "
        "from it",
    )
    group.add_argument(
        "--to",
        dest="when_to",
        type=_when,
        metavar="WHEN",
        help="end (default: now, fixed when the command starts); no zone means UTC; "
        "also now or 2h (that long before now)",
    )
    return window, group


def build_parser() -> argparse.ArgumentParser:
    """The `dfs-async` argument parser."""
    parser = _Parser(
        prog="dfs-async",
        description="Export DataForSEO task ids (id_list) or errors to JSON Lines or CSV, "
        "within the API's rate limit, resumable. " + DATES_HELP,
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"dfs-async {dfs_async.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()

    id_list, group = _window(
        reach="six months, one month with --metadata",
        inside="180d and 27d are inside on any date",
    )
    group.add_argument(
        "--sort", choices=("asc", "desc"), default="asc", help="oldest first (asc, default)"
    )
    group.add_argument(
        "--metadata", action="store_true", help="include each task's parameters (metadata)"
    )
    commands.add_parser(
        "id-list",
        parents=[id_list, common],
        help="every task of the account between two times",
        description="Every task of the account between --from and --to (POST "
        "/v3/{api}/id_list), oldest first. " + DATES_HELP,
        epilog=EXIT_CODES_HELP,
    )
    # 7d would be past the limit by the time of the call, which is a moment after "now".
    errors, group = _window(reach="seven days", inside="6d, not 7d")
    group.add_argument(
        "--function", metavar="NAME", help="only this function's errors, e.g. backlinks/live"
    )
    commands.add_parser(
        "errors",
        parents=[errors, common],
        help="tasks that answered with an error in the last seven days",
        description="Tasks that answered with an error (POST /v3/{api}/errors), newest "
        "first, within the last seven days. " + DATES_HELP,
        epilog=EXIT_CODES_HELP,
    )
    from . import _cli_resend  # a command in a module of its own; it imports this one

    _cli_resend.add_parser(commands)
    return parser


@attrs.frozen(kw_only=True)
class Options:
    """The parsed command line."""

    command: str
    #: --from and --to as given (a relative one is read against `started`) ...
    when_from: When | None = None
    when_to: When | None = None
    #: ... and the moments they name.
    datetime_from: datetime | None = None
    datetime_to: datetime | None = None
    #: "Now" when the export started: the base of relative dates and of the demo's data.
    started: datetime = attrs.field(factory=lambda: datetime.now(UTC).replace(microsecond=0))
    sort: str = "asc"
    metadata: bool = False
    function: str | None = None
    format: str
    output: str | None
    state: str | None
    max_items: int | None
    page_size: int
    quiet: bool
    debug: bool
    login: str | None
    password_file: str | None
    api: str
    base_url: str
    retries: int
    #: The options of _FROM_STATE that were left out: a state file being continued supplies
    #: them (Export.prepare); meanwhile they hold their defaults.
    omitted: frozenset[str] = frozenset()
    emulate: bool
    emulate_rate: tuple[int, float] | None
    emulate_tasks: int
    emulate_errors: int
    proxy: str | None = attrs.field(default=None, repr=False)  # may carry credentials

    def at(self, started: datetime) -> Options:
        """These options with "now" at `started`; CliError (exit 2) if a date is out of range."""
        try:
            start = None if self.when_from is None else resolve_when(self.when_from, started)
            end = None if self.when_to is None else resolve_when(self.when_to, started)
        except ValueError as exc:
            raise CliError(EXIT_USAGE, f"{exc} (see 'dfs-async {self.command} --help')") from None
        return attrs.evolve(self, started=started, datetime_from=start, datetime_to=end)


def command_now(emulate: bool, environ: Mapping[str, str]) -> datetime:
    """The command's "now", whole seconds: the real time, or under --emulate a pinned one."""
    pinned = environ.get(EMULATE_NOW_ENV) if emulate else None
    if pinned:
        try:
            moment = parse_when_spec(pinned)
        except ValueError:
            moment = timedelta(0)
        if not isinstance(moment, datetime):
            raise CliError(EXIT_USAGE, f"${EMULATE_NOW_ENV} is not a date: {pinned!r}")
        return moment.replace(microsecond=0)
    return datetime.now(UTC).replace(microsecond=0)


def parse_options(argv: Sequence[str] | None) -> Options:
    """Parse and cross-check the arguments; raises CliError (exit 2) on a mistake."""
    return options_from(build_parser().parse_args(argv))


#: Options that, left out, come from the state file of an export being continued (as the
#: window does, through the saved request), with their defaults for a new export.
_FROM_STATE = {"format": "jsonl", "api": DEFAULT_API}


def options_from(namespace: argparse.Namespace) -> Options:
    """The options of `id-list` or `errors` from their parsed arguments, cross-checked."""
    values = vars(namespace)
    # Each command has only its own options: the others keep their defaults.
    known: dict[str, Any] = {}
    for field in attrs.fields(Options):
        if field.name in values or field.default is attrs.NOTHING:
            known[field.name] = values.get(field.name, field.default)
    if known.get("output") == "-":  # the usual spelling of standard output
        known["output"] = None
    omitted = frozenset(name for name in _FROM_STATE if known.get(name) is None)
    known.update({name: _FROM_STATE[name] for name in omitted}, omitted=omitted)
    options = Options(**known)
    options = options.at(command_now(options.emulate, os.environ))
    problem = common_problem(options)
    if options.command == "id-list" and options.when_from is None and options.state is None:
        problem = "the following arguments are required: --from (or --state of an earlier export)"
    if options.state is not None:
        if options.output is None:
            problem = (
                "--state needs -o FILE: standard output cannot be cut back to the last saved "
                "page, so a resumed export could lose or repeat records"
            )
        elif _same_file(options.output, options.state):
            problem = "-o and --state name the same file; the state needs a file of its own"
    if problem is not None:
        raise CliError(EXIT_USAGE, f"{problem} (see 'dfs-async {options.command} --help')")
    return options


def common_problem(options: Options) -> str | None:
    """What is wrong with the account and --emulate options, if anything."""
    problem = None
    if not options.emulate:
        if options.emulate_rate is not None:
            problem = "--emulate-rate needs --emulate"
        elif options.emulate_tasks != EMULATOR_TASKS or options.emulate_errors != EMULATOR_ERRORS:
            problem = "--emulate-tasks and --emulate-errors need --emulate"
    elif options.base_url != dfs_async.DEFAULT_BASE_URL:
        problem = "--base-url and --emulate do not go together"
    elif options.proxy is not None:
        problem = "--proxy and --emulate do not go together"
    if options.emulate_tasks < 0 or options.emulate_errors < 0:
        problem = "--emulate-tasks and --emulate-errors must be at least 0"
    if options.retries < 0:
        problem = "--retries must be at least 0"
    return problem


def _same_file(first: str, second: str) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)  # hard links, bind mounts
    except OSError:  # either does not exist (yet): then only the names can tell
        return False


# -- files: checked before anything runs -------------------------------------------------------


@attrs.frozen
class StateFile:
    """--state FILE (as given) and the absolute path of the -o file it belongs to."""

    path: str
    output: str


def check_files(options: Options) -> StateFile | None:
    """Fail now (exit 2), not after the first call, if -o or --state cannot be written.

    The output is written in place (a new file needs a writable directory); the state file is
    replaced by a rename, so its directory must be writable even when the file exists.
    """
    if options.output is None:
        if sys.stdout is None:  # started with stdout closed (>&-)
            raise CliError(EXIT_USAGE, "standard output is closed; pass -o FILE")
    else:
        _check_writable("-o", options.output, replaced=False)
    if options.state is None or options.output is None:  # parse_options: --state needs -o
        return None
    if _is_stream(options.output):
        raise CliError(
            EXIT_USAGE,
            f"--state needs -o to be a regular file, and {options.output} is not: a pipe or "
            "device cannot be cut back to the last saved page",
        )
    _check_writable("--state", options.state, replaced=True)
    return StateFile(options.state, os.path.abspath(options.output))


def _is_stream(path: str) -> bool:
    """Whether `path` exists and is not a regular file (a FIFO, a terminal, /dev/null)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _check_writable(option: str, path: str, *, replaced: bool) -> None:
    if os.path.isdir(path):
        raise CliError(EXIT_USAGE, f"{option} {path}: is a directory")
    if not replaced and os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise CliError(EXIT_USAGE, f"{option} {path}: not writable")
        return
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise CliError(EXIT_USAGE, f"{option} {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CliError(EXIT_USAGE, f"{option} {path}: cannot create files in {directory}")


# -- credentials -------------------------------------------------------------------------------


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


# -- state file --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SavedState:
    """What the state file holds: the stream's position and the output it was written to."""

    stream: PagerState
    format: str
    #: The output file's absolute path.
    output: str
    #: The output's size when the state was saved.
    output_bytes: int
    #: "Now" when the export started (None in a file from before it was kept): a resumed run
    #: reads relative dates against it, and --emulate lays out the same data again.
    started: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dfs_async_cli": STATE_FORMAT,
            "format": self.format,
            "output": self.output,
            "output_bytes": self.output_bytes,
            **({} if self.started is None else {"started": self.started.isoformat()}),
            # Exactly what PagerState.to_json() gives, so library code can resume from it too.
            "stream": self.stream.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> SavedState:
        if not isinstance(data, dict) or data.get("dfs_async_cli") != STATE_FORMAT:
            raise ValueError(f"not a dfs-async state file (format {STATE_FORMAT})")
        fmt, output, size = data.get("format"), data.get("output"), data.get("output_bytes")
        stream = data.get("stream")
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"bad format {fmt!r}")
        if not isinstance(output, str):
            raise ValueError(f"bad output {output!r}")
        if not (type(size) is int and size >= 0):
            raise ValueError(f"bad output_bytes {size!r}")
        if not isinstance(stream, dict):
            raise ValueError(f"bad stream {stream!r}")
        started = data.get("started")
        if started is not None:
            try:
                started = datetime.fromisoformat(started).astimezone(UTC)
            except (TypeError, ValueError):
                raise ValueError(f"bad started {started!r}") from None
        return cls(
            stream=PagerState.from_json(stream),
            format=fmt,
            output=output,
            output_bytes=size,
            started=started,
        )


def load_state(path: str) -> SavedState | None:
    """The saved state, None if the file does not exist; CliError (exit 2) if unreadable."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        return SavedState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CliError(EXIT_USAGE, f"bad state file {path}: {reason}") from None


class JsonDocument(Protocol):
    """What `save_state` writes: anything that gives its JSON form."""

    def to_json(self) -> dict[str, Any]: ...


def save_state(path: str, saved: JsonDocument, *, fsync: Callable[[int], None] = os.fsync) -> None:
    """Replace the state file atomically: a crash leaves the old state or the new, whole.

    CliError (exit 1) naming --state if it cannot be written.
    """
    target = os.path.abspath(path)
    replaced = False
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=os.path.basename(target) + ".", suffix=".tmp", dir=os.path.dirname(target)
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(saved.to_json(), file, indent=1)
                file.write("\n")
                file.flush()
                fsync(file.fileno())
            os.replace(temporary, target)
            replaced = True
            # The rename lives in the directory: until it is synced, a power failure can
            # bring back the old state (or none) although the output already moved on.
            _fsync_directory(os.path.dirname(target), fsync)
        finally:
            if not replaced:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
    except OSError as exc:
        raise CliError(EXIT_FAILURE, f"--state {path}: {exc.strerror or exc}") from exc


def _fsync_directory(directory: str, fsync: Callable[[int], None]) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fsync(fd)
    finally:
        os.close(fd)


# -- output ------------------------------------------------------------------------------------


def _check_output_size(state_file: StateFile, saved: SavedState) -> int:
    """The output's size now; CliError (exit 2) if it lost bytes the state file counts."""
    try:
        size = os.path.getsize(saved.output)
    except FileNotFoundError:
        size = 0
    except OSError as exc:
        raise CliError(EXIT_FAILURE, f"writing {saved.output}: {exc.strerror or exc}") from exc
    if size < saved.output_bytes:
        raise CliError(
            EXIT_USAGE,
            f"{saved.output} holds {size:,} bytes, fewer than the {saved.output_bytes:,} the "
            f"state file {state_file.path} records: it was changed since; delete the state "
            "file to start again",
        )
    return size


def _open_for_writing(name: str) -> BinaryIO:
    """Open -o for writing, truncated; a FIFO without a reader fails at once (ENXIO).

    A plain open() of such a FIFO blocks the event loop's thread until a reader comes, and no
    signal handler of the loop can run meanwhile: Ctrl-C and SIGTERM would go unanswered.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(name, flags | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise CliError(
                EXIT_FAILURE, f"writing {name}: it is a pipe (FIFO) and nothing is reading it"
            ) from None
        raise
    # Writes block again as usual (a slow reader slows the export, never loses a page).
    os.set_blocking(fd, True)
    return open(fd, "wb")


@attrs.define
class Output:
    """Where records go: standard output or a file, written a whole page at a time."""

    stream: BinaryIO
    format: str
    #: How messages name it: the -o FILE as given, or "standard output".
    name: str
    size: int
    _owned: bool
    #: os.fsync, or a test's recorder.
    _fsync: Callable[[int], None] = os.fsync

    @classmethod
    def to_stdout(cls, fmt: str, columns: Sequence[str]) -> Output:
        if sys.stdout is None:  # closed meanwhile; check_files refuses a run started so
            raise CliError(EXIT_FAILURE, "standard output is closed; pass -o FILE")
        output = cls(sys.stdout.buffer, fmt, "standard output", 0, owned=False)
        if fmt == "csv":
            output.write(csv_rows((), header=columns))
        return output

    @classmethod
    def to_file(
        cls,
        name: str,
        fmt: str,
        columns: Sequence[str],
        resume: tuple[StateFile, SavedState] | None,
        *,
        fsync: Callable[[int], None] = os.fsync,
    ) -> Output:
        """A fresh file (with the CSV header), or the resumed one, cut back to the saved size.

        A fresh regular file's directory is synced: its data is synced after every page, but
        its name lives in the directory, and a state file that survives a power failure must
        find the output it counts.
        """
        try:
            if resume is None:
                output = cls(_open_for_writing(name), fmt, name, 0, owned=True, fsync=fsync)
                if stat.S_ISREG(os.fstat(output.stream.fileno()).st_mode):
                    _fsync_directory(os.path.dirname(os.path.abspath(name)), fsync)
            else:
                output = cls._reopen(name, fmt, *resume)
        except OSError as exc:
            raise CliError(EXIT_FAILURE, f"writing {name}: {exc.strerror or exc}") from exc
        if output.size == 0 and fmt == "csv":
            output.write(csv_rows((), header=columns))
        return output

    @classmethod
    def _reopen(cls, name: str, fmt: str, state_file: StateFile, saved: SavedState) -> Output:
        size = _check_output_size(state_file, saved)
        if size > saved.output_bytes:
            # Written after the last saved state (a run killed between the two writes).
            _say(
                f"dfs-async: warning: {saved.output}: dropping {size - saved.output_bytes:,} "
                "bytes written after the saved state"
            )
            os.truncate(saved.output, saved.output_bytes)
        return cls(open(saved.output, "ab"), fmt, name, saved.output_bytes, owned=True)

    def write(self, text: str) -> None:
        """Write, flush and (for a file) fsync, so a saved state never runs ahead of it."""
        data = text.encode("utf-8")
        try:
            self.stream.write(data)
            self.stream.flush()
            if self._owned and stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode):
                self._fsync(self.stream.fileno())
        except BrokenPipeError:  # the reader of stdout went away: exit 141, not an error
            raise
        except OSError as exc:
            if not self._owned:  # or the interpreter's last flush of stdout fails once more
                _silence_stdout()
            raise CliError(EXIT_FAILURE, f"writing {self.name}: {exc.strerror or exc}") from exc
        self.size += len(data)

    def write_records(self, records: Sequence[attrs.AttrsInstance]) -> None:
        if records:
            self.write(jsonl_lines(records) if self.format == "jsonl" else csv_rows(records))

    def close(self) -> None:
        if self._owned:
            # Every write was flushed, so closing has nothing left to write unless a write
            # failed: then flushing again would fail again and hide that failure's message.
            with contextlib.suppress(OSError):
                self.stream.close()


# -- progress ----------------------------------------------------------------------------------


def _no_calls_yet() -> Stats:
    return Stats()


@attrs.define
class Counters:
    """What this run has done so far, for the progress display and the summary."""

    started: float = attrs.field(factory=time.monotonic)
    records: int = 0
    earlier: int = 0
    pages: int = 0
    #: The client's counters, once there is a client.
    stats: Callable[[], Stats] = _no_calls_yet

    def summary(self) -> str:
        return summary_line(
            records=self.records,
            earlier=self.earlier,
            pages=self.pages,
            stats=self.stats(),
            elapsed=time.monotonic() - self.started,
        )


class Display:
    """The live progress line on a terminal (rich); does nothing when switched off."""

    def __init__(self, counters: Counters, *, enabled: bool) -> None:
        self._counters = counters
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        #: The terminal, when the display is on (rich is imported only then).
        self.console: Console | None = None
        if enabled:
            try:
                from rich.console import Console
            except ImportError:  # the `cli` extra is not installed: plain output only
                pass
            else:
                self.console = Console(stderr=True)

    def start(self, total: int | None) -> None:
        """Show the display; `total` (with --max-items) gives a percentage and an ETA."""
        if self.console is None:
            return
        from rich.progress import Progress, ProgressColumn
        from rich.text import Text

        counters = self._counters

        class Status(ProgressColumn):
            def render(self, task: Task) -> Text:
                known = task.total is not None
                line = progress_line(
                    records=counters.records + counters.earlier,
                    calls=counters.stats().calls,
                    waited=counters.stats().seconds_waited,
                    elapsed=time.monotonic() - counters.started,
                    percent=task.percentage if known else None,
                    remaining=task.time_remaining if known else None,
                )
                # One row whatever the width: cut short on a narrow terminal, never wrapped.
                return Text(line, no_wrap=True, overflow="ellipsis")

        self._progress = Progress(
            Status(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("export", total=total, completed=counters.earlier)

    def update(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=self._counters.records + self._counters.earlier
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the export --------------------------------------------------------------------------------


def _emulator_clock(environ: Mapping[str, str]) -> Callable[[], datetime]:
    """The clock of --emulate: the real time, or the one $DFS_ASYNC_EMULATE_NOW pins (tests)."""
    if environ.get(EMULATE_NOW_ENV):
        pinned = command_now(True, environ)
        return lambda: pinned
    return lambda: datetime.now(UTC)


def _emulator_notice(options: Options, emulator: Emulator, rate: tuple[int, float]) -> str:
    if options.command == "id-list":
        tasks = emulator.tasks
        data = f"{options.emulate_tasks:,} synthetic tasks"
        if len(tasks):
            first, last = tasks[0]["datetime_posted"][:10], tasks[-1]["datetime_posted"][:10]
            data += f" posted {first} to {last}"
        real = f"the real API allows {REAL_RATE[0]} / {REAL_RATE[1]:g} s"
    else:
        errors = emulator.errors
        data = f"{options.emulate_errors:,} synthetic errors"
        if errors:
            data += f" from {errors[-1]['datetime'][:10]} to {errors[0]['datetime'][:10]}"
        real = f"the client assumes {REAL_RATE[0]} / {REAL_RATE[1]:g} s for the real API"
    return (
        f"emulator: {data}, laid out before {options.started:%Y-%m-%d %H:%M:%S} UTC (when this "
        f"export started); rate limit shortened to {_plural(rate[0], 'call')} / {rate[1]:g} s "
        f"({real})"
    )


def _open_pager(
    client: Client, options: Options, resume: PagerState | None
) -> Pager[TaskId] | Pager[TaskError]:
    api = client.api(options.api)
    # An omitted --to is "now", fixed at the start: for a resumed stream, the saved end.
    end = options.datetime_to
    if end is None and resume is None:
        end = client.now()
    if options.command == "id-list":
        return api.id_list(
            options.datetime_from,
            end,
            sort=options.sort,
            include_metadata=options.metadata,
            page_size=options.page_size,
            max_items=options.max_items,
            resume=resume,
        )
    return api.errors(
        options.function,
        datetime_from=options.datetime_from,
        datetime_to=end,
        page_size=options.page_size,
        max_items=options.max_items,
        resume=resume,
    )


def _left_out_from(saved: SavedState, options: Options) -> Options:
    """`options` with those left out (`options.omitted`) taken from the state file."""
    omitted = options.omitted
    return attrs.evolve(
        options,
        format=saved.format if "format" in omitted else options.format,
        api=saved.stream.api if "api" in omitted else options.api,
    )


def _check_resume(options: Options, state_file: StateFile, saved: SavedState) -> None:
    if saved.format != options.format:
        raise CliError(
            EXIT_USAGE,
            f"the state file {state_file.path} is for --format {saved.format}, not "
            f"{options.format}; use the same options, or delete it to start again",
        )
    if saved.output != state_file.output:
        raise CliError(
            EXIT_USAGE,
            f"the state file {state_file.path} is for an export to -o {saved.output}; use the "
            "same options, or delete it to start again",
        )
    _check_output_size(state_file, saved)


@attrs.define
class Export:
    """One run of `id-list` or `errors`: open, stream page by page, save the state."""

    options: Options
    counters: Counters
    display: Display
    state_file: StateFile | None
    #: The state file and what it held when the run started (None: a fresh export).
    resume: tuple[StateFile, SavedState] | None = None
    #: Never in the repr: a traceback or a log line must not show the password.
    credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    #: Set once the request (and any saved state) was accepted: a failure from then on is in
    #: the stream, which the state file, if there is one, lets the next run continue.
    stream_opened: bool = False
    #: Set once the first page was written: the summary is worth printing from then on.
    started_stream: bool = False
    #: What --emulate tells the user, once the arguments have been accepted.
    notice: str | None = None

    def prepare(self) -> None:
        """Read the state file and the credentials: blocking reads, before the event loop."""
        if self.state_file is not None:
            saved = load_state(self.state_file.path)
            if saved is not None:
                self.options = _left_out_from(saved, self.options)
                _check_resume(self.options, self.state_file, saved)
                self.resume = (self.state_file, saved)
                if saved.started is not None:
                    # The first run's "now": relative dates name the same window again.
                    self.options = self.options.at(saved.started)
        options = self.options
        if self.resume is None and options.command == "id-list" and options.when_from is None:
            raise CliError(
                EXIT_USAGE,
                f"--from is required: the state file {options.state} does not exist yet, so "
                "there is no earlier export to continue",
            )
        if not self.options.emulate:
            self.credentials = credentials(self.options, os.environ)

    async def run(self) -> int:
        options = self.options
        resume = None if self.resume is None else self.resume[1].stream
        async with contextlib.AsyncExitStack() as stack:
            client = await self._client(stack)
            self.counters.stats = lambda: client.stats
            pager = _open_pager(client, options, resume)
            stack.push_async_callback(pager.aclose)
            self.stream_opened = True
            state = pager.state  # where it starts: a resumed stream may be finished already
            if self.notice is not None and not options.quiet:
                _say(self.notice)
            if self.resume is not None:
                state_file = self.resume[0].path
                self.counters.earlier = state.yielded
                if state.done:
                    if not options.quiet:
                        _say(
                            f"nothing to do: the state file {state_file} records a finished "
                            f"export ({_plural(state.yielded, 'record')}); delete it to export "
                            "again"
                        )
                    return EXIT_OK
                if not options.quiet:
                    _say(
                        f"resuming from {state_file}: "
                        f"{_plural(state.yielded, 'record')} already written"
                    )
            self.display.start(options.max_items)
            stack.callback(self.display.stop)
            # The output is opened when the first page is in hand, not before: a run that fails
            # at once leaves an existing file as it was. No state is saved before that either,
            # so such a run leaves nothing to resume and the next starts afresh (a new "now").
            output: Output | None = None
            async for page in pager.pages():
                # No await from here to the state: a cancellation cannot split a page.
                if output is None:
                    output = self._open_output(stack)
                output.write_records(page.records)
                self.started_stream = True
                self.counters.records += len(page.records)
                self.counters.pages += 1
                self._save(output, pager.state)
                self.display.update()
            if output is None:  # resumed with nothing left to ask for: still mark it done
                output = self._open_output(stack)
                self.started_stream = True
            # The final state says done=true (kept, so that a re-run writes nothing twice).
            self._save(output, pager.state)
        return EXIT_OK

    def resume_hint(self) -> str:
        """How to continue, when the stream failed or stopped with a state file to go on from."""
        if (
            self.state_file is None
            or not self.stream_opened
            or not os.path.exists(self.state_file.path)
        ):
            return ""
        return f"; run the same command to continue from {self.state_file.path}"

    def _open_output(self, stack: contextlib.AsyncExitStack) -> Output:
        options = self.options
        record_type: type[TaskId] | type[TaskError] = (
            TaskId if options.command == "id-list" else TaskError
        )
        columns = field_names(record_type)
        if options.output is None:
            output = Output.to_stdout(options.format, columns)
        else:
            output = Output.to_file(options.output, options.format, columns, self.resume)
        stack.callback(output.close)
        return output

    async def _client(self, stack: contextlib.AsyncExitStack) -> Client:
        client, emulator = await open_client(self.options, self.credentials, stack)
        if emulator is not None:
            rate = self.options.emulate_rate or EMULATOR_RATE
            self.notice = _emulator_notice(self.options, emulator, rate)
        return client

    def _save(self, output: Output, state: PagerState) -> None:
        if self.state_file is None:
            return
        saved = SavedState(
            stream=state,
            format=output.format,
            output=self.state_file.output,
            output_bytes=output.size,
            started=self.options.started,
        )
        save_state(self.state_file.path, saved)


async def open_client(
    options: Options, credentials: tuple[str, str] | None, stack: contextlib.AsyncExitStack
) -> tuple[Client, Emulator | None]:
    """The client for the run (closed by `stack`); with --emulate, the emulator it talks to."""
    retry = Retry(attempts=options.retries + 1)
    if credentials is not None:
        login, password = credentials
        client = dfs_async.Client(
            login, password, base_url=options.base_url, retry=retry, proxy=options.proxy
        )
        # Once the client accepted the URL (a refused one needs no second line).
        if options.proxy is not None and ":" in (_userinfo(options.proxy) or ""):
            _say(
                "dfs-async: warning: other users of this machine can read the password in "
                "--proxy in the process list; HTTPS_PROXY in the environment keeps it out of "
                "sight"
            )
        return await stack.enter_async_context(client), None
    from dfs_async.testing import Emulator

    rate = options.emulate_rate or EMULATOR_RATE
    clock = _emulator_clock(os.environ)
    emulator = Emulator(
        EMULATOR_LOGIN,
        EMULATOR_PASSWORD,
        n_tasks=options.emulate_tasks,
        n_errors=options.emulate_errors,
        rate_limit=rate,
        now=clock,
        # Laid out from the export's start, which a resumed run takes from the state file:
        # the same records again, while the clock that checks windows is today's.
        data_now=options.started,
        data_days=EMULATOR_DAYS,
    )
    await stack.enter_async_context(emulator)
    client = await stack.enter_async_context(
        dfs_async.Client(
            EMULATOR_LOGIN,
            EMULATOR_PASSWORD,
            base_url=emulator.url,
            rate_limit=dfs_async.RateLimit(calls=rate[0], period=rate[1]),
            retry=retry,
            now=clock,
        )
    )
    return client, emulator


@contextlib.contextmanager
def _signals_cancel_current_task() -> Iterator[list[int]]:
    """SIGINT and SIGTERM cancel the running task once; yields the signals received.

    The first signal cancels; the handlers are then removed, so a second Ctrl-C interrupts at
    once (KeyboardInterrupt) should the cleanup itself hang.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []
    installed: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        for number in installed:
            loop.remove_signal_handler(number)
        installed.clear()
        if task is not None:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C is KeyboardInterrupt
            continue
        installed.append(signum)
    try:
        yield received
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def interruptible(work: Callable[[], Awaitable[int]]) -> int:
    """Run a command's work; SIGINT or SIGTERM ends it as exit 128 + the signal's number."""
    with _signals_cancel_current_task() as received:
        try:
            return await work()
        except asyncio.CancelledError:
            if not received:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return 128 + received[0]


async def _run(export: Export) -> int:
    return await interruptible(export.run)


class _RedactingFormatter(logging.Formatter):
    """A log formatter that takes a proxy's credentials out of each line, traceback included."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def _configure_logging(options: Options, display: Display) -> logging.Handler:
    """Send the library's log to stderr: warnings, or everything with --debug."""
    handler: logging.Handler
    secrets = proxy_secrets(options.proxy, os.environ)
    if display.console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=display.console, show_path=False)
        handler.setFormatter(_RedactingFormatter("%(message)s", secrets))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            _RedactingFormatter(
                "%(asctime)s %(name)s %(levelname)s: %(message)s"
                if options.debug
                else "dfs-async: %(message)s",
                secrets,
            )
        )
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if options.debug else logging.WARNING)
    return handler


def _silence_stdout() -> None:
    # The reader went away: point stdout at /dev/null so that the interpreter's final flush
    # does not fail again and print a second error.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        return _command(argv)
    except KeyboardInterrupt:
        # A Ctrl-C outside the export's own handling (while parsing, while printing the end):
        # an interruption, not a crash.
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            traceback.print_exc(file=sys.stderr)
        _say("interrupted")
        return EXIT_INTERRUPTED


def _command(argv: Sequence[str] | None) -> int:
    try:
        namespace = build_parser().parse_args(argv)
        run = getattr(namespace, "run", None)
        if run is not None:  # a command in a module of its own (resend-webhooks)
            code: int = run(namespace)
            return code
        options = options_from(namespace)
        state_file = check_files(options)
    except CliError as exc:
        _say(f"dfs-async: error: {exc.message}")
        return exc.code
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    counters = Counters()
    display = Display(counters, enabled=sys.stderr.isatty() and not options.quiet)
    handler = _configure_logging(options, display)
    try:
        with exclusive(options.output, options.state):
            return _export(Export(options, counters, display, state_file))
    except CliError as exc:
        _say(f"dfs-async: error: {exc.message}")
        return exc.code
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def exclusive(*paths: str | None) -> Iterator[None]:
    """Hold the locks of the files a run writes; CliError (exit 2) if another run holds one."""
    try:
        with _cli_lock.hold([path for path in paths if path is not None]):
            yield
    except _cli_lock.LockedError as exc:
        raise CliError(EXIT_USAGE, f"{exc}; two runs must not write one file") from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CliError(EXIT_FAILURE, f"cannot lock: {where}{exc.strerror or exc}") from None


def print_traceback(options: Options) -> None:
    """With --debug, the exception being handled, without a proxy's credentials."""
    if options.debug:
        text = traceback.format_exc()
        sys.stderr.write(redact(text, proxy_secrets(options.proxy, os.environ)))
        sys.stderr.flush()


def error_line(message: str, options: Options) -> str:
    """The closing error line. Its message may quote a reply, and a proxy's reply (an error
    page) may quote the proxy's credentials: they are taken out."""
    return "dfs-async: error: " + redact(message, proxy_secrets(options.proxy, os.environ))


def _export(export: Export) -> int:
    options, counters = export.options, export.counters
    try:
        export.prepare()
        code = asyncio.run(_run(export))
    except KeyboardInterrupt:  # reading the password, before the loop's handlers, a 2nd Ctrl-C
        export.display.stop()
        print_traceback(options)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        export.display.stop()
        print_traceback(options)
        code, message = classify(exc)
        if export.started_stream and not options.quiet:
            _say(counters.summary())
        _say(error_line(f"{message}{export.resume_hint()}", options))
        return code
    if options.quiet:
        # Even -q says how to continue: it is the one line a cron job's log must keep.
        if code >= 128 and export.resume_hint():
            _say(f"interrupted{export.resume_hint()}")
        return code
    if code >= 128:
        done = counters.summary() if export.started_stream else "before the first page arrived"
        _say(f"interrupted: {done}{export.resume_hint()}")
    elif export.started_stream:
        _say(counters.summary())
    return code
