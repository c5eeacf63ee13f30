"""The `dfs-async` argument parser: every command's options, and nothing heavier.

Standard library only (and the package's stdlib-only corners): `--help`, `--version` and an
argument error must answer without importing the client, aiohttp or attrs. The parsed
arguments become `Options` (dfs_async.cli.options) once they are known to be well formed.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from dfs_async._ratespec import parse_rate
from dfs_async._urls import DEFAULT_BASE_URL, SANDBOX_BASE_URL
from dfs_async._version import __version__

from .dates import DATES_HELP, When, parse_when_spec
from .emulate import EMULATOR_ERRORS, EMULATOR_RATE, EMULATOR_TASKS, REAL_RATE
from .exits import EXIT_CODES_HELP, EXIT_USAGE, CliError
from .report import add_report_parser

#: typing.TYPE_CHECKING without importing typing (a few ms of every --help); type checkers
#: take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["DEFAULT_API", "DEFAULT_RETRIES", "RESEND", "build_parser", "when"]

DEFAULT_API = "backlinks"
#: Retry().attempts less the first try (tests/test_cli.py holds the two together: importing
#: Retry here would import attrs, and --help would wait for it).
DEFAULT_RETRIES = 7
RESEND = "resend-webhooks"
#: With --strict, some ids were refused (the rest were resent).
EXIT_REFUSED = 6

RESEND_EXIT_CODES_HELP = (
    "Exit codes: 0 done (refused ids too, unless --strict); 1 other failure (writing a file); "
    "2 bad arguments or state file, or another run using the same -o or --state file; 3 "
    "authentication failed (login or API password); 4 rate limit or server trouble that "
    "outlasted the retries, or an unreadable reply; 5 the API refused the account (payment, "
    "cost limit, subscription, IP not whitelisted); 6 with --strict, some ids were refused; "
    "130 interrupted (Ctrl-C); 141 the reader of standard output went away; 143 terminated "
    "(SIGTERM)."
)


def terminal_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` reads it ($COLUMNS, then stdout's
    terminal, else 80), without importing shutil: it loads bz2, lzma and zlib, a tenth of
    the time `--help` and `--version` take."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout at the width it would choose itself (see `terminal_columns`)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=terminal_columns() - 2)  # argparse's own margin


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line error form (and exit code 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise CliError(EXIT_USAGE, f"{message} (see '{self.prog} --help')")


def when(text: str) -> When:
    try:
        return parse_when_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> tuple[int, float]:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 1, got {text!r}")
    return value


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
        choices=("jsonl", "csv", "sqlite"),
        default=None,  # left out: a continued export keeps its own (see _FROM_STATE)
        help="JSON Lines (default), CSV with a header row, or an SQLite store (the default "
        "for -o FILE.sqlite, .sqlite3 or .db: a task's latest version per row, the state "
        "kept inside, so no --state; see 'dfs-async report')",
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
    follow = common.add_argument_group("following (dfs_async/cli/follow.py)")
    mode = follow.add_mutually_exclusive_group()
    mode.add_argument(
        "--follow",
        action="store_true",
        help="keep exporting each new record and each change of one until Ctrl-C or SIGTERM; "
        "a changed task is a new row, which supersedes the earlier (with --state, a later run "
        "continues exactly where this one stopped)",
    )
    mode.add_argument(
        "--update",
        action="store_true",
        help="(needs --state) continue the export or follow saved there, a finished one too, "
        "up to now: each new record and each change once, then exit 0 (a cron job's command)",
    )
    follow.add_argument(
        "--poll-interval",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="with --follow: seconds from one poll's start to the next's (default 60, at least 1)",
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
        default=DEFAULT_BASE_URL,
        help=f"the API's address (default {DEFAULT_BASE_URL}; the sandbox is {SANDBOX_BASE_URL})",
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


def _window(*, reach: str, inside: str) -> tuple[_Parser, argparse._ArgumentGroup]:
    """A parent parser with --from and --to, and its group, where each command adds more."""
    window = _Parser(add_help=False)
    group = window.add_argument_group("window")
    group.add_argument(
        "--from",
        dest="when_from",
        type=when,
        metavar="WHEN",
        help=f"start (at most {reach} back: {inside}); no zone means UTC; also 30d, 12h, 2w, "
        "90m (that long before now); with --state of an earlier export, omitted options come "
        "from it",
    )
    group.add_argument(
        "--to",
        dest="when_to",
        type=when,
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
    parser.add_argument("--version", action="version", version=f"dfs-async {__version__}")
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
    _resend_parser(commands)
    add_report_parser(commands, when)
    return parser


def _resend_parser(commands: Any) -> None:
    """Register the command with the `dfs-async` parser's subcommands."""
    parser = commands.add_parser(
        RESEND,
        help="resend the webhooks (pingback, postback) that failed, each once",
        description="Find the tasks whose pingback or postback failed (POST /v3/{api}/errors, "
        "function pingback_url/postback_url) and resend each task's webhooks once (POST "
        "/v3/appendix/webhook_resend, free, 100 ids a call). With --state FILE, a task is "
        "resent again only after a newer failure, so the command can run from cron. Dates are "
        "ISO 8601 or spans before now (24h, 90m, 7d); a date without a zone is UTC.",
        epilog=RESEND_EXIT_CODES_HELP,
    )
    group = parser.add_argument_group("what to resend")
    group.add_argument(
        "--kind",
        choices=("pingback", "postback", "both"),
        default="both",
        help="which webhooks (default both)",
    )
    group.add_argument(
        "--from",
        dest="since",
        type=when,
        default=timedelta(hours=24),
        metavar="WHEN",
        help="failures since (default 24h: a day before now; at most 7d)",
    )
    group.add_argument(
        "--to",
        dest="until",
        type=when,
        metavar="WHEN",
        help="failures until (default now, fixed when the command starts)",
    )
    group.add_argument(
        "--dry-run", action="store_true", help="list what would be resent; send nothing"
    )
    group.add_argument(
        "--strict", action="store_true", help=f"exit {EXIT_REFUSED} when any id was refused"
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="for -o (default jsonl)"
    )
    output.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="one line (or CSV row) per task sent or, with --dry-run, to send (default: "
        "standard output); replaced by each run",
    )
    output.add_argument(
        "--state",
        metavar="FILE",
        help="remember what was resent, for which failure; saved around each call",
    )
    output.add_argument("-q", "--quiet", action="store_true", help="no summary")
    output.add_argument(
        "--debug", action="store_true", help="log the client's work and show tracebacks"
    )
    add_account_options(parser)
