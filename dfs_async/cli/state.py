"""The state file: where an export stands, saved atomically after every page.

It holds the stream's `PagerState` (exactly its ``to_json()``, so library code can resume from
it too), the output it belongs to and that output's size when it was saved. It is replaced by a
rename (temp file, fsync, ``os.replace``, fsync of the directory): a crash at any moment leaves
the old state or the new, whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

import attrs

from dfs_async import FollowState, PagerState

from .exits import EXIT_FAILURE, EXIT_USAGE, CliError

__all__ = ["SavedState", "StateFile", "fsync_directory", "load_state", "save_state"]

UTC = timezone.utc
STATE_FORMAT = 1
#: How far back of where an export ended (seconds) the follow that continues it reads again.
FOLLOW_LOOKBACK = 120


@attrs.frozen
class StateFile:
    """--state FILE (as given) and the absolute path of the -o file it belongs to."""

    path: str
    output: str


@attrs.frozen(kw_only=True)
class SavedState:
    """What the state file holds: the stream's position and the output it was written to."""

    #: The export's position; None for a --follow or --update that started without one.
    stream: PagerState | None
    format: str
    #: The output file's absolute path.
    output: str
    #: The output's size when the state was saved.
    output_bytes: int
    #: "Now" when the export started (None in a file from before it was kept): a resumed run
    #: reads relative dates against it, and --emulate lays out the same data again.
    started: datetime | None = None
    #: --follow and --update: the follow's position (a finished export's continues here).
    follow: FollowState | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dfs_async_cli": STATE_FORMAT,
            "format": self.format,
            "output": self.output,
            "output_bytes": self.output_bytes,
            **({} if self.started is None else {"started": self.started.isoformat()}),
            # Exactly what PagerState.to_json() gives, so library code can resume from it too.
            "stream": None if self.stream is None else self.stream.to_json(),
            **({} if self.follow is None else {"follow": self.follow.to_json()}),
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
        follow = data.get("follow")
        if not isinstance(stream, dict) and not (stream is None and isinstance(follow, dict)):
            raise ValueError(f"bad stream {stream!r}")
        if follow is not None and not isinstance(follow, dict):
            raise ValueError(f"bad follow {follow!r:.80}")
        started = data.get("started")
        if started is not None:
            try:
                started = datetime.fromisoformat(started).astimezone(UTC)
            except (TypeError, ValueError):
                raise ValueError(f"bad started {started!r}") from None
        return cls(
            stream=None if stream is None else PagerState.from_json(stream),
            format=fmt,
            output=output,
            output_bytes=size,
            started=started,
            follow=None if follow is None else FollowState.from_json(follow),
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
            fsync_directory(os.path.dirname(target), fsync)
        finally:
            if not replaced:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
    except OSError as exc:
        raise CliError(EXIT_FAILURE, f"--state {path}: {exc.strerror or exc}") from exc


def fsync_directory(directory: str, fsync: Callable[[int], None]) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fsync(fd)
    finally:
        os.close(fd)
