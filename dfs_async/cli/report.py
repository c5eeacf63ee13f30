"""`dfs-async report FILE.sqlite`: tasks and spend per day and per function, statuses, errors.

Reads a store (`-o FILE.sqlite` of id-list and errors) without its writer lock: in WAL mode it
reads beside an export or a follow writing the file, from one snapshot. The figures come from
`dfs_async._report`; `--format table` (the default) is plain text that fits 80 columns, drawn
by rich instead on a terminal when rich is installed (the `cli` extra); `--format json` gives
the same figures for machines. Standard library only at import: the parser registers the
command without loading the client.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone

from .dates import When, resolve_when
from .exits import EXIT_OK, EXIT_USAGE, CliError

#: typing.TYPE_CHECKING without importing typing (--help imports this module).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

    from dfs_async import Report

__all__ = ["REPORT", "add_report_parser", "print_rich", "run"]

REPORT = "report"
DEFAULT_FROM = timedelta(days=30)

REPORT_EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 other failure; 2 bad arguments, or FILE is missing, not a "
    "dfs-async store, or of a newer schema; 130 interrupted (Ctrl-C)."
)


def add_report_parser(commands: argparse._SubParsersAction, when: object) -> None:  # type: ignore[type-arg]
    """Register `report` with the `dfs-async` parser's subcommands (`when` parses dates)."""
    parser = commands.add_parser(
        REPORT,
        help="tasks, spend and failures from an SQLite export",
        description="A report over FILE (written by id-list / errors -o FILE.sqlite): tasks "
        "and spend per day (with a bar chart), spend and tasks per function (from each "
        "task's url), tasks still queued, done and failed, and errors entries per function "
        "and error code. Tasks count by datetime_posted, errors by datetime, in [--from, "
        "--to). Spend is summed exactly, in millionths of a dollar. Dates are ISO 8601 or "
        "spans before now (30d, 12h); a date without a zone is UTC.",
        epilog=REPORT_EXIT_CODES_HELP,
    )
    parser.add_argument("file", metavar="FILE", help="the SQLite store")
    parser.add_argument(
        "--from",
        dest="when_from",
        type=when,
        default=DEFAULT_FROM,
        metavar="WHEN",
        help="start (default 30d: 30 days before now)",
    )
    parser.add_argument(
        "--to",
        dest="when_to",
        type=when,
        default=timedelta(0),
        metavar="WHEN",
        help="end, not included (default now)",
    )
    parser.add_argument("--api", metavar="NAME", help="only this API's tasks and errors")
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="plain text that fits 80 columns (default), or JSON with the same figures",
    )


def window(when_from: When, when_to: When, now: datetime) -> tuple[datetime, datetime]:
    """The report's ``[start, end)``; CliError (exit 2) if it is empty."""
    try:
        start, end = resolve_when(when_from, now), resolve_when(when_to, now)
    except ValueError as exc:
        raise CliError(EXIT_USAGE, f"{exc} (see 'dfs-async report --help')") from None
    if start >= end:
        raise CliError(
            EXIT_USAGE,
            f"--from ({start.isoformat()}) must be before --to ({end.isoformat()}) "
            "(see 'dfs-async report --help')",
        )
    return start, end


def run(namespace: argparse.Namespace, now: datetime | None = None) -> int:
    """Print the report of `namespace.file`; the exit code."""
    import json
    import os

    from dfs_async import StoreError, build_report, read_store
    from dfs_async._endpoints import APIS  # the names only (the client checks them itself)

    moment = now or datetime.now(timezone.utc).replace(microsecond=0)
    start, end = window(namespace.when_from, namespace.when_to, moment)
    api = namespace.api
    if api is not None and api not in APIS:
        raise CliError(
            EXIT_USAGE, f"unknown --api {api!r}; these have id_list/errors: {', '.join(APIS)}"
        )
    if not os.path.isfile(namespace.file):
        raise CliError(EXIT_USAGE, f"{namespace.file}: no such file")
    try:
        conn = read_store(namespace.file)
    except StoreError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    try:
        report = build_report(conn, start, end, api)
    finally:
        conn.close()
    if namespace.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    elif not (sys.stdout.isatty() and print_rich(report)):
        sys.stdout.write(report.render())
    sys.stdout.flush()
    return EXIT_OK


def print_rich(report: Report, file: TextIO | None = None) -> bool:
    """The table drawn by rich on a terminal (at most 80 columns); False without rich."""
    try:
        from rich.bar import Bar
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # the `cli` extra is not installed: the plain text it is
        return False

    def money_text(value: float) -> str:
        return f"${value:,.4f}"  # as Report.render shows it

    console = Console(file=file, width=80) if file is not None else Console()
    console.width = min(console.width, 80)
    s = report.statuses
    api = f", API {report.api}" if report.api else ""
    console.print(
        f"Tasks posted {report.start.isoformat()} to {report.end.isoformat()}{api}\n"
        f"[bold]{report.tasks:,}[/] tasks, [bold]{money_text(report.spend)}[/]: "
        f"{s.queued:,} still queued, {s.done:,} done, [red]{s.failed:,}[/] failed",
        highlight=False,
        no_wrap=True,
        overflow="ellipsis",
    )
    by_spend = any(d.spend for d in report.days)
    peak = max((d.spend if by_spend else d.tasks for d in report.days), default=0) or 1

    def table(*headers: str, expand: bool = False) -> Table:
        """Borderless, the first column left-aligned and the figures right-aligned."""
        table = Table(box=None, pad_edge=False, padding=(0, 1), expand=expand)
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if index == 0 or not header else "right")
        return table

    days = table("day", "tasks", "spend", "", expand=True)
    for d in report.days:
        value = d.spend if by_spend else d.tasks
        days.add_row(
            d.day.isoformat(),
            f"{d.tasks:,}",
            money_text(d.spend),
            Bar(peak, 0, value, color="cyan"),
        )
    console.print(days)
    console.print()
    functions = table("function", "tasks", "spend", "queued", "failed")
    for f in report.functions:
        functions.add_row(
            f.function or "(no function in url)",
            f"{f.tasks:,}",
            money_text(f.spend),
            f"{f.queued:,}",
            f"{f.failed:,}",
        )
    console.print(functions if report.functions else "no tasks in this window")
    console.print()
    errors = table("errors: function", "code", "entries")
    for e in report.errors:
        errors.add_row(e.function, str(e.error_code), f"{e.entries:,}")
    console.print(errors if report.errors else "no errors entries in this window")
    return True
