"""The SQLite store against real files: rows, upserts, exactly once through SIGKILLs, WAL, locks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

import dfs_async
from dfs_async import (
    FollowState,
    PagerState,
    Store,
    StoreError,
    StoreLockedError,
    TaskError,
    TaskId,
)
from dfs_async._store import task_function
from dfs_async.testing import Emulator, Live, generate_errors, generate_tasks

UTC = timezone.utc
NOW = datetime(2026, 12, 1, tzinfo=UTC)
WORKER = Path(__file__).with_name("store_worker.py")
ROOT = Path(__file__).resolve().parents[1]
SQLITE3 = shutil.which("sqlite3") or "sqlite3"


def parse_api(text: str) -> datetime:
    """An API datetime (with or without its offset) as an aware UTC datetime."""
    if text.endswith(("+00:00", "-00:00")) or (text[-6:-5] in "+-" and text[-3] == ":"):
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def iso(text: str | None) -> str | None:
    """The store's form of an API datetime, worked out apart from the store's own code."""
    return None if text is None else parse_api(text).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def task_record(item: Mapping[str, Any]) -> TaskId:
    """A TaskId built from an emulator item."""
    done = item["datetime_done"]
    return TaskId(
        id=item["id"],
        url=item["url"],
        datetime_posted=parse_api(item["datetime_posted"]),
        datetime_done=None if done is None else parse_api(done),
        status=item["status"],
        cost=item["cost"],
        metadata=item.get("metadata"),
    )


def error_record(entry: Mapping[str, Any]) -> TaskError:
    """A TaskError built from an emulator entry."""
    return TaskError(**{**entry, "datetime": parse_api(entry["datetime"])})


def expected_task_row(item: Mapping[str, Any], api: str = "backlinks") -> tuple[Any, ...]:
    """The tasks row an emulator item must become: (id, api, url, posted, done, ...)."""
    meta = item.get("metadata")
    return (
        item["id"],
        api,
        item["url"],
        iso(item["datetime_posted"]),
        iso(item["datetime_done"]),
        item["status"],
        item["cost"],
        meta,
    )


def task_rows(path: Path) -> list[tuple[Any, ...]]:
    """The tasks table in `expected_task_row`'s shape, through `freeze`, sorted."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT id, api, url, datetime_posted, datetime_done, status, cost, metadata FROM tasks"
        ).fetchall()
    conn.close()
    return sorted(
        freeze((*row[:7], None if row[7] is None else json.loads(row[7]))) for row in rows
    )


def expected_tasks(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The tasks table emulator items must become, as `task_rows` gives it."""
    return sorted(freeze(expected_task_row(i)) for i in items)


def freeze(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row with its metadata as sorted JSON text, so rows can go in a set."""
    return (*row[:7], None if row[7] is None else json.dumps(row[7], sort_keys=True))


def error_rows(path: Path) -> list[tuple[Any, ...]]:
    """The errors table as (entry fields..., occurrences), sorted."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT id, datetime, function, error_code, error_message, http_url, http_method, "
            "http_code, http_time, http_response, occurrences FROM errors"
        ).fetchall()
    conn.close()
    return sorted(rows)


def expected_error_rows(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The errors rows a list of entries must become, identical entries counted."""
    counts: dict[tuple[Any, ...], int] = {}
    for e in entries:
        key = (
            e["id"],
            iso(e["datetime"]),
            e["function"],
            e["error_code"],
            e["error_message"],
            e["http_url"],
            e["http_method"],
            e["http_code"],
            e["http_time"],
            e["http_response"],
        )
        counts[key] = counts.get(key, 0) + 1
    return sorted((*key, n) for key, n in counts.items())


def pager_state(api: str = "backlinks", function: str = "id_list", offset: int = 0) -> PagerState:
    """A stream state as a pager would hold it."""
    return PagerState(
        api=api,
        function=function,
        params={"datetime_from": "2026-11-01 00:00:00 +00:00"},
        page_size=1000,
        max_items=None,
        offset=offset,
        yielded=offset,
        seen=(),
    )


def follow_state(function: str = "errors", cursor: int = 1_790_000_000) -> FollowState:
    """A follow state as a follower would hold it."""
    return FollowState(function=function, api="backlinks", params={}, cursor=cursor, lookback=120)


@pytest.fixture
def items() -> list[dict[str, Any]]:
    """3,000 generated tasks with metadata: done, failed and queued ones."""
    return list(generate_tasks(3000, seed=4, now=NOW))


# -- rows and upserts -------------------------------------------------------------------------


def test_rows_equal_the_records_field_for_field(
    items: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Every column of every row is the record's field: ISO UTC text, metadata as JSON."""
    entries = generate_errors(500, seed=4, now=NOW)
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        for start in range(0, len(items), 1000):
            page = [task_record(i) for i in items[start : start + 1000]]
            store.write("ids", page, pager_state(offset=start + len(page)))
        store.write("errors", [error_record(e) for e in entries], pager_state(function="errors"))
    assert {None, "Ok."} < {i["datetime_done"] and i["status"] for i in items}  # mixed data
    got = task_rows(path)
    assert got == expected_tasks(items)
    assert len(got) == 3000
    assert error_rows(path) == expected_error_rows(entries)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        functions = set(conn.execute("SELECT DISTINCT function FROM tasks"))
    conn.close()
    assert functions == {(task_function(i["url"]),) for i in items}


@pytest.mark.parametrize(
    ("url", "function"),
    [
        ("https://api.dataforseo.com/v3/backlinks/summary/live", "backlinks/summary/live"),
        ("https://api.dataforseo.com/v3/backlinks/summary/live/17", "backlinks/summary/live"),
        (
            "https://api.dataforseo.com/v3/serp/google/organic/task_get/advanced/"
            "11281236-1535-0066-0000-f2c5c1b01c6e",
            "serp/google/organic/task_get/advanced",
        ),
        ("https://api.dataforseo.com/v3/on_page/summary?x=1", "on_page/summary"),
        ("https://example.com/other", ""),
    ],
)
def test_the_function_comes_from_the_url(url: str, function: str) -> None:
    """The function is the url's path after /v3/ up to the first part that is not a word."""
    assert task_function(url) == function


def test_a_changed_task_updates_its_row(items: list[dict[str, Any]], tmp_path: Path) -> None:
    """A task written queued, then done with its cost, is one row holding the done version."""
    done = next(i for i in items if i["datetime_done"] is not None and i["cost"] > 0)
    queued = {**done, "datetime_done": None, "status": "Task In Queue.", "cost": 0.0}
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        store.write("ids", [task_record(queued)], pager_state(offset=1))
        first = task_rows(path)
        store.write("ids", [task_record(done)], pager_state(offset=2))
    assert first == expected_tasks([queued])
    assert task_rows(path) == expected_tasks([done])


def test_identical_errors_entries_are_counted_by_a_follow_and_not_doubled_by_an_export(
    tmp_path: Path,
) -> None:
    """A follow adds each delivered occurrence; exporting the same entries again adds none."""
    entry = generate_errors(1, seed=1, now=NOW)[0]
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        store.write("f", [error_record(entry), error_record(entry)], follow_state())
        store.write("f", [error_record(entry)], follow_state(cursor=1_790_000_001))
        follow = error_rows(path)
        store.write("s", [error_record(entry)] * 2, pager_state(function="errors"))
        store.write("s", [error_record(entry)] * 2, pager_state(function="errors"))
        store.write("s2", [error_record(entry)] * 4, pager_state(function="errors"))
    assert [row[-1] for row in follow] == [3]
    assert error_rows(path) == [(*expected_error_rows([entry])[0][:-1], 4)]


def test_the_state_is_saved_with_the_page_and_read_back(tmp_path: Path) -> None:
    """stream_state and follow_state give back what was written; a kind mix-up is refused."""
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        assert store.stream_state("ids") is None
        store.write("ids", [], pager_state(offset=5))
        store.write("errs", [], follow_state())
        assert store.stream_state("ids") == pager_state(offset=5)
        assert store.follow_state("errs") == follow_state()
        assert store.streams() == {"errs": "follow", "ids": "stream"}
        with pytest.raises(StoreError) as caught:
            store.follow_state("ids")
    assert str(caught.value) == f"{path}: 'ids' holds the state of a stream, not of a follow"
    with Store(path) as again:
        assert again.stream_state("ids") == pager_state(offset=5)


def test_records_of_the_wrong_kind_are_refused_and_nothing_written(
    items: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Tasks with an errors state are a TypeError before the transaction; the file is unchanged."""
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        with pytest.raises(TypeError, match="a errors state goes with TaskError records"):
            store.write("e", [task_record(items[0])], pager_state(function="errors"))
        assert store.streams() == {}
    assert task_rows(path) == []


def test_a_failed_write_rolls_back_the_records_and_the_state(
    items: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A row SQLite refuses mid-batch leaves neither the batch's rows nor its state."""
    path = tmp_path / "t.sqlite"
    bad = attrs.evolve(task_record(items[1]), status=None)  # type: ignore[arg-type]
    with Store(path) as store:
        with pytest.raises(sqlite3.IntegrityError):
            store.write("ids", [task_record(items[0]), bad], pager_state(offset=2))
        assert store.stream_state("ids") is None
    assert task_rows(path) == []


# -- the file: schema, lock, WAL ---------------------------------------------------------------


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file with a higher schema version is refused, naming both versions."""
    path = tmp_path / "t.sqlite"
    Store(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
        conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert str(caught.value) == (
        f"{path} has store schema 2, written by a newer dfs-async; this one reads schema 1: "
        "upgrade dfs-async"
    )
    with pytest.raises(StoreError, match="has store schema 2"):
        dfs_async.read_store(path)


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    """Text, or an SQLite file of something else, is refused and left untouched."""
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, this is not a database at all, but it is long enough" * 20)
    with pytest.raises(StoreError, match=r"notes.sqlite is not a dfs-async store \(SQLite says"):
        Store(text)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StoreError) as caught:
        Store(other)
    assert (
        str(caught.value) == f"{other} is an SQLite file but not a dfs-async store (no meta table)"
    )
    assert other.read_bytes() == before


def test_a_second_writer_is_refused_at_once_with_the_holders_pid(tmp_path: Path) -> None:
    """While one process writes, another's Store(path) fails at once, naming the holder."""
    path = tmp_path / "t.sqlite"
    holder = subprocess.Popen(  # noqa: S603 -- our own interpreter
        [
            sys.executable,
            "-c",
            "import sys, dfs_async; s = dfs_async.Store(sys.argv[1]); print('ok', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ok\n"
        with pytest.raises(StoreLockedError) as caught:
            Store(path)
        assert str(caught.value) == (
            f"{path} is being written by process {holder.pid} on {socket.gethostname()}; a "
            "store has one writer at a time (readers are fine): wait for it to end, or write "
            "to another file"
        )
        # The reader side is not locked out.
        with contextlib.closing(dfs_async.read_store(path)) as conn:
            assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)
    finally:
        holder.kill()
        holder.communicate()
    # Killed, the holder's lock is gone with it: the next writer gets in.
    Store(path).close()


def test_a_second_writer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    """Two Store objects on one file in one process: the second is refused too."""
    path = tmp_path / "t.sqlite"
    with Store(path), pytest.raises(StoreLockedError, match=f"process {os.getpid()} on"):
        Store(path)


def test_a_reader_sees_whole_commits_while_the_writer_writes(
    items: list[dict[str, Any]], tmp_path: Path
) -> None:
    """WAL: a reader's open snapshot does not block a commit and never sees half of one."""
    path = tmp_path / "t.sqlite"
    with Store(path) as store:
        store.write("ids", [task_record(i) for i in items[:1000]], pager_state(offset=1000))
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM tasks").fetchone() == (1000,)
        store.write("ids", [task_record(i) for i in items[1000:2000]], pager_state(offset=2000))
        # The reader's snapshot still shows the first commit, state included.
        assert reader.execute("SELECT count(*) FROM tasks").fetchone() == (1000,)
        state = reader.execute("SELECT state FROM state").fetchone()[0]
        assert json.loads(state)["offset"] == 1000
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM tasks").fetchone() == (2000,)
        reader.close()
        if shutil.which("sqlite3") is None:
            return  # the shell is not installed here: the connections above have shown it
        # The sqlite3 shell, another process, reads the file while the writer holds it.
        shell = subprocess.run(  # noqa: S603 -- the system's sqlite3 shell
            [
                SQLITE3,
                str(path),
                "SELECT count(*), json_extract(state, '$.offset') FROM tasks, state;",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shell.stdout == "2000|2000\n"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()


async def test_awrite_leaves_the_event_loop_running(
    items: list[dict[str, Any]], tmp_path: Path
) -> None:
    """While a 1,000-record page is written, other tasks of the loop keep running."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    with Store(tmp_path / "t.sqlite") as store:
        page = [task_record(i) for i in items[:1000]]
        running = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        wrote = await store.awrite("ids", page, pager_state(offset=1000))
        during = ticks - before
        stop.set()
        await running
    assert wrote.records == 1000
    assert during > 10


# -- exactly once through SIGKILLs -------------------------------------------------------------


def worker_env() -> dict[str, str]:
    """The environment of the worker process: this source tree first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def start_worker(*args: str) -> asyncio.subprocess.Process:
    """Start the store worker (see store_worker.py)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), *args, env=worker_env(), stderr=asyncio.subprocess.PIPE
    )


async def kill(process: asyncio.subprocess.Process) -> bytes:
    """SIGKILL the worker, and what it said on stderr."""
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)
    _, err = await process.communicate()
    return err


@pytest.mark.heavy
async def test_an_export_killed_30_times_ends_with_the_emulators_data_exactly(
    tmp_path: Path,
) -> None:
    """30 SIGKILLs at random moments, each resumed from the store: tasks and errors exact."""
    path = tmp_path / "t.sqlite"
    rng = random.Random(7)
    async with Emulator(n_tasks=50_000, n_errors=4000, seed=9, rate_limit=None) as emu:
        now = datetime.now(UTC).replace(microsecond=0)
        args = (
            "export",
            emu.url,
            str(path),
            (now - timedelta(days=151)).isoformat(),
            now.isoformat(),
        )
        kills = 0
        for _ in range(30):
            process = await start_worker(*args)
            await asyncio.sleep(rng.uniform(0.3, 1.6))
            if process.returncode is None:
                kills += 1
            err = await kill(process)
            assert process.returncode in (0, -signal.SIGKILL), err.decode()
        process = await start_worker(*args)
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        tasks = [{**item, "metadata": None} for item in emu.tasks]  # asked for without
        entries = emu.errors
    assert kills >= 20  # most runs were cut short, not let finish
    got = task_rows(path)
    assert got == expected_tasks(tasks)
    assert error_rows(path) == expected_error_rows(entries)


class FastLive(Live):
    """The live emulator on a clock `SPEED` times the loop's, to follow it from a process."""

    def elapsed(self) -> float:
        """Seconds of the live account: the loop's seconds times SPEED."""
        return super().elapsed() * SPEED


SPEED = 60.0
LIVE_START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.heavy
async def test_a_follow_killed_30_times_ends_with_the_live_emulators_data_exactly(
    tmp_path: Path,
) -> None:
    """A live follow SIGKILLed 30 times and resumed: tasks and errors equal the emulator's."""
    path = tmp_path / "t.sqlite"
    rng = random.Random(8)
    run = 30.0  # wall seconds of events; the data then hold still
    live = FastLive(start=LIVE_START, seed=3, until=run * SPEED, error_every=6.0)
    async with Emulator(live=live, rate_limit=None) as emu:
        live.elapsed()
        wall0 = time.time()
        args = ("follow", emu.url, str(path), LIVE_START.isoformat(), repr(wall0), repr(SPEED))
        loop = asyncio.get_running_loop()
        begin = loop.time()
        moments = sorted(rng.uniform(0.5, run) for _ in range(30))
        for moment in moments:
            process = await start_worker(*args)
            await asyncio.sleep(max(0.0, begin + moment - loop.time()))
            err = await kill(process)
            assert process.returncode == -signal.SIGKILL, err.decode()
        # The last run catches up with the held data; the test reads the file meanwhile (WAL).
        process = await start_worker(*args)
        end = live.start.timestamp() + run * SPEED + 10
        expected = {
            freeze(expected_task_row(json.loads(item)))
            for item in live.id_list(0, int(end), 0, 10**9, False, False)
        }
        expected_errors = expected_error_rows(live.expected_errors())
        deadline = loop.time() + 60
        got: list[tuple[Any, ...]] = []
        got_errors: list[tuple[Any, ...]] = []
        while loop.time() < deadline:
            await asyncio.sleep(1.0)
            if path.exists():
                got = task_rows(path)
                got_errors = error_rows(path)
                if set(got) == expected and got_errors == expected_errors:
                    break
        err = await kill(process)
        assert process.returncode == -signal.SIGKILL, err.decode()
    assert sum(1 for row in got if row[4] is not None) > 100  # completions were delivered
    assert len(got) == len(expected)
    assert set(got) == expected
    assert got_errors == expected_errors


# -- Store.follow in process, on a virtual clock ------------------------------------------------


@pytest.mark.looptime
async def test_store_follow_through_cancellations_commits_per_call_and_ends_exact(
    tmp_path: Path,
) -> None:
    """3 virtual hours, 12 cancellations: tables exact; at most one commit per call."""
    path = tmp_path / "t.sqlite"
    live = Live(start=LIVE_START, seed=4, until=3 * 3600.0, error_every=20.0)
    rng = random.Random(3)
    commits = 0
    async with Emulator(live=live, rate_limit=None) as emu:
        live.elapsed()
        loop = asyncio.get_running_loop()
        begin = loop.time()

        async def follow() -> None:
            nonlocal commits
            async with dfs_async.Client(
                "login", "password", base_url=emu.url, now=live.now
            ) as client:
                with Store(path) as store:
                    resume = store.follow_state("ids")
                    follower = client.backlinks.follow_ids(
                        None if resume else LIVE_START - timedelta(minutes=1),
                        poll_interval=60.0,
                        resume=resume,
                    )
                    async for _ in store.follow("ids", follower):
                        commits += 1

        moments = [*sorted(rng.uniform(0, 3 * 3600.0) for _ in range(12)), 3 * 3600.0 + 900]
        for moment in moments:
            task = asyncio.create_task(follow())
            await asyncio.sleep(begin + moment - loop.time())
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        calls = sum(1 for r in emu.requests if r.path == "/v3/backlinks/id_list")
        end = int(live.start.timestamp()) + 3 * 3600 + 10
        expected = {
            freeze(expected_task_row(json.loads(item)))
            for item in live.id_list(0, end, 0, 10**9, False, False)
        }
    got = task_rows(path)
    assert set(got) == expected
    assert len(got) == len(expected) > 1000
    assert sum(1 for row in got if row[4] is not None) > 1000
    # A commit per call that brought something, at most: a batch, not a record, at a time.
    assert commits <= calls
    assert commits < len(live.history) / 3
