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
import json
import math
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ._errors import StoreError
from ._follow import FollowState
from ._models import TaskError, TaskId
from ._pagination import PagerState
from ._store_file import (
    _UPSERT_ERROR_FOLLOW,
    _UPSERT_ERROR_STREAM,
    _UPSERT_TASK,
    SCHEMA_VERSION,
    connect,
    error_rows,
    format_time,
    task_function,
    task_row,
    writer_lock,
)

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
        self._locks.enter_context(writer_lock(self.path))
        try:
            self._conn = connect(self.path, readonly=False)
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
    return connect(path, readonly=True)
