"""`main`: the entry point of `dfs-async` (the console script, and `python -m dfs_async`).

The argument parser needs only the standard library; the client and everything else are
imported once the arguments are known to be well formed, so `--help`, `--version` and an
argument error answer at once (benchmarks/cli.py measures it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .exits import EXIT_INTERRUPTED, EXIT_OK, CliError, say
from .parser import RESEND, build_parser
from .report import REPORT

#: typing.TYPE_CHECKING without importing typing (a few ms of every --help): type checkers take
#: any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        return _command(argv)
    except KeyboardInterrupt:
        # A Ctrl-C outside the export's own handling (while parsing, while printing the end):
        # an interruption, not a crash.
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            import traceback

            traceback.print_exc(file=sys.stderr)
        say("interrupted")
        return EXIT_INTERRUPTED


def _refuse(exc: CliError, argv: Sequence[str] | None) -> int:
    """The one error line of a refused command, and its exit code. An argument error quotes
    the argument, which may be a proxy URL with its password: that is taken out."""
    from .secrets import argument_secrets, redact

    args = sys.argv[1:] if argv is None else argv
    say("dfs-async: error: " + redact(exc.message, argument_secrets(args, os.environ)))
    return exc.code


def _command(argv: Sequence[str] | None) -> int:
    try:
        namespace = build_parser().parse_args(argv)
    except CliError as exc:
        return _refuse(exc, argv)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    # Only now, with well-formed arguments, the client and the rest: --help did not wait.
    if namespace.command == REPORT:
        from .report import run as report

        try:
            return report(namespace)
        except CliError as exc:
            say(f"dfs-async: error: {exc.message}")
            return exc.code
    if namespace.command == RESEND:
        from .resend import run

        try:
            return run(namespace)
        except CliError as exc:
            return _refuse(exc, argv)
    from .export import Export, run_export
    from .files import check_files
    from .locks import exclusive
    from .logs import configure_logging, logger
    from .options import options_from
    from .progress import Counters, Display

    try:
        options = options_from(namespace)
        state_file = check_files(options)
    except CliError as exc:
        return _refuse(exc, argv)
    counters = Counters()
    job: Any
    if options.follow or options.update:
        from .follow import FollowRun

        job = FollowRun(options, counters, state_file)
    else:
        job = Export(
            options,
            counters,
            Display(counters, enabled=sys.stderr.isatty() and not options.quiet),
            state_file,
        )
    handler = configure_logging(options, job.display)
    try:
        # An SQLite output is locked by the store itself (one writer per file, FILE.lock).
        output = None if options.format == "sqlite" else options.output
        with exclusive(output, options.state):
            return run_export(job)
    except CliError as exc:
        return _refuse(exc, argv)
    finally:
        logger.removeHandler(handler)
