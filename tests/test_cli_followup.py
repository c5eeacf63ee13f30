"""What the first round of the CLI's review fixes (test_cli_review.py) left open: every
option left out comes from the state, a device as -o is not locked, a symlinked -o shares its
target's lock (all through the real entry point), and a new output file's directory entry is
made durable (through an fsync seam: a power failure cannot be played in a test)."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import (
    LOGIN,
    PASSWORD,
    TASK_FIELDS,
    ago,
    api_env,
    cli_env,
    csv_cells,
    expected_task,
    read_csv,
    run_cli,
    run_cli_async,
    sent_datetime_to,
    summary,
)
from test_cli_review import IN_USE, SINCE, start_cli, until

from dfs_async.cli.writers import Output
from dfs_async.testing import Emulator, Fault

#: A small demo export (run_cli's environment pins the demo's clock).
DEMO = ("id-list", "--emulate", "--emulate-tasks", "10", "--from", "30d", "-q")


async def test_a_resume_takes_format_and_api_from_the_state(tmp_path: Path) -> None:
    """Cut short, resumed with only -o and --state: the state's --format and --api, not the
    defaults; given again, they must still match."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, rate_limit=None) as emu:
        emu.inject(2, Fault.http_status(500))
        start = ago(170)
        files = ("--base-url", emu.url, "-o", "tasks.csv", "--state", "tasks.state")
        code, _, err = await run_cli_async(
            "id-list", "--from", start, "--api", "serp", "--format", "csv", "--page-size",
            "500", "--retries", "0", *files, cwd=tmp_path, env=api_env(),
        )  # fmt: skip
        assert code == 4, err
        mismatches = [
            await run_cli_async("id-list", *given, *files, cwd=tmp_path, env=api_env())
            for given in (["--format", "jsonl"], ["--api", "backlinks"])
        ]
        code, out, err = await run_cli_async("id-list", *files, cwd=tmp_path, env=api_env())
        expected = emu.expected_id_list(start, sent_datetime_to(emu))
        paths = {request.path for request in emu.requests}
        limits = [request.body[0]["limit"] for request in emu.requests[2:]]
    assert mismatches == [
        (
            2,
            "",
            "dfs-async: error: the state file tasks.state is for --format csv, not jsonl; use "
            "the same options, or delete it to start again\n",
        ),
        (
            2,
            "",
            "dfs-async: error: the state file is for /v3/serp/id_list, not /v3/backlinks/id_list\n",
        ),
    ]
    assert (code, out) == (0, ""), err
    resuming, closing = err.splitlines()
    assert resuming == "resuming from tasks.state: 500 records already written"
    assert re.fullmatch(summary(r"2,000 records \(2,500 with the earlier runs\)", 5, 5), closing)
    assert read_csv(tmp_path / "tasks.csv") == [
        TASK_FIELDS,
        *[csv_cells(expected_task(item), TASK_FIELDS) for item in expected],
    ]
    assert paths == {"/v3/serp/id_list"}
    assert limits == [500] * 5


# -- item 3: which files are locked -----------------------------------------------------------


def test_a_device_as_output_is_written_and_not_locked(tmp_path: Path) -> None:
    """-o /dev/null works, and no /dev/null.lock appears (as root) or refuses it (as anyone)."""
    created = "null.lock" not in os.listdir("/dev")
    try:
        result = run_cli(*DEMO, "-o", "/dev/null", cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert not os.path.exists("/dev/null.lock")
    finally:
        if created and os.path.exists("/dev/null.lock"):  # left by the code before the fix
            os.unlink("/dev/null.lock")


async def test_two_names_of_one_output_share_its_lock(tmp_path: Path) -> None:
    """-o through a symlink is the same output: refused while a run writes its target."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, rate_limit=None) as emu:
        args = ("id-list", "--from", ago(170), "--base-url", emu.url)
        emu.inject(2, Fault.delay(60.0))  # the first run holds its export during call 2
        (tmp_path / "latest.jsonl").symlink_to("out.jsonl")
        first = await start_cli(*args, "-o", "out.jsonl", cwd=tmp_path, env=api_env())
        try:
            await until(lambda: len(emu.requests) == 2)
            result = await run_cli_async(*args, "-o", "latest.jsonl", cwd=tmp_path, env=api_env())
            calls = len(emu.requests)
        finally:
            first.kill()
            await first.wait()
    code, out, err = result
    assert (code, out) == (2, "")
    assert re.fullmatch(
        f"dfs-async: error: latest.jsonl is in use by process {first.pid} on "
        f"{re.escape(socket.gethostname())}, running since {SINCE} "
        f"\\(it holds {re.escape(str(tmp_path / 'out.jsonl.lock'))}\\){re.escape(IN_USE)}",
        err,
    ), err
    assert calls == 2  # refused before any call


# -- item 14: a new output's name survives a power failure ------------------------------------


def test_a_new_output_file_has_its_directory_synced(tmp_path: Path) -> None:
    """A fresh -o file: its directory is fsynced once the file is in it, then its data."""
    target = tmp_path / "new.csv"
    synced: list[tuple[str, int]] = []

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):  # which file's name the directory holds by then
            synced.append(("directory", target.stat().st_ino))
        else:
            synced.append(("file", info.st_ino))
        os.fsync(fd)

    output = Output.to_file(str(target), "csv", TASK_FIELDS, None, fsync=fsync)
    output.close()
    assert synced == [("directory", target.stat().st_ino), ("file", target.stat().st_ino)]
    assert read_csv(target) == [TASK_FIELDS]  # the header, written (and synced) second


# -- item 12: --password-file, what is left -----------------------------------------------------

CR_PASSWORD = "pa\rss word "  # a lone CR and a blank, both the password's own


async def test_a_password_file_is_read_as_bytes(tmp_path: Path) -> None:
    """A lone CR inside the password is kept (no newline translation); only CR LF ends it."""
    (tmp_path / "password").write_bytes(CR_PASSWORD.encode() + b"\r\nsecond line\n")
    async with Emulator(LOGIN, CR_PASSWORD, n_tasks=30, seed=3) as emu:
        code, out, err = await run_cli_async(
            "id-list", "--from", ago(170), "--base-url", emu.url, "-q", "--login", LOGIN,
            "--password-file", "password", cwd=tmp_path, env=cli_env(),
        )  # fmt: skip
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 30


def test_a_password_file_not_in_utf8_is_one_clear_line(tmp_path: Path) -> None:
    """A --password-file that is not UTF-8: exit 2 saying so, no traceback."""
    (tmp_path / "latin1").write_bytes("caf\xe9\n".encode("latin-1"))
    args = ("id-list", "--from", "30d", "--login", LOGIN, "--password-file", "latin1")
    result = run_cli(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", "dfs-async: error: --password-file: latin1 is not UTF-8 text\n"
    )  # fmt: skip


@pytest.mark.skipif(
    "libfaketime" in os.environ.get("LD_PRELOAD", ""),
    reason="libfaketime opens a file at start-up, which takes the closed descriptor 0",
)
def test_password_file_from_a_closed_stdin_is_one_clear_line(tmp_path: Path) -> None:
    """--password-file - with standard input closed: exit 2 saying so, no traceback."""
    args = ("id-list", "--from", "30d", "--login", LOGIN, "--password-file")
    closed = subprocess.run(  # noqa: S603 -- a fixed shell line; our interpreter and module
        ["/bin/sh", "-c", 'exec "$@" <&-', "sh", sys.executable, "-m", "dfs_async", *args, "-"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (closed.returncode, closed.stdout, closed.stderr) == (
        2, "", "dfs-async: error: --password-file -: standard input is closed\n"
    )  # fmt: skip
