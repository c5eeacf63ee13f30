"""The command line's --follow and --update against a live emulator in this process.

The CLI runs in a subprocess, so there is no virtual clock: the live account runs on the real
clock with short queue times, its history ten minutes deep when the test starts, and the CLI
polls every second. Rows are read with "a later row supersedes an earlier".
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dfs_async.cli.follow import follow_line
from dfs_async.testing import Emulator, Live

UTC = timezone.utc
ROOT = Path(__file__).resolve().parent.parent
LOGIN = "follow@example.com"
PASSWORD = "follow-password-for-the-emulator"


def env() -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    values["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), values.get("PYTHONPATH")]))
    values.update(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD=PASSWORD)
    return values


async def spawn(*args: str, cwd: Path) -> asyncio.subprocess.Process:
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


async def run(*args: str, cwd: Path) -> tuple[int, str]:
    process = await spawn(*args, cwd=cwd)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


def live_account(
    loop: asyncio.AbstractEventLoop, *, seconds: float, seed: int, history: float = 600.0
) -> Live:
    """`history` seconds already played, then `seconds` more of live events, real clock."""
    return Live(
        start=datetime.now(UTC) - timedelta(seconds=history),
        origin=loop.time() - history,
        seed=seed,
        post_every=(0.3, 0.6),
        # Queued at least 30 s: longer than any gap between two polls of a run and the next
        # (a restart under load, a throttled call), so every queued version is seen.
        queue=((30.0, 60.0, 1.0),),
        error_every=1.5,
        until=history + seconds,
    )


def since(live: Live) -> str:
    return (live.start - timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S")


def task_rows(path: Path) -> list[tuple[Any, ...]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (
            r["id"],
            None if r["datetime_done"] is None else r["datetime_done"][:19].replace("T", " "),
            r["status"],
            r["cost"],
        )
        for r in rows
    ]


def _norm(v: tuple[Any, ...]) -> tuple[Any, ...]:
    return (v[0], v[1] and v[1][:19], v[2], v[3])


def history(live: Live) -> set[tuple[Any, ...]]:
    return {_norm(v) for v in live.history}


def current(live: Live) -> dict[str, tuple[Any, ...]]:
    """Each task's version now."""
    live.advance()
    return {v[0]: _norm(v) for v in live.history}


def error_rows(path: Path) -> list[tuple[Any, ...]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["id"], r["datetime"][:19].replace("T", " "), r["http_time"]) for r in rows]


def test_the_progress_line_says_new_updated_calls_and_the_next_poll() -> None:
    """The live line of a follow names its new and updated records, calls and the countdown."""
    assert follow_line(new=1200, updated=31, calls=14, next_poll=41.2) == (
        "1,200 new · 31 updated · 14 calls · next poll in 0:00:42"
    )
    assert follow_line(new=0, updated=0, calls=1, next_poll=None) == (
        "0 new · 0 updated · 1 call · polling"
    )


@pytest.mark.heavy
async def test_follow_through_sigkills_writes_every_version_and_entry_once(
    tmp_path: Path,
) -> None:
    """--follow of id-list and errors, SIGKILLed 6 times at random and resumed with --state,
    then SIGTERM and a last --update: each file, a later row superseding an earlier, holds
    the emulator's history exactly, every version once."""
    loop = asyncio.get_running_loop()
    # No history: every version appears while a follow runs (the first completion 30 s in).
    live = live_account(loop, seconds=50.0, seed=21, history=0.0)
    rng = random.Random(21)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        common = ("--base-url", emu.url, "--poll-interval", "2", "-q")
        commands = [
            ("id-list", "--from", since(live), "-o", "tasks.jsonl", "--state", "tasks.state"),
            ("errors", "--from", since(live), "-o", "errors.jsonl", "--state", "errors.state"),
        ]
        for _ in range(6):
            processes = [await spawn(*c, *common, "--follow", cwd=tmp_path) for c in commands]
            await asyncio.sleep(rng.uniform(3.0, 7.0))
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
            assert b"interrupted" in said
        for command in commands:
            code, err = await run(*command, *common, "--update", cwd=tmp_path)
            assert code == 0, err
    rows = task_rows(tmp_path / "tasks.jsonl")
    assert len(rows) == len(set(rows))
    assert set(rows) == history(live)
    assert sum(1 for row in rows if row[1] is not None) > 10  # changes, not only new tasks
    entries = error_rows(tmp_path / "errors.jsonl")
    expected = [(e["id"], e["datetime"], e["http_time"]) for e in live.expected_errors()]
    assert sorted(entries) == sorted(expected)
    assert len(expected) > 20


@pytest.mark.heavy
async def test_update_after_an_export_run_repeatedly_writes_each_change_once(
    tmp_path: Path,
) -> None:
    """An export with --state, then --update every few seconds (a cron job's "hourly"): each
    run exits 0 and the file holds every version a run could see, each once."""
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=24.0, seed=22)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        args: tuple[str, ...] = ("--base-url", emu.url, "-o", "tasks.csv", "--format", "csv")
        args = (*args, "--state", "tasks.state", "-q")
        code, err = await run("id-list", "--from", since(live), *args, cwd=tmp_path)
        assert code == 0, err
        surely_seen = set()
        for _ in range(6):
            await asyncio.sleep(4.0)
            before = current(live)
            code, err = await run("id-list", *args, "--update", cwd=tmp_path)
            assert code == 0, err
            after = current(live)
            surely_seen |= {v for key, v in before.items() if after.get(key) == v}
        assert live.origin is not None
        assert live.until is not None
        await asyncio.sleep(max(0.0, live.origin + live.until + 2.0 - loop.time()))
        code, err = await run("id-list", *args, "--update", cwd=tmp_path)
        assert code == 0, err
        final = set(current(live).values())
    rows = csv_rows(tmp_path / "tasks.csv")
    assert len(rows) == len(set(rows))
    assert set(rows) <= history(live)
    assert surely_seen | final <= set(rows)


async def test_an_updates_summary_says_what_the_rows_it_wrote_cost(tmp_path: Path) -> None:
    """--update's closing line, like an export's, sums the cost of the rows this run wrote."""
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=12.0, seed=23)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        args = ("--base-url", emu.url, "-o", "tasks.jsonl", "--state", "tasks.state")
        code, err = await run("id-list", "--from", since(live), *args, cwd=tmp_path)
        assert code == 0, err
        before = len((tmp_path / "tasks.jsonl").read_text().splitlines())
        await asyncio.sleep(4.0)
        code, err = await run("id-list", *args, "--update", cwd=tmp_path)
        assert code == 0, err
    lines = (tmp_path / "tasks.jsonl").read_text().splitlines()[before:]
    cost = math.fsum(json.loads(line)["cost"] for line in lines)
    assert lines
    records = f"{len(lines):,} record{'' if len(lines) == 1 else 's'}"
    assert f"\n{records} costing ${cost:,.4f} in " in f"\n{err}"


def csv_rows(path: Path) -> list[tuple[Any, ...]]:
    import csv

    with path.open(newline="") as file:
        return [
            (
                r["id"],
                r["datetime_done"][:19].replace("T", " ") if r["datetime_done"] else None,
                r["status"],
                float(r["cost"]),
            )
            for r in csv.DictReader(file)
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "1h", "--update"), "--update needs --state"),
        (("--from", "1h", "--follow", "--to", "10m"), "--follow runs up to now: leave out --to"),
        (("--from", "1h", "--follow", "--max-items", "5"), "--follow and --max-items do not"),
        (("--from", "1h", "--follow", "--sort", "desc"), "--follow delivers records as they come"),
        (("--from", "1h", "--poll-interval", "5"), "--poll-interval needs --follow"),
        (("--from", "1h", "--follow", "--poll-interval", "0.5"), "expected a number of seconds"),
        (("--from", "1h", "--follow", "--update"), "not allowed with argument"),
    ],
)
def test_options_that_do_not_go_with_a_follow_are_refused(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    """Each mismatched option: exit 2 and one line saying what to change, nothing written."""
    done = subprocess.run(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "dfs_async", "id-list", *args, "-o", "t.jsonl"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []


async def test_a_follows_state_is_not_continued_as_a_plain_export(tmp_path: Path) -> None:
    """A state file written by --update, run again without --follow/--update: exit 2, clear."""
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=5.0, seed=23)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        args = ("--base-url", emu.url, "-o", "t.jsonl", "--state", "t.state", "-q")
        code, err = await run("id-list", "--from", since(live), *args, "--update", cwd=tmp_path)
        assert code == 0, err
        size = (tmp_path / "t.jsonl").stat().st_size
        code, err = await run("id-list", *args, cwd=tmp_path)
    assert code == 2
    assert "the state file t.state is a follow's; add --follow or --update to continue it" in err
    assert (tmp_path / "t.jsonl").stat().st_size == size > 0


def read_for(fd: int, seconds: float) -> bytes:
    """What `fd` yields within `seconds` (wall clock), never blocking past them."""
    import select
    import time

    chunks, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                chunks.append(os.read(fd, 65536))
            except OSError:  # the child's end closed
                break
    return b"".join(chunks)


@pytest.mark.heavy
@pytest.mark.skipif(
    "libfaketime" in os.environ.get("LD_PRELOAD", ""),
    reason="under libfaketime the live line (rich's refresh thread) was seen never to draw, "
    "and the terminal then stays silent",
)
async def test_on_a_terminal_the_line_shows_new_updated_calls_and_the_next_poll(
    tmp_path: Path,
) -> None:
    """--follow with stderr on a terminal: the live line counts new and updated records and
    calls, and counts down to the next poll; SIGTERM then ends it with exit 143."""
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    loop = asyncio.get_running_loop()
    live = live_account(loop, seconds=30.0, seed=24)
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, bytes([24, 0, 80, 0, 0, 0, 0, 0]))
    chunks: list[bytes] = []
    try:
        async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dfs_async",
                *("id-list", "--from", since(live), "--base-url", emu.url, "-o", "t.jsonl"),
                *("--follow", "--poll-interval", "5"),
                cwd=tmp_path,
                env={**env(), "TERM": "xterm", "COLUMNS": "80", "LINES": "24"},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=child,
            )
            os.close(child)
            child = -1
            chunks.append(await loop.run_in_executor(None, read_for, parent, 8.0))
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 128 + signal.SIGTERM
    finally:
        os.close(parent)
        if child >= 0:
            os.close(child)
    screen = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", b"".join(chunks)).decode()
    rows = [row.strip() for row in re.split(r"[\r\n]+", screen) if " new · " in row]
    line = re.compile(
        r"([\d,]+) new · ([\d,]+) updated · ([\d,]+) calls? · "
        r"(?:next poll in 0:00:0(\d)|polling)"
    )
    matches = [line.fullmatch(row) for row in rows]
    assert rows
    assert all(matches), rows
    waits = {m.group(4) for m in matches if m is not None and m.group(4)}
    assert len(waits) >= 3  # the countdown moves
    assert max(int(m.group(1).replace(",", "")) for m in matches if m is not None) > 1000
    assert any(m is not None and int(m.group(2)) > 0 for m in matches)


def _sample_tasks() -> list[Any]:
    from dfs_async import TaskId

    posted = datetime(2026, 11, 1, 8, tzinfo=UTC)
    return [
        TaskId(
            id=f"t{i}",
            url=f"https://api.dataforseo.com/v3/x/{i}",
            datetime_posted=posted + timedelta(seconds=i),
            datetime_done=None if i % 2 else posted + timedelta(minutes=i),
            status="Task In Queue." if i % 2 else 'Ok, "quoted"\nline',
            cost=0.0 if i % 2 else 0.0025 * i,
            metadata=None if i % 3 else {"se": i, "tags": ["a", "b"]},
        )
        for i in range(7)
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_read_back_gives_the_records_written_up_to_the_saved_size(fmt: str, tmp_path: Path) -> None:
    """Our own JSON Lines and CSV read back as the same records, and only the saved bytes."""
    from dfs_async.cli.follow import read_back
    from dfs_async.cli.writers import csv_rows, field_names, jsonl_bytes

    tasks = _sample_tasks()
    path = tmp_path / f"t.{fmt}"
    if fmt == "jsonl":
        first = jsonl_bytes(tasks[:5])
        path.write_bytes(first + jsonl_bytes(tasks[5:]))
    else:
        first = csv_rows(tasks[:5], header=field_names(type(tasks[0]))).encode()
        path.write_bytes(first + csv_rows(tasks[5:]).encode())
    assert list(read_back(str(path), fmt, "id-list", path.stat().st_size)) == tasks
    assert list(read_back(str(path), fmt, "id-list", len(first))) == tasks[:5]


def test_read_back_names_a_row_that_is_not_ours(tmp_path: Path) -> None:
    """An edited output file: exit 2 naming the record, no traceback of the parser."""
    from dfs_async.cli.exits import CliError
    from dfs_async.cli.follow import read_back
    from dfs_async.cli.writers import jsonl_bytes

    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl_bytes(_sample_tasks()[:2]) + b'{"id": "x"}\n')
    message = r"cannot read back .*t.jsonl, record 3: no field 'datetime_posted'"
    with pytest.raises(CliError, match=message) as info:
        list(read_back(str(path), "jsonl", "id-list", path.stat().st_size))
    assert info.value.code == 2


@pytest.mark.heavy
async def test_update_finishes_an_interrupted_export_then_continues_it(tmp_path: Path) -> None:
    """An export SIGKILLed mid-way, then --update: it is finished, then followed; the file
    holds every task, each version at most once, the last row of each its version now."""
    loop = asyncio.get_running_loop()
    # A minute of history: the first pages hold tasks still queued, which change later.
    live = live_account(loop, seconds=12.0, seed=25, history=60.0)
    async with Emulator(LOGIN, PASSWORD, live=live, rate_limit=None) as emu:
        args = ("--base-url", emu.url, "-o", "t.jsonl", "--state", "t.state", "-q")
        # 10 a page: the 11th call waits a minute for the client's quota; killed before.
        process = await spawn(
            "id-list", "--from", since(live), "--page-size", "10", *args, cwd=tmp_path
        )
        await asyncio.sleep(4.0)
        process.send_signal(signal.SIGKILL)
        await process.wait()
        partial = len(task_rows(tmp_path / "t.jsonl"))
        assert live.origin is not None
        assert live.until is not None
        await asyncio.sleep(max(0.0, live.origin + live.until + 2.0 - loop.time()))
        code, err = await run("id-list", *args, "--update", cwd=tmp_path)
        assert code == 0, err
        now = current(live)
    rows = task_rows(tmp_path / "t.jsonl")
    assert 0 < partial < len(now) < len(rows)
    assert len(rows) == len(set(rows))
    assert {row[0]: row for row in rows} == now
