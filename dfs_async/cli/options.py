"""The parsed command line as `Options`, cross-checked before anything runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from dfs_async import DEFAULT_BASE_URL

from .dates import When, resolve_when
from .emulate import EMULATOR_ERRORS, EMULATOR_TASKS, command_now
from .exits import EXIT_USAGE, CliError
from .files import same_file
from .parser import DEFAULT_API, build_parser

__all__ = ["SQLITE_SUFFIXES", "Options", "common_problem", "options_from", "parse_options"]

#: -o names an SQLite store by these (then --format defaults to sqlite).
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")

UTC = timezone.utc


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
    #: --follow and --update (dfs_async/cli/follow.py), and --poll-interval.
    follow: bool = False
    update: bool = False
    poll_interval: float = 60.0
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
    output = known.get("output")
    if "format" in omitted and isinstance(output, str) and output.lower().endswith(SQLITE_SUFFIXES):
        known["format"] = "sqlite"
    options = Options(**known)
    options = options.at(command_now(options.emulate, os.environ))
    problem = common_problem(options)
    # An SQLite file keeps the state it continues from (a follow's, or a finished export's).
    continued = options.state is not None or (
        options.format == "sqlite" and (options.follow or options.update)
    )
    if options.command == "id-list" and options.when_from is None and not continued:
        problem = "the following arguments are required: --from (or --state of an earlier export)"
    if options.format == "sqlite":
        if options.output is None:
            problem = "--format sqlite needs -o FILE: a database cannot go to standard output"
        elif options.state is not None:
            problem = (
                "--state is not needed with an SQLite output: the state is kept inside "
                f"{options.output}, committed with each page; drop --state"
            )
    elif options.state is not None:
        if options.output is None:
            problem = (
                "--state needs -o FILE: standard output cannot be cut back to the last saved "
                "page, so a resumed export could lose or repeat records"
            )
        elif same_file(options.output, options.state):
            problem = "-o and --state name the same file; the state needs a file of its own"
    problem = problem or _follow_problem(options, values)
    if problem is not None:
        raise CliError(EXIT_USAGE, f"{problem} (see 'dfs-async {options.command} --help')")
    return options


def _follow_problem(options: Options, values: dict[str, Any]) -> str | None:
    """What does not go with --follow or --update, if anything."""
    if not (options.follow or options.update):
        if values.get("poll_interval", 60.0) != 60.0:
            return "--poll-interval needs --follow"
        return None
    flag = "--follow" if options.follow else "--update"
    if options.update and options.state is None and options.format != "sqlite":
        return (
            "--update needs --state (or an SQLite -o FILE.sqlite): the file that says where "
            "the last run ended"
        )
    if options.when_to is not None:
        return f"{flag} runs up to now: leave out --to"
    if options.max_items is not None:
        return f"{flag} and --max-items do not go together"
    if options.sort != "asc":
        return f"{flag} delivers records as they come: leave out --sort"
    return None


def common_problem(options: Options) -> str | None:
    """What is wrong with the account and --emulate options, if anything."""
    problem = None
    if not options.emulate:
        if options.emulate_rate is not None:
            problem = "--emulate-rate needs --emulate"
        elif options.emulate_tasks != EMULATOR_TASKS or options.emulate_errors != EMULATOR_ERRORS:
            problem = "--emulate-tasks and --emulate-errors need --emulate"
    elif options.base_url != DEFAULT_BASE_URL:
        problem = "--base-url and --emulate do not go together"
    elif options.proxy is not None:
        problem = "--proxy and --emulate do not go together"
    if options.emulate_tasks < 0 or options.emulate_errors < 0:
        problem = "--emulate-tasks and --emulate-errors must be at least 0"
    if options.retries < 0:
        problem = "--retries must be at least 0"
    return problem
