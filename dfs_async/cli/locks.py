"""One writer per file: the advisory locks that keep two command-line runs off one export.

Strategy: each file a run writes (the -o output, the --state file) gets a lock file beside it,
``NAME.lock``, locked with ``flock`` for the whole run. The kernel drops a ``flock`` when its
process ends, however it ends (SIGKILL included), so a lock never outlives its holder and a
stale lock file is harmless: the next run simply locks it again. The lock is taken without
waiting, so an overlapping run (a cron job that ran long, a retried script) is refused at once
with the holder's process id, host and start, which it writes into the lock file once it has
the lock (a host, because the files may be on a disk that several machines share).
Locking a separate file, not the output itself, keeps the output's bytes exactly the export's.
The lock file sits beside the file's real path, so two names of one file (a symlink) share it;
a device (/dev/null, a terminal) is not locked, as it holds no export to keep whole and a lock
file beside it would land in /dev, or could not be created at all by anyone but root.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

from .exits import EXIT_FAILURE, EXIT_USAGE, CliError

if sys.platform != "win32":
    import fcntl

__all__ = ["LockedError", "exclusive", "hold"]


class LockedError(Exception):
    """Another live process holds the lock of `path`."""

    def __init__(
        self, path: str, lock: str, holder: str, host: str = "", started: str = ""
    ) -> None:
        who = f"process {holder}" if holder else "another process"
        if holder and host:
            who += f" on {host}, running since {started}"
        super().__init__(f"{path} is in use by {who} (it holds {lock}); wait for it to end")
        self.path = path
        self.lock = lock
        #: The holder's pid ("" if it could not be read), its host name and start (UTC).
        self.holder = holder
        self.host = host
        self.started = started


def lock_path(path: str) -> str:
    """The lock file that guards `path`."""
    return path + ".lock"


@contextlib.contextmanager
def hold(paths: Sequence[str]) -> Iterator[None]:
    """Hold the locks of every path for the block; LockedError at once if one is taken.

    OSError (for example an unwritable directory) is left to the caller to word.
    """
    unique = {  # the first spelling wins
        os.path.realpath(path): path for path in reversed(paths) if _holds_an_export(path)
    }
    with contextlib.ExitStack() as stack:
        for real, shown in reversed(unique.items()):
            stack.enter_context(_hold_one(real, shown))
        yield


def _holds_an_export(path: str) -> bool:
    """A regular file, a FIFO, or nothing yet: not a device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # not there yet (or unreadable: locking it will say why)
        return True
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


@contextlib.contextmanager
def _hold_one(path: str, shown: str) -> Iterator[None]:
    if sys.platform == "win32":  # pragma: no cover - no flock there: runs are not protected
        yield
        return
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Named as given, unless the name is a symlink: then where the lock really is.
            lock = lock_path(path if os.path.islink(shown) else shown)
            raise LockedError(shown, lock, *_read_holder(fd)) from None
        # Ours now: say who holds it, for the message of a run refused meanwhile.
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def _read_holder(fd: int) -> tuple[str, str, str]:
    """``(pid, host, started)`` from a lock file; empty parts for what cannot be read (the
    holder writing it this very moment, or a lock file of an older version: the pid alone)."""
    with contextlib.suppress(OSError):
        pid, _, rest = os.pread(fd, 512, 0).decode("utf-8", "replace").strip().partition(" ")
        host, _, started = rest.partition(" ")
        if pid.isdigit():
            return pid, host, started
    return "", "", ""


@contextlib.contextmanager
def exclusive(*paths: str | None) -> Iterator[None]:
    """Hold the locks of the files a run writes; CliError (exit 2) if another run holds one."""
    try:
        with hold([path for path in paths if path is not None]):
            yield
    except LockedError as exc:
        raise CliError(EXIT_USAGE, f"{exc}; two runs must not write one file") from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CliError(EXIT_FAILURE, f"cannot lock: {where}{exc.strerror or exc}") from None
