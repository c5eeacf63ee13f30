"""`--follow` and `--update` into an SQLite output: the file ends as the account is, exactly."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_follow_cli import LOGIN, PASSWORD, live_account, run, since, spawn

from dfs_async.testing import Emulator, Live

#: Minutes of real-clock kill loops: .ci/run runs these at one faked instant of its eight.
pytestmark = pytest.mark.heavy

KILLS = 30


def final_tasks(live: Live) -> dict[str, tuple[Any, ...]]:
    """Each task's last version (id, datetime_done, status, cost), as the data hold still."""
    last: dict[str, tuple[Any, ...]] = {}
    for task_id, done, status, cost in live.history:
        last[task_id] = (task_id, done and done[:19], status, cost)
    return last


def stored_tasks(path: Path) -> dict[str, tuple[Any, ...]]:
    """The tasks table in the same form (the store keeps ISO 8601 UTC text)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, datetime_done, status, cost FROM tasks").fetchall()
    return {
        task_id: (task_id, None if done is None else done[:19].replace("T", " "), status, cost)
        for task_id, done, status, cost in rows
    }


def stored_errors(path: Path) -> Counter[tuple[Any, ...]]:
    """The errors table: each entry (id, datetime, http_time) with its occurrences."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT id, datetime, http_time, occurrences FROM errors").fetchall()
    counted: Counter[tuple[Any, ...]] = Counter()
    for task_id, moment, http_time, occurrences in rows:
        counted[(task_id, moment[:19].replace("T", " "), http_time)] += occurrences
    return counted


async def test_follow_into_sqlite_through_30_sigkills_ends_as_the_account_is(
    tmp_path: Path,
) -> None:
    """--follow of id-list and errors into two SQLite files, SIGKILLed 30 times at random
    moments and started again, then SIGTERM and a last --update: the tasks table equals the
    account's final task list field for field, and the errors table its entries, exactly."""
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=70.0, seed=31, history=0.0)
    rng = random.Random(31)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        common = ("--base-url", emu.url, "--poll-interval", "1", "-q")
        commands = [
            ("id-list", "--from", since(live), "-o", "tasks.sqlite"),
            ("errors", "--from", since(live), "-o", "errors.db"),
        ]
        for _ in range(KILLS):
            processes = [await spawn(*c, *common, "--follow", cwd=tmp_path) for c in commands]
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            for process in processes:
                process.send_signal(signal.SIGKILL)
                await process.wait()
        processes = [await spawn(*c, *common, "--follow", cwd=tmp_path) for c in commands]
        assert live.origin is not None
        assert live.until is not None
        await asyncio.sleep(max(0.0, live.origin + live.until + 3.0 - loop.time()))
        for process in processes:
            process.send_signal(signal.SIGTERM)
            _, said = await process.communicate()
            assert process.returncode == 128 + signal.SIGTERM, said
        for command in commands:
            code, err = await run(*command, *common, "--update", cwd=tmp_path)
            assert code == 0, err
        expected_errors = Counter(
            (e["id"], e["datetime"][:19], e["http_time"]) for e in live.expected_errors()
        )
    tasks = stored_tasks(tmp_path / "tasks.sqlite")
    assert tasks == final_tasks(live)
    assert sum(1 for row in tasks.values() if row[1] is not None) > 20  # completions too
    assert stored_errors(tmp_path / "errors.db") == expected_errors
    assert sum(expected_errors.values()) > 20


async def test_update_into_sqlite_continues_the_follow_kept_in_the_file(tmp_path: Path) -> None:
    """--update -o FILE.sqlite needs no --from and no --state: the file says where it ended;
    on a file with no follow or export of the endpoint it asks for --from (exit 2)."""
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=8.0, seed=32)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        common = ("--base-url", emu.url, "-q", "-o", "tasks.sqlite")
        code, err = await run("id-list", *common, "--update", cwd=tmp_path)
        assert (code, err) == (
            2,
            "dfs-async: error: --from is required: tasks.sqlite holds no export or follow of "
            "backlinks/id_list to continue\n",
        )
        code, err = await run("id-list", "--from", since(live), *common, cwd=tmp_path)
        assert (code, err) == (0, "")
        assert live.origin is not None
        assert live.until is not None
        await asyncio.sleep(max(0.0, live.origin + live.until + 1.0 - loop.time()))
        for _ in range(2):  # the first continues the export, the second the follow it saved
            code, err = await run("id-list", *common, "--update", cwd=tmp_path)
            assert (code, err) == (0, "")
        with contextlib.closing(sqlite3.connect(tmp_path / "tasks.sqlite")) as conn:
            kinds = conn.execute("SELECT stream, kind FROM state").fetchall()
    assert kinds == [("backlinks/id_list", "follow")]
    assert stored_tasks(tmp_path / "tasks.sqlite") == final_tasks(live)
