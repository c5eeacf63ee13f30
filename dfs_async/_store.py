"""The SQLite store: each task's latest version and every errors entry, in one file.

Strategy:
- Exactly once by construction. A stream's (or a follower's) state lives in the database,
  in the ``state`` table, and each write commits a batch of records *and* the state reached
  after them in one transaction. SQLite's commit is atomic, so after a SIGKILL at any moment
  the file holds either both or neither: resuming from the stored state reads again exactly
  what was not committed. Nothing is lost and nothing is applied twice.
- A task is keyed by its ``id``: a later version (queued, then done with its cost) replaces the
  row, so the table holds each task's latest version. An errors entry never changes and is
  keyed by all its fields (`record_key`); identical entries (the same task failing twice in
  one second, alike in every field) are one row with ``occurrences``. A follower delivers each
  occurrence once, so its writes add them up; a stream's writes take the larger of the row's
  count and the batch's (identical entries of one stream always share a page, since the pager
  drops a repeated key as overlap), so exporting the same window twice changes nothing.
- WAL mode: readers (the sqlite3 shell, DuckDB, a report) read a consistent snapshot while the
  writer commits, and never block it. ``synchronous=NORMAL``: a commit survives the process
  being killed; a power cut may lose the last commits, but the state goes back with them (WAL
  is still atomic), so a resume reads those pages again and exactly once still holds.
- One writer per file, held for the store's whole life by an exclusive ``flock`` on
  ``FILE.lock``, taken without waiting. A lock inside SQLite would not do: a write
  transaction held open for the run would also block our own writes, and a "writer" row would
  outlive a SIGKILLed holder. The kernel drops a ``flock`` when its process dies, however.
- A page of 1,000 tasks takes about 9 ms to write (rows built, then committed), too long to hold
  an event loop. `Store.awrite` builds the rows on the loop in slices of 100, yielding between
  them, and commits in a thread, where SQLite releases the GIL around each statement (building
  rows in the thread would hold the GIL, so the loop, for whole switch intervals of 5 ms): the
  loop's longest stall is then about half a millisecond (benchmarks/store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._errors import StoreError, StoreLockedError
from ._follow import FollowState
from ._models import TaskError, TaskId
from ._pagination import PagerState, record_key

if sys.platform != "win32":
    import fcntl

if TYPE_CHECKING:
    from types import TracebackType

    from ._follower import Follower
    from ._pager import Pager

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreWrite",
    "format_time",
    "read_store",
    "task_function",
]

R = TypeVar("R", TaskId, TaskError)

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


@attrs.frozen(kw_only=True)
class StoreWrite:
    """What one commit wrote: records, and the sum of their ``cost`` (tasks only)."""

    records: int
    cost: float


#: Rows built per turn of the event loop in `Store.awrite` (about half a millisecond's work).
_SLICE = 100


@attrs.define(kw_only=True)
class _Batch:
    """One write, checked: what to upsert, with which statement, and the state's JSON."""

    name: str
    kind: str
    api: str
    records: Sequence[TaskId] | Sequence[TaskError]
    upsert: str
    state: str
    #: The tasks rows, once built (errors rows are built in the commit: they are counted).
    rows: list[tuple[Any, ...]] = attrs.Factory(list)

    def build(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """The tasks rows of ``records[start:stop]`` (none for errors entries)."""
        if self.upsert is not _UPSERT_TASK:
            return []
        return [task_row(task, self.api) for task in self.records[start:stop]]  # type: ignore[arg-type]


# -- the file --------------------------------------------------------------------------------


def lock_path(path: str) -> str:
    """The lock file that guards a store's one writer."""
    return path + ".lock"


@contextlib.contextmanager
def _writer_lock(path: str) -> Iterator[None]:
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


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
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


class Store:
    """A SQLite file holding each task's latest version, the errors entries, and the states.

    ``Store(path)`` creates or opens the file and becomes its one writer (`StoreLockedError`
    if another process is); close it with `close` or ``with`` / ``async with``. `export` and
    `follow` drive a pager or a follower into it, one transaction per batch with the state;
    `write` is that transaction for callers that drive their own.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._locks = contextlib.ExitStack()
        self._locks.enter_context(_writer_lock(self.path))
        try:
            self._conn = _connect(self.path, readonly=False)
        except BaseException:
            self._locks.close()
            raise
        self._closed = False
        #: One write at a time, even from several tasks (the connection is not shared).
        self._writing = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<dfs_async.Store {self.path!r}{' closed' if self._closed else ''}>"

    def close(self) -> None:
        """Close the file and release the writer lock. Idempotent."""
        if not self._closed:
            self._closed = True
            self._conn.close()
            self._locks.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- states ------------------------------------------------------------------------------

    def _state(self, name: str, kind: str) -> dict[str, Any] | None:
        self._check_open()
        row = self._conn.execute(
            "SELECT kind, state FROM state WHERE stream = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        if row[0] != kind:
            raise StoreError(
                f"{self.path}: {name!r} holds the state of a {row[0]}, not of a {kind}"
            )
        data = json.loads(row[1])
        assert isinstance(data, dict)  # written by _commit from to_json()
        return data

    def stream_state(self, name: str) -> PagerState | None:
        """The saved state of stream `name` (``resume=`` it), or None if never written."""
        data = self._state(name, "stream")
        return None if data is None else PagerState.from_json(data)

    def follow_state(self, name: str) -> FollowState | None:
        """The saved state of follow `name` (``resume=`` it), or None if never written."""
        data = self._state(name, "follow")
        return None if data is None else FollowState.from_json(data)

    def streams(self) -> dict[str, str]:
        """Every saved state's name and kind (``"stream"`` or ``"follow"``)."""
        self._check_open()
        return dict(self._conn.execute("SELECT stream, kind FROM state ORDER BY stream"))

    # -- reading back ------------------------------------------------------------------------

    def tasks_to_follow(self, api: str, since: datetime) -> list[TaskId]:
        """The tasks of `api` that a follow continuing at `since` must know, as records: those
        still queued (their completion is to come) and those posted or done since `since`.

        What `FollowState.after_id_list_export` keeps of an export, read from the file.
        """
        self._check_open()
        cutoff = format_time(since)
        rows = self._conn.execute(
            "SELECT id, url, datetime_posted, datetime_done, status, cost, metadata FROM tasks "
            "WHERE api = ? AND (datetime_done IS NULL OR datetime_posted >= ? "
            "OR datetime_done >= ?) ORDER BY datetime_posted, id",
            (api, cutoff, cutoff),
        )
        return [
            TaskId(
                id=id_,
                url=url,
                datetime_posted=datetime.fromisoformat(posted),
                datetime_done=None if done is None else datetime.fromisoformat(done),
                status=status,
                cost=cost,
                metadata=None if metadata is None else json.loads(metadata),
            )
            for id_, url, posted, done, status, cost, metadata in rows
        ]

    def errors_since(
        self, api: str, since: datetime, function: str | None = None
    ) -> list[TaskError]:
        """The errors entries of `api` (of one `function`, if given) at or after `since`, each
        occurrence once: what `FollowState.after_errors_export` counts of an export."""
        self._check_open()
        query = (
            "SELECT id, datetime, function, error_code, error_message, http_url, http_method, "
            "http_code, http_time, http_response, occurrences FROM errors "
            "WHERE api = ? AND datetime >= ?"
        )
        parameters: tuple[Any, ...] = (api, format_time(since))
        if function is not None:
            query, parameters = query + " AND function = ?", (*parameters, function)
        entries = []
        for *fields, occurrences in self._conn.execute(query + " ORDER BY datetime", parameters):
            id_, moment, *rest = fields
            entry = TaskError(
                id=id_,
                datetime=datetime.fromisoformat(moment),
                function=rest[0],
                error_code=rest[1],
                error_message=rest[2],
                http_url=rest[3],
                http_method=rest[4],
                http_code=rest[5],
                http_time=rest[6],
                http_response=rest[7],
            )
            entries += [entry] * occurrences
        return entries

    # -- writes ------------------------------------------------------------------------------

    def write(
        self,
        name: str,
        records: Sequence[TaskId] | Sequence[TaskError],
        state: PagerState | FollowState,
    ) -> StoreWrite:
        """Upsert `records` and save `state` as `name`'s, in one transaction.

        `state` is the position *after* these records (``pager.state`` after a page,
        ``follower.state`` after the last record). Blocks for the write; see `awrite`.
        """
        batch = self._prepare(name, records, state)
        batch.rows = batch.build(0, len(records))
        return self._commit(batch)

    async def awrite(
        self,
        name: str,
        records: Sequence[TaskId] | Sequence[TaskError],
        state: PagerState | FollowState,
    ) -> StoreWrite:
        """`write` without holding the event loop for long; one write at a time.

        The rows are built on the loop a slice at a time (Python code: in a thread it would
        hold the GIL, and so the loop, for whole switch intervals), then committed in a thread,
        where SQLite releases the GIL around each statement. If the awaiting task is cancelled
        during the commit, the commit still completes (or not) as a whole, and this returns
        only once it has: the file and the state never disagree.
        """
        async with self._writing:
            batch = self._prepare(name, records, state)
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(records), _SLICE):
                rows += batch.build(start, start + _SLICE)
                await asyncio.sleep(0)  # let the loop run between slices
            batch.rows = rows
            job = asyncio.ensure_future(asyncio.to_thread(self._commit, batch))
            try:
                return await asyncio.shield(job)
            except asyncio.CancelledError:
                # Let the transaction finish before the store may be closed under it.
                await asyncio.gather(job, return_exceptions=True)
                raise

    def _prepare(
        self,
        name: str,
        records: Sequence[TaskId] | Sequence[TaskError],
        state: PagerState | FollowState,
    ) -> _Batch:
        """Check a write before any of it is done: the kinds of the state and the records."""
        self._check_open()
        if isinstance(state, PagerState):
            kind, api, function = "stream", state.api, state.function
        elif isinstance(state, FollowState):
            kind, api, function = "follow", state.api, state.function
        else:
            raise TypeError(f"state must be a PagerState or a FollowState, got {state!r:.80}")
        wanted = TaskId if function == "id_list" else TaskError
        if not all(type(record) is wanted for record in records):
            raise TypeError(f"a {function} state goes with {wanted.__name__} records")
        if wanted is TaskId:
            upsert = _UPSERT_TASK
        else:
            upsert = _UPSERT_ERROR_FOLLOW if kind == "follow" else _UPSERT_ERROR_STREAM
        return _Batch(
            name=name,
            kind=kind,
            api=api,
            records=records,
            upsert=upsert,
            state=json.dumps(state.to_json(), separators=(",", ":")),
        )

    def _commit(self, batch: _Batch) -> StoreWrite:
        """The transaction: the rows and the state, or neither."""
        rows = batch.rows
        if batch.upsert is _UPSERT_TASK:
            cost = math.fsum(row[7] for row in rows)
        else:
            cost = 0.0
            # Identical entries of the batch become one row with their count.
            rows = error_rows(batch.records, batch.api)  # type: ignore[arg-type]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(batch.upsert, rows)
            conn.execute(
                "INSERT INTO state (stream, kind, state) VALUES (?, ?, ?) "
                "ON CONFLICT (stream) DO UPDATE SET kind = excluded.kind, state = excluded.state",
                (batch.name, batch.kind, batch.state),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return StoreWrite(records=len(batch.records), cost=cost)

    async def export(self, name: str, pager: Pager[R]) -> AsyncIterator[StoreWrite]:
        """Write each page of `pager` with the pager's state; yields what each commit wrote.

        Start the pager with ``resume=store.stream_state(name)`` to continue a stopped one.
        """
        async with pager:
            async for page in pager.pages():
                yield await self.awrite(name, page.records, pager.state)

    async def follow(
        self, name: str, follower: Follower[R], *, batch: int = 1000
    ) -> AsyncIterator[StoreWrite]:
        """Write what `follower` yields, with its state, a batch at a time; never ends.

        A batch is committed when the follower has to wait for the network or the next poll,
        or when it holds `batch` records, so a page costs one commit. Start the follower with
        ``resume=store.follow_state(name)`` to continue.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a whole number of at least 1, got {batch!r}")
        pending: list[Any] = []
        state: FollowState | None = None
        step: asyncio.Future[Any] | None = None
        try:
            async with follower:
                while True:
                    step = asyncio.ensure_future(follower.__anext__())
                    if pending:
                        # One turn of the loop: a record already at hand (the rest of a page)
                        # is ready by then; one that needs a call or a sleep is not.
                        await asyncio.sleep(0)
                        if not step.done() or len(pending) >= batch:
                            assert state is not None
                            # Taken out first: a write cancelled while it completes is not
                            # written a second time on the way out.
                            ready, pending = pending, []
                            yield await self.awrite(name, ready, state)
                    record = await step
                    step = None
                    pending.append(record)
                    # The state right after this record: the follower counts a record as
                    # delivered before handing it over, and moves on once asked again.
                    state = follower.state
        finally:
            if step is not None:
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
            if pending and state is not None and not self._closed:
                # What was received is written with its state even on the way out.
                await self.awrite(name, pending, state)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")


def read_store(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to a store, its schema checked; close it when done.

    It takes no writer lock: in WAL mode it reads beside a writer, each query a snapshot of
    whole commits.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StoreError(f"{path} does not exist")
    return _connect(path, readonly=True)
