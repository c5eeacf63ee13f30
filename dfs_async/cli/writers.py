"""The output writers: JSON Lines and CSV text of records, and the file or stream it goes to.

A page is written whole (one ``write``), then flushed and, for a file, fsynced, so that a state
saved after it never claims a record the output does not hold (see `dfs_async.cli`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import operator
import os
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

import attrs

from .exits import EXIT_FAILURE, EXIT_USAGE, CliError, say
from .state import SavedState, StateFile, fsync_directory

__all__ = [
    "Output",
    "check_output_size",
    "csv_rows",
    "field_names",
    "jsonl_bytes",
    "jsonl_lines",
    "silence_stdout",
]


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


def jsonl_bytes(records: Sequence[attrs.AttrsInstance]) -> bytes:
    """`jsonl_lines` as UTF-8, byte for byte; encoded by orjson when the `speed` extra is in.

    orjson writes what ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` writes for
    strings, integers, booleans, null and floats from 1e-4 to 1e16; outside that range it
    spells floats differently (``1e-5`` for ``1e-05``) and cuts an offset of seconds to
    minutes, so a page holding such a float or datetime, or a nested value (metadata), or
    anything orjson refuses (an integer beyond 64 bits, a lone surrogate), is written by the
    standard library instead: the output never depends on
    which encoder ran (tests/test_cli_jsonl.py compares the two on generated records).
    """
    if _orjson is not None and records:
        fast = _orjson_lines(records)
        if fast is not None:
            return fast
    return jsonl_lines(records).encode("utf-8")


try:
    import orjson as _orjson
except ImportError:  # the `speed` extra is not installed
    _orjson = None  # type: ignore[assignment]


@attrs.frozen
class _Layout:
    """How `_orjson_lines` reads one record type: its fields, and those it must look at."""

    names: tuple[str, ...]
    values: Callable[[Any], tuple[Any, ...]]
    #: The fields that may hold a float orjson spells otherwise, a nested value, or a
    #: datetime whose offset orjson would cut to minutes.
    checked: tuple[int, ...]

    @classmethod
    def of(cls, record_type: type[attrs.AttrsInstance]) -> _Layout:
        fields = attrs.fields(record_type)
        names = tuple(field.name for field in fields)
        # Only a field annotated str, int, bool or None alone needs no look: orjson writes
        # those as json does, or refuses them (then the stdlib writes). Any other annotation
        # (a float, a datetime, a list of objects, none at all) may hold what orjson spells
        # otherwise or an object whose },{"KEY": would look like a row boundary.
        checked = tuple(
            index for index, field in enumerate(fields) if not _plain_annotation(field.type)
        )
        # attrgetter of one name returns the value itself, not a 1-tuple.
        values = operator.attrgetter(*names) if len(names) > 1 else _one(names[0])
        return cls(names, values, checked)


#: The annotations (as text, postponed, or as types) of fields that need no look.
_PLAIN = frozenset({"str", "int", "bool", "None", str, int, bool, type(None)})


def _plain_annotation(annotation: object) -> bool:
    """Whether a field so annotated holds only what orjson writes as json does."""
    if isinstance(annotation, str):
        return all(part.strip() in _PLAIN for part in annotation.split("|"))
    return annotation in _PLAIN


def _one(name: str) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(name)
    return lambda record: (get(record),)


_LAYOUTS: dict[type, _Layout] = {}


#: Values orjson writes as json does, besides floats in range, datetimes (and None).
_SCALARS = frozenset({str, int, bool})
_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)


def _orjson_lines(records: Sequence[attrs.AttrsInstance]) -> bytes | None:
    """The page's lines through orjson, or None where it would not write what json does."""
    record_type = type(records[0])
    layout = _LAYOUTS.get(record_type)
    if layout is None:
        layout = _LAYOUTS[record_type] = _Layout.of(record_type)
    names, read, checked = layout.names, layout.values, layout.checked
    rows = []
    for record in records:
        if type(record) is not record_type:
            return None
        values = read(record)
        for index in checked:  # inline: a call per value would cost a tenth of the page
            value = values[index]
            if type(value) is float:
                if not (value == 0.0 or 1e-4 <= abs(value) < 1e16):
                    return None  # orjson spells it otherwise (1e-5, 1e16, NaN)
            elif type(value) is datetime:
                # isoformat writes an offset's seconds (+05:30:15), orjson only +HH:MM.
                if value.tzinfo is not _UTC and (value.utcoffset() or _MINUTE) % _MINUTE:
                    return None
            elif value is not None and type(value) not in _SCALARS:
                return None  # nested (metadata): the stdlib writes it
        rows.append(dict(zip(names, values)))  # noqa: B905 -- one record's own fields
    try:
        array = _orjson.dumps(rows)  # one call for the page: a call per row costs twice as much
    except _orjson.JSONEncodeError:
        return None
    # Rows hold no nested object and each starts with the same key, so },{"KEY": is a boundary
    # between rows and nowhere else: inside a string a quote is always escaped (\"), and a
    # string's closing quote is followed by , } or :, never by the key's first letter.
    boundary = b'},{"' + names[0].encode() + b'":'
    data = array[1:-1].replace(boundary, b"}\n" + boundary[2:])
    if b"\xe2\x80\xa8" in data or b"\xe2\x80\xa9" in data or b"\xc2\x85" in data:
        # The line breaks jsonl_lines escapes (U+2028, U+2029, U+0085): in UTF-8, these byte
        # sequences are those characters and nothing else.
        data = (
            data.replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029")
            .replace(b"\xc2\x85", b"\\u0085")
        )
    return data + b"\n"


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


def check_output_size(state_file: StateFile, saved: SavedState) -> int:
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
    def opened(
        cls,
        name: str | None,
        fmt: str,
        columns: Sequence[str],
        resume: tuple[StateFile, SavedState] | None,
        stack: contextlib.AsyncExitStack,
    ) -> Output:
        """`name` (see `to_file`), or standard output when it is None; closed by `stack`."""
        output = (
            cls.to_stdout(fmt, columns) if name is None else cls.to_file(name, fmt, columns, resume)
        )
        stack.callback(output.close)
        return output

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
                    fsync_directory(os.path.dirname(os.path.abspath(name)), fsync)
            else:
                output = cls._reopen(name, fmt, *resume)
        except OSError as exc:
            raise CliError(EXIT_FAILURE, f"writing {name}: {exc.strerror or exc}") from exc
        if output.size == 0 and fmt == "csv":
            output.write(csv_rows((), header=columns))
        return output

    @classmethod
    def _reopen(cls, name: str, fmt: str, state_file: StateFile, saved: SavedState) -> Output:
        size = check_output_size(state_file, saved)
        if size > saved.output_bytes:
            # Written after the last saved state (a run killed between the two writes).
            say(
                f"dfs-async: warning: {saved.output}: dropping {size - saved.output_bytes:,} "
                "bytes written after the saved state"
            )
            os.truncate(saved.output, saved.output_bytes)
        return cls(open(saved.output, "ab"), fmt, name, saved.output_bytes, owned=True)

    def write(self, text: str | bytes) -> None:
        """Write, flush and (for a file) fsync, so a saved state never runs ahead of it."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        try:
            self.stream.write(data)
            self.stream.flush()
            if self._owned and stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode):
                self._fsync(self.stream.fileno())
        except BrokenPipeError:  # the reader of stdout went away: exit 141, not an error
            raise
        except OSError as exc:
            if not self._owned:  # or the interpreter's last flush of stdout fails once more
                silence_stdout()
            raise CliError(EXIT_FAILURE, f"writing {self.name}: {exc.strerror or exc}") from exc
        self.size += len(data)

    def write_records(self, records: Sequence[attrs.AttrsInstance]) -> None:
        if records:
            self.write(jsonl_bytes(records) if self.format == "jsonl" else csv_rows(records))

    def close(self) -> None:
        if self._owned:
            # Every write was flushed, so closing has nothing left to write unless a write
            # failed: then flushing again would fail again and hide that failure's message.
            with contextlib.suppress(OSError):
                self.stream.close()


def silence_stdout() -> None:
    # The reader went away: point stdout at /dev/null so that the interpreter's final flush
    # does not fail again and print a second error.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
