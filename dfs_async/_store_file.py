"""The SQLite store's file: its schema, the rows of records, and opening it (one writer).

Pure where it can be (the schema, `task_row`, `error_rows`, `task_function`); the rest opens a
file: the writer's ``flock`` on ``FILE.lock`` and the connection, whose schema is checked
before anything is changed, so a file that is not ours is left as it was. `dfs_async._store`
has the strategy and the `Store` that writes through these.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from ._errors import StoreError, StoreLockedError
from ._models import TaskError, TaskId
from ._pagination import record_key

if sys.platform != "win32":
    import fcntl

__all__ = [
    "SCHEMA_VERSION",
    "connect",
    "error_rows",
    "format_time",
    "task_function",
    "task_row",
    "writer_lock",
]

#: The layout this code writes; a file with a higher one is refused (written by a newer client).
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    api TEXT NOT NULL,
    function TEXT NOT NULL,
    url TEXT NOT NULL,
    datetime_posted TEXT NOT NULL,
    datetime_done TEXT,
    status TEXT NOT NULL,
    cost REAL NOT NULL,
    metadata TEXT
);
CREATE INDEX tasks_by_posted ON tasks (datetime_posted);
CREATE INDEX tasks_by_api_posted ON tasks (api, datetime_posted);
CREATE INDEX tasks_by_function ON tasks (function);
CREATE TABLE errors (
    key TEXT PRIMARY KEY,
    api TEXT NOT NULL,
    id TEXT NOT NULL,
    datetime TEXT NOT NULL,
    function TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    error_message TEXT NOT NULL,
    http_url TEXT NOT NULL,
    http_method TEXT NOT NULL,
    http_code INTEGER NOT NULL,
    http_time REAL NOT NULL,
    http_response TEXT NOT NULL,
    occurrences INTEGER NOT NULL
);
CREATE INDEX errors_by_datetime ON errors (datetime);
CREATE INDEX errors_by_api_datetime ON errors (api, datetime);
CREATE INDEX errors_by_id ON errors (id);
CREATE TABLE state (
    stream TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('stream', 'follow')),
    state TEXT NOT NULL
);
"""

TASK_COLUMNS = (
    "id",
    "api",
    "function",
    "url",
    "datetime_posted",
    "datetime_done",
    "status",
    "cost",
    "metadata",
)
ERROR_COLUMNS = (
    "key",
    "api",
    "id",
    "datetime",
    "function",
    "error_code",
    "error_message",
    "http_url",
    "http_method",
    "http_code",
    "http_time",
    "http_response",
    "occurrences",
)

_UPSERT_TASK = """
INSERT INTO tasks (id, api, function, url, datetime_posted, datetime_done, status, cost, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    api = excluded.api, function = excluded.function, url = excluded.url,
    datetime_posted = excluded.datetime_posted, datetime_done = excluded.datetime_done,
    status = excluded.status, cost = excluded.cost, metadata = excluded.metadata
"""
_INSERT_ERROR = """
INSERT INTO errors (key, api, id, datetime, function, error_code, error_message, http_url,
                    http_method, http_code, http_time, http_response, occurrences)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET occurrences = """
#: A follower delivers each occurrence once: add. A stream may be exported again: the larger.
_UPSERT_ERROR_FOLLOW = _INSERT_ERROR + "occurrences + excluded.occurrences"
_UPSERT_ERROR_STREAM = _INSERT_ERROR + "max(occurrences, excluded.occurrences)"


# -- the rows: pure --------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """A datetime as the store keeps it: ISO 8601 in UTC, ``2026-11-01T12:00:00+00:00``.

    One form for every row, so text order is time order and ``substr(x, 1, 10)`` is the day.
    """
    if value.tzinfo is not timezone.utc:  # the client's records are in UTC already
        value = value.astimezone(timezone.utc)
    return value.isoformat()


@functools.lru_cache(maxsize=4096)  # a few functions, each url seen many times
def task_function(url: str) -> str:
    """The API function a task ran, from its ``url``: ``backlinks/summary/live``.

    The path after ``/v3/`` up to the first part that is not a lowercase word (a task id, a
    number); ``""`` for a url without ``/v3/``.
    """
    _, found, path = url.partition("/v3/")
    if not found:
        return ""
    words = []
    for part in path.split("?", 1)[0].split("/"):
        if not part or not all(c.islower() or c == "_" for c in part):
            break
        words.append(part)
    return "/".join(words)


def task_row(task: TaskId, api: str) -> tuple[Any, ...]:
    """The ``tasks`` row of a record (columns as `TASK_COLUMNS`)."""
    return (
        task.id,
        api,
        task_function(task.url),
        task.url,
        format_time(task.datetime_posted),
        None if task.datetime_done is None else format_time(task.datetime_done),
        task.status,
        task.cost,
        None
        if task.metadata is None
        else json.dumps(task.metadata, ensure_ascii=False, separators=(",", ":")),
    )


def error_rows(entries: Iterable[TaskError], api: str) -> list[tuple[Any, ...]]:
    """The ``errors`` rows of a batch: identical entries become one row with their count."""
    counts: Counter[str] = Counter()
    first: dict[str, TaskError] = {}
    for entry in entries:
        key = record_key(entry)
        counts[key] += 1
        first.setdefault(key, entry)
    return [
        (
            key,
            api,
            e.id,
            format_time(e.datetime),
            e.function,
            e.error_code,
            e.error_message,
            e.http_url,
            e.http_method,
            e.http_code,
            e.http_time,
            e.http_response,
            counts[key],
        )
        for key, e in first.items()
    ]


# -- the file --------------------------------------------------------------------------------


def lock_path(path: str) -> str:
    """The lock file that guards a store's one writer."""
    return path + ".lock"


@contextlib.contextmanager
def writer_lock(path: str) -> Iterator[None]:
    if sys.platform == "win32":  # pragma: no cover - no flock there: writers are not guarded
        yield
        return
    lock = lock_path(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            who = f"process {holder}" if holder else "another process"
            raise StoreLockedError(
                f"{path} is being written by {who}; a store has one writer at a time "
                "(readers are fine): wait for it to end, or write to another file"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, schema checked."""
    try:
        if readonly:
            uri = "file:" + os.path.abspath(path).replace("?", "%3f").replace("#", "%23")
            conn = sqlite3.connect(
                uri + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None
    try:
        conn.execute("PRAGMA busy_timeout = 5000")  # a reader's checkpoint, briefly
        # Checked before anything is changed: a file that is not ours is left as it was.
        empty = _check_schema(conn, path)
        if empty and readonly:
            raise StoreError(f"{path} is not a dfs-async store (it has no tables)")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if empty:
                _create(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path} is not a dfs-async store (SQLite says: {exc})") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _check_schema(conn: sqlite3.Connection, path: str) -> bool:
    """Whether the file is empty; StoreError unless it is empty or a store this code reads."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return True
    if "meta" not in tables:
        raise StoreError(f"{path} is an SQLite file but not a dfs-async store (no meta table)")
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
    if version is None:
        raise StoreError(f"{path} is not a dfs-async store (no schema version)")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has store schema {version}, written by a newer dfs-async; this one reads "
            f"schema {SCHEMA_VERSION}: upgrade dfs-async"
        )
    return False


def _create(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # One statement at a time: executescript() would commit on its own.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
