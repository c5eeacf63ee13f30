"""The command line's fixes from the outside review (issue 10), through the real entry point."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from test_cli import (
    LOGIN,
    PASSWORD,
    ago,
    api_env,
    cli_env,
    read_jsonl,
    run_cli_async,
    sent_datetime_to,
)
from test_proxy import ForwardProxy, free_port

from dfs_async import PagerState
from dfs_async.cli import locks
from dfs_async.cli.state import SavedState, save_state
from dfs_async.testing import Emulator, Fault

PROXY_SECRET = "pr0xy-Secret"
IN_USE = "; wait for it to end; two runs must not write one file\n"
#: When the holder took the lock, as its message gives it (the real clock: any value).
SINCE = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} UTC"


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with the fixtures' credentials and 2,500 tasks (three pages)."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, n_errors=10, seed=7) as emu:
        yield emu


async def start_cli(*args: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start the CLI without waiting for it; its stderr is piped."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dfs_async", *args),
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (polling the real clock: a subprocess is on the other side) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the emulator's log has no event to wait on
            await asyncio.sleep(0.02)


def ids(path: Path) -> list[str]:
    """The ids of a JSONL export, in file order."""
    return [row["id"] for row in read_jsonl(path)]


async def test_a_second_run_on_the_same_export_is_refused_and_a_killed_holder_frees_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """While a run writes -o/--state, another exits 2 naming its pid; after SIGKILL, it resumes."""
    args = ("id-list", "--from", ago(170), "--base-url", emulator.url)
    export = (*args, "-o", "out.jsonl", "--state", "s.json")
    emulator.inject(2, Fault.delay(60.0))  # the first run holds its export during call 2
    first = await start_cli(*export, cwd=tmp_path, env=api_env())
    try:
        await until(lambda: len(emulator.requests) == 2)
        calls = len(emulator.requests)
        for second in (export, (*args, "-o", "out.jsonl"), (*args, "-o", "x", "--state", "s.json")):
            code, out, err = await run_cli_async(*second, cwd=tmp_path, env=api_env())
            held = "out.jsonl" if "out.jsonl" in second else "s.json"
            assert (code, out) == (2, "")
            assert re.fullmatch(
                f"dfs-async: error: {held} is in use by process {first.pid} on "
                f"{re.escape(socket.gethostname())}, running since {SINCE} "
                f"\\(it holds {held}.lock\\){re.escape(IN_USE)}",
                err,
            ), err
        assert len(emulator.requests) == calls  # refused before any call
        first.send_signal(signal.SIGKILL)
    finally:
        await first.wait()
    assert not (tmp_path / "x").exists()

    code, _, err = await run_cli_async(*export, cwd=tmp_path, env=api_env())
    assert code == 0, err
    end = sent_datetime_to(emulator)
    expected = [item["id"] for item in emulator.expected_id_list(args[2], end)]
    assert ids(tmp_path / "out.jsonl") == expected
    assert len(expected) == 2500


async def test_a_fifo_without_a_reader_fails_at_once(emulator: Emulator, tmp_path: Path) -> None:
    """-o naming a FIFO nobody reads: exit 1 with a clear line, not a hang deaf to signals."""
    os.mkfifo(tmp_path / "pipe")
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "-o", "pipe",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.endswith(
        "dfs-async: error: writing pipe: it is a pipe (FIFO) and nothing is reading it\n"
    )


async def test_state_with_a_fifo_output_is_refused_before_any_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    """--state with -o a FIFO: exit 2 before any call, since a pipe cannot be cut back."""
    os.mkfifo(tmp_path / "pipe")
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "-o", "pipe", "--state", "s",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "dfs-async: error: --state needs -o to be a regular file, and pipe is not: a pipe or "
        "device cannot be cut back to the last saved page\n"
    )
    assert emulator.requests == []


@pytest.mark.skipif(
    "libfaketime" in os.environ.get("LD_PRELOAD", ""),
    reason="libfaketime opens a file at start-up, which takes the closed descriptor 1",
)
async def test_a_closed_stdout_is_a_clear_error_before_any_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Started with stdout closed (>&-): exit 2, 'standard output is closed', no call."""
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", 'exec "$0" -m dfs_async "$@" >&-', sys.executable,
        "id-list", "--from", ago(170), "--base-url", emulator.url,
        cwd=tmp_path, env=api_env(), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2
    assert err.decode() == "dfs-async: error: standard output is closed; pass -o FILE\n"
    assert emulator.requests == []


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
async def test_a_password_file_keeps_blanks_that_belong_to_the_password(
    tmp_path: Path, ending: str
) -> None:
    """Only the line ending is dropped: ' pa ss ' from a file works as it does from the env."""
    password = " pa ss\t "
    (tmp_path / "password").write_text(password + ending, newline="")
    async with Emulator(LOGIN, password, n_tasks=5, seed=1) as emu:
        base = ("id-list", "--from", ago(170), "--base-url", emu.url, "--login", LOGIN)
        from_file = await run_cli_async(*base, "--password-file", "password", cwd=tmp_path)
        from_env = await run_cli_async(
            *base, cwd=tmp_path, env=cli_env(DATAFORSEO_PASSWORD=password)
        )
    assert from_file[0] == 0, from_file[2]
    assert from_env[0] == 0, from_env[2]
    assert from_file[1] == from_env[1]
    assert len(from_file[1].splitlines()) == 5


async def test_dash_as_output_means_standard_output(emulator: Emulator, tmp_path: Path) -> None:
    """-o - writes to stdout and creates no file named '-'."""
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "-o", "-", "-q",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 2500
    assert os.listdir(tmp_path) == []


async def test_quiet_still_says_how_to_continue_after_an_interruption(
    emulator: Emulator, tmp_path: Path
) -> None:
    """-q hides progress and the summary, not 'run the same command to continue'."""
    emulator.inject(2, Fault.delay(60.0))
    process = await start_cli(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "-q",
        "-o", "out.jsonl", "--state", "s.json",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    await until(lambda: len(emulator.requests) == 2)
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert await process.wait() == 130
    assert err == "interrupted; run the same command to continue from s.json\n"


async def test_with_a_state_file_the_window_comes_from_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A resumed export needs no --from: omitted options come from the state file."""
    start = ago(170)
    emulator.inject(2, Fault.delay(60.0))
    first = await start_cli(
        "id-list", "--from", start, "--base-url", emulator.url,
        "-o", "out.jsonl", "--state", "s.json",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    await until(lambda: len(emulator.requests) == 2 and (tmp_path / "s.json").exists())
    first.send_signal(signal.SIGKILL)
    await first.wait()

    code, _, err = await run_cli_async(
        "id-list", "--base-url", emulator.url, "-o", "out.jsonl", "--state", "s.json",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert code == 0, err
    expected = emulator.expected_id_list(start, sent_datetime_to(emulator))
    assert ids(tmp_path / "out.jsonl") == [item["id"] for item in expected]

    code, out, err = await run_cli_async(
        "id-list", "--base-url", emulator.url, "-o", "new.jsonl", "--state", "new.json",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "dfs-async: error: --from is required: the state file new.json does not exist yet, so "
        "there is no earlier export to continue\n"
    )
    code, out, err = await run_cli_async(
        "id-list", "--base-url", emulator.url, cwd=tmp_path, env=api_env()
    )
    assert (code, out) == (2, "")
    assert err == (
        "dfs-async: error: the following arguments are required: --from (or --state of an "
        "earlier export) (see 'dfs-async id-list --help')\n"
    )


def test_the_state_file_and_its_directory_are_synced(tmp_path: Path) -> None:
    """save_state fsyncs the new file, then its directory, so the rename survives power loss."""
    synced: list[str] = []

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        os.fsync(fd)

    state = PagerState(
        api="backlinks",
        function="id_list",
        params={"datetime_from": "2026-01-01 00:00:00 +00:00"},
        page_size=1000,
        max_items=None,
        offset=0,
        yielded=0,
        seen=(),
    )
    saved = SavedState(stream=state, format="jsonl", output="/o", output_bytes=0)
    save_state(str(tmp_path / "s.json"), saved, fsync=fsync)
    assert synced == ["file", "directory"]
    assert SavedState.from_json(json.loads((tmp_path / "s.json").read_text())) == saved


def test_the_lock_file_names_its_holder(tmp_path: Path) -> None:
    """A lock held by another process is refused with that process's pid, at once."""
    script = (
        "import sys, time; from dfs_async.cli import locks\n"
        "with locks.hold([sys.argv[1]]):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script, str(tmp_path / "f")],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(locks.LockedError) as caught, locks.hold([str(tmp_path / "f")]):
            pass
        assert caught.value.holder == str(holder.pid)
        assert caught.value.host == socket.gethostname()
        assert re.fullmatch(SINCE, caught.value.started)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with locks.hold([str(tmp_path / "f")]):  # a killed holder's lock is gone
        pass


async def test_proxy_option_routes_every_call_and_never_prints_its_credentials(
    emulator: Emulator, tmp_path: Path
) -> None:
    """--proxy sends each call through the proxy; its password shows in no output, even --debug."""
    async with ForwardProxy() as proxy:
        url = f"http://agent:{PROXY_SECRET}@127.0.0.1:{proxy.port}"
        code, out, err = await run_cli_async(
            "id-list", "--from", ago(170), "--base-url", emulator.url, "--proxy", url, "--debug",
            cwd=tmp_path, env=api_env(),
        )  # fmt: skip
    assert code == 0, err
    assert len(out.splitlines()) == 2500
    assert [line for line, _ in proxy.seen] == [
        f"POST {emulator.url}/v3/backlinks/id_list HTTP/1.1"
    ] * len(emulator.requests)
    assert PROXY_SECRET not in out + err

    # A proxy that is not there: the error names the failure, not the credentials.
    dead = f"http://agent:{PROXY_SECRET}@127.0.0.1:{free_port()}"
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "--proxy", dead,
        "--retries", "0", "--debug",
        cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert code == 4
    assert "no answer from the API after retrying" in err
    assert PROXY_SECRET not in out + err

    code, out, err = await run_cli_async(
        "id-list", "--from", ago(170), "--base-url", emulator.url, "--proxy",
        f"ftp://agent:{PROXY_SECRET}@h", cwd=tmp_path, env=api_env(),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err.startswith("dfs-async: error: --proxy must be an http:// or https:// URL")
    assert PROXY_SECRET not in err
