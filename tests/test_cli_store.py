"""`-o FILE.sqlite` and `dfs-async report`, run as real processes against an emulator here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dfs_async import read_store
from dfs_async._report import build_report, render_table, report_json
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "cli@example.com"
PASSWORD = "s3cret-Pa55word"
ROOT = Path(__file__).resolve().parents[1]
SUMMARY_TAIL = r" in {pages} pages?, {calls} calls?, [0-9]+\.[0-9] s rate-limit wait, [0-9.]+ s"


def env() -> dict[str, str]:
    """The environment with the emulator's credentials and this source tree."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
    return {**base, "DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}


async def start(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    """Start `python -m dfs_async ARGS`, without blocking the loop the emulator serves on."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dfs_async",
        *args,
        cwd=cwd,
        env=env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the CLI to its end: exit code, stdout, stderr."""
    process = await start(*args, cwd=cwd)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def ago(days: float) -> str:
    """`days` before now in the API's form."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S +00:00")


def iso(text: str | None) -> str | None:
    """An API datetime as the store writes it."""
    if text is None:
        return None
    if text[-6] in "+-":
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    else:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def task_rows(path: Path) -> list[tuple[Any, ...]]:
    """The tasks table: id, url, posted, done, status, cost, metadata (JSON text), sorted."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT id, url, datetime_posted, datetime_done, status, cost, metadata FROM tasks"
        ).fetchall()
    return sorted(
        (*row[:6], None if row[6] is None else json.dumps(json.loads(row[6]), sort_keys=True))
        for row in rows
    )


def expected_rows(items: Sequence[Mapping[str, Any]], metadata: bool) -> list[tuple[Any, ...]]:
    """The tasks rows emulator items must become."""
    return sorted(
        (
            i["id"],
            i["url"],
            iso(i["datetime_posted"]),
            iso(i["datetime_done"]),
            i["status"],
            i["cost"],
            json.dumps(i["metadata"], sort_keys=True) if metadata else None,
        )
        for i in items
    )


def cost_text(items: Sequence[Mapping[str, Any]]) -> str:
    """What the summary line says the items cost."""
    return f"${math.fsum(i['cost'] for i in items):,.4f}"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with 8,000 tasks and 1,500 errors entries, no rate limit."""
    async with Emulator(
        LOGIN, PASSWORD, n_tasks=8000, n_errors=1500, seed=6, rate_limit=None
    ) as emu:
        yield emu


def window_end(emu: Emulator) -> str:
    """The datetime_to the CLI fixed at its start (from its first request)."""
    body = emu.requests[0].body
    assert isinstance(body, list)
    value = body[0]["datetime_to"]
    assert isinstance(value, str)
    return value


async def test_id_list_into_sqlite_is_the_emulators_data_and_says_its_cost(
    emulator: Emulator, tmp_path: Path
) -> None:
    """-o tasks.sqlite: the tasks table is the window's tasks exactly; the summary says the cost."""
    start = ago(100)
    code, out, err = await run(
        "id-list", "--from", start, "-o", "tasks.sqlite", "--base-url", emulator.url, cwd=tmp_path
    )
    assert code == 0, err
    assert out == ""
    items = emulator.expected_id_list(start, window_end(emulator))
    assert len(items) > 4000
    assert task_rows(tmp_path / "tasks.sqlite") == expected_rows(items, metadata=False)
    pages = len(items) // 1000 + 1
    pattern = f"{len(items):,} records costing \\{cost_text(items)}" + SUMMARY_TAIL.format(
        pages=pages, calls=pages
    )
    assert re.fullmatch(pattern + "\n", err), err
    with contextlib.closing(sqlite3.connect(tmp_path / "tasks.sqlite")) as conn:
        ((stream, kind, state),) = conn.execute("SELECT stream, kind, state FROM state").fetchall()
    assert (stream, kind, json.loads(state)["done"]) == ("backlinks/id_list", "stream", True)


async def test_errors_into_a_db_file_are_the_entries_exactly(
    emulator: Emulator, tmp_path: Path
) -> None:
    """-o errors.db: one row per entry, every field, and no cost in the summary."""
    code, _, err = await run("errors", "-o", "errors.db", "--base-url", emulator.url, cwd=tmp_path)
    assert code == 0, err
    with contextlib.closing(sqlite3.connect(tmp_path / "errors.db")) as conn:
        rows = sorted(
            conn.execute(
                "SELECT id, datetime, function, error_code, error_message, http_url, http_method, "
                "http_code, http_time, http_response, occurrences FROM errors"
            )
        )
    expected = sorted(
        (
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
            1,
        )
        for e in emulator.errors
    )
    assert rows == expected
    assert "costing" not in err
    assert err.startswith("1,500 records in 2 pages")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "t.sqlite", "--state", "t.state"],
            "--state is not needed with an SQLite output: the state is kept inside t.sqlite, "
            "committed with each page; drop --state (see 'dfs-async id-list --help')",
        ),
        (
            ["--format", "sqlite"],
            "--format sqlite needs -o FILE: a database cannot go to standard output "
            "(see 'dfs-async id-list --help')",
        ),
    ],
)
async def test_sqlite_mistakes_exit_2_before_any_call(
    args: list[str], message: str, emulator: Emulator, tmp_path: Path
) -> None:
    """--state with a database, or a database to stdout: exit 2, one line, no call."""
    code, out, err = await run(
        "id-list", "--from", "30d", *args, "--base-url", emulator.url, cwd=tmp_path
    )
    assert (code, out, err) == (2, "", f"dfs-async: error: {message}\n")
    assert emulator.requests == []


async def test_a_file_that_is_not_a_store_exits_2_and_is_left_alone(
    emulator: Emulator, tmp_path: Path
) -> None:
    """-o notes.db that holds other data: exit 2 naming it, the file untouched, no call."""
    notes = tmp_path / "notes.db"
    with contextlib.closing(sqlite3.connect(notes)) as conn:
        conn.execute("CREATE TABLE mine (x)")
        conn.commit()
    before = notes.read_bytes()
    code, _, err = await run(
        "id-list", "--from", "30d", "-o", "notes.db", "--base-url", emulator.url, cwd=tmp_path
    )
    assert (code, err) == (
        2,
        "dfs-async: error: notes.db is an SQLite file but not a dfs-async store (no meta "
        "table); -o needs a dfs-async store or a new file\n",
    )
    assert notes.read_bytes() == before
    assert emulator.requests == []


def count_tasks(path: Path) -> int:
    """Tasks in the file now, read beside the writer (WAL); 0 before the tables exist."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
        except sqlite3.OperationalError:  # the writer has not made the tables yet
            return 0


async def wait_for_rows(path: Path, count: int, process: asyncio.subprocess.Process) -> None:
    """Read the file until it holds `count` tasks, while `process` writes it."""
    for _ in range(400):
        if count_tasks(path) >= count:
            return
        assert process.returncode is None
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never held {count} tasks")


async def test_sigkill_mid_export_then_the_same_command_continues_exactly(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Killed while a call hangs after 3 pages, the rerun asks from offset 3,000 and ends exact."""
    emulator.inject(4, Fault.delay(600))
    start = ago(100)
    args = ("id-list", "--from", start, "-o", "t.sqlite", "--base-url", emulator.url)
    process = await start_cli(args, tmp_path)
    await wait_for_rows(tmp_path / "t.sqlite", 3000, process)
    await asyncio.sleep(0.2)  # the fourth call is hanging: nothing more will come
    process.send_signal(signal.SIGKILL)
    await process.communicate()
    assert process.returncode == -signal.SIGKILL
    first = len(emulator.requests)
    end = window_end(emulator)
    code, _, err = await run(*args, cwd=tmp_path)
    assert code == 0, err
    items = emulator.expected_id_list(start, end)
    assert task_rows(tmp_path / "t.sqlite") == expected_rows(items, metadata=False)
    later = emulator.requests[first:]
    body = later[0].body
    assert isinstance(body, list)
    assert (body[0]["offset"], body[0]["datetime_to"]) == (3000, end)
    resumed, closing = err.splitlines()
    assert resumed == "resuming backlinks/id_list from t.sqlite: 3,000 records already written"
    rest = len(items) - 3000
    assert closing.startswith(
        f"{rest:,} records ({len(items):,} with the earlier runs) costing "
        f"{cost_text(items[3000:])} in "
    )


async def start_cli(args: tuple[str, ...], cwd: Path) -> asyncio.subprocess.Process:
    """Start the CLI with `args`."""
    return await start(*args, cwd=cwd)


async def test_a_second_writer_exits_2_and_the_first_finishes_exact(
    emulator: Emulator, tmp_path: Path
) -> None:
    """While one export writes t.sqlite, a second on the file exits 2 naming the first."""
    emulator.inject(3, Fault.delay(3))
    start = ago(100)
    args = ("id-list", "--from", start, "-o", "t.sqlite", "--base-url", emulator.url)
    first = await start_cli(args, tmp_path)
    await wait_for_rows(tmp_path / "t.sqlite", 2000, first)
    code, out, err = await run(*args, cwd=tmp_path)
    assert (code, out) == (2, "")
    assert err == (
        f"dfs-async: error: t.sqlite is being written by process {first.pid} on "
        f"{socket.gethostname()}; a store has one writer at a time (readers are fine): wait "
        "for it to end, or write to another file\n"
    )
    _, first_err = await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 0, first_err.decode()
    items = emulator.expected_id_list(start, window_end(emulator))
    assert task_rows(tmp_path / "t.sqlite") == expected_rows(items, metadata=False)


async def test_a_finished_export_run_again_updates_rows_in_place(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A second run of a finished export re-reads the window: same rows, none doubled."""
    args = ("id-list", "--from", ago(30), "-o", "t.sqlite", "--base-url", emulator.url)
    assert (await run(*args, cwd=tmp_path))[0] == 0
    once = task_rows(tmp_path / "t.sqlite")
    code, _, err = await run(*args, cwd=tmp_path)
    assert code == 0, err
    assert "resuming" not in err
    assert task_rows(tmp_path / "t.sqlite") == once


# -- report ------------------------------------------------------------------------------------


@pytest.fixture
async def exported(emulator: Emulator, tmp_path: Path) -> Path:
    """A store with the emulator's last 100 days of tasks and its errors entries."""
    for args in (("id-list", "--from", ago(100)), ("errors",)):
        code, _, err = await run(*args, "-o", "t.sqlite", "--base-url", emulator.url, cwd=tmp_path)
        assert code == 0, err
    return tmp_path / "t.sqlite"


async def test_report_json_and_table_are_the_librarys_figures(exported: Path) -> None:
    """`report --format json` is build_report's JSON; the table is its text, within 80 columns."""
    # Whole days around the export's last 100 (the data are laid out back from now).
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=200), today + timedelta(days=2)
    window = ("--from", f"{start:%Y-%m-%d}", "--to", f"{end:%Y-%m-%d}")
    code, out, err = await run(
        "report", str(exported), *window, "--format", "json", cwd=exported.parent
    )
    assert (code, err) == (0, "")
    with contextlib.closing(read_store(exported)) as conn:
        report = build_report(conn, start, end)
    assert json.loads(out) == report_json(report)
    assert report.tasks > 4000
    code, out, err = await run("report", str(exported), *window, cwd=exported.parent)
    assert (code, err) == (0, "")
    assert out == render_table(report)
    assert max(map(len, out.splitlines())) <= 80


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.sqlite"], "missing.sqlite: no such file"),
        (["t.sqlite", "--api", "nope"], "unknown --api 'nope'; these have id_list/errors: "),
        (
            ["t.sqlite", "--from", "2026-11-02", "--to", "2026-11-01"],
            "--from (2026-11-02T00:00:00+00:00) must be before --to (2026-11-01T00:00:00+00:00)",
        ),
    ],
)
async def test_report_mistakes_exit_2_with_one_line(
    args: list[str], message: str, exported: Path
) -> None:
    """A missing file, an unknown API, an empty window: exit 2 and one line saying so."""
    code, out, err = await run("report", *args, cwd=exported.parent)
    assert (code, out) == (2, "")
    assert err.startswith(f"dfs-async: error: {message}")
    assert err.count("\n") == 1


def test_report_reads_a_store_while_it_is_being_written(tmp_path: Path) -> None:
    """The report opens read-only and takes no writer lock (a writer holds the file)."""
    from dfs_async import Store

    path = tmp_path / "t.sqlite"
    with Store(path):
        conn = read_store(path)
        try:
            text = render_table(
                build_report(
                    conn, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
                )
            )
        finally:
            conn.close()
    assert text.splitlines()[1] == "0 tasks, $0.0000: 0 still queued, 0 done, 0 failed"


async def test_ctrl_c_mid_export_exits_130_saying_how_to_continue(
    emulator: Emulator, tmp_path: Path
) -> None:
    """SIGINT while a call hangs after 2 pages: exit 130, pages kept, the hint names the file."""
    emulator.inject(3, Fault.delay(600))
    start = ago(100)
    args = ("id-list", "--from", start, "-o", "t.sqlite", "--base-url", emulator.url)
    process = await start_cli(args, tmp_path)
    await wait_for_rows(tmp_path / "t.sqlite", 2000, process)
    await asyncio.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, raw = await asyncio.wait_for(process.communicate(), 30)
    err = raw.decode()
    assert process.returncode == 130
    items = emulator.expected_id_list(start, window_end(emulator))
    assert re.fullmatch(
        f"interrupted: 2,000 records costing \\{cost_text(items[:2000])}"
        + SUMMARY_TAIL.format(pages=2, calls="[0-9]+")
        + "; run the same command to continue from t.sqlite",
        err.splitlines()[-1],
    ), err
    assert task_rows(tmp_path / "t.sqlite") == expected_rows(items[:2000], metadata=False)
