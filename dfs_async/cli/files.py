"""The files a run will write, checked before anything runs: a mistake costs no call.

-o is written in place, so a new one needs a writable directory; --state is replaced by a
rename, so its directory must be writable even when the file exists.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import TYPE_CHECKING

from .exits import EXIT_USAGE, CliError
from .state import StateFile

if TYPE_CHECKING:
    from typing import Protocol

    class Options(Protocol):
        """The files a run writes (`dfs_async.cli.options.Options` has them; a protocol, so that
        this module, which that one imports, imports nothing back)."""

        @property
        def output(self) -> str | None: ...
        @property
        def state(self) -> str | None: ...


__all__ = ["check_files", "check_writable", "same_file"]


def check_files(options: Options) -> StateFile | None:
    """Fail now (exit 2), not after the first call, if -o or --state cannot be written.

    The output is written in place (a new file needs a writable directory); the state file is
    replaced by a rename, so its directory must be writable even when the file exists.
    """
    if options.output is None:
        if sys.stdout is None:  # started with stdout closed (>&-)
            raise CliError(EXIT_USAGE, "standard output is closed; pass -o FILE")
    else:
        check_writable("-o", options.output, replaced=False)
    if options.state is None or options.output is None:  # parse_options: --state needs -o
        return None
    if _is_stream(options.output):
        raise CliError(
            EXIT_USAGE,
            f"--state needs -o to be a regular file, and {options.output} is not: a pipe or "
            "device cannot be cut back to the last saved page",
        )
    check_writable("--state", options.state, replaced=True)
    return StateFile(options.state, os.path.abspath(options.output))


def _is_stream(path: str) -> bool:
    """Whether `path` exists and is not a regular file (a FIFO, a terminal, /dev/null)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_writable(option: str, path: str, *, replaced: bool) -> None:
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


def same_file(first: str, second: str) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)  # hard links, bind mounts
    except OSError:  # either does not exist (yet): then only the names can tell
        return False
