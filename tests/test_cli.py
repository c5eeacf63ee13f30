"""The `dfs-async` command line, run as a real process (`python -m dfs_async`) against emulators."""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import dfs_async
from dfs_async._convert import parse_datetime
from dfs_async._endpoints import months_before
from dfs_async.cli.dates import parse_when, parse_when_spec
from dfs_async.cli.emulate import EMULATE_NOW_ENV, EMULATOR_DAYS
from dfs_async.cli.exits import classify, cli_wording
from dfs_async.cli.progress import progress_line, summary_line
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "cli@example.com"
PASSWORD = "s3cret-Pa55word"
ROOT = Path(__file__).resolve().parents[1]
TASK_FIELDS = ["id", "url", "datetime_posted", "datetime_done", "status", "cost", "metadata"]
ERROR_FIELDS = [
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
]
CONTINUE = "; run the same command to continue from tasks.state"
#: The --emulate tests pin the demo's clock here (through EMULATE_NOW_ENV), not to today: the
#: documented dates below then name the same records on any day. Tests at the real clock and
#: at month ends are further down.
DEMO_NOW = datetime(2026, 12, 1, tzinfo=UTC)


def summary(records: str, pages: int, calls: int) -> str:
    """A pattern for the closing line: exact counts, any duration (`records` as printed)."""
    # An id-list export also says what its tasks cost (tests/test_cli_store.py pins the sum).
    return (
        rf"{records}(?: costing \$[0-9,]+\.[0-9]{{4}})? in {pages} pages?, {calls} calls?, "
        r"[0-9]+\.[0-9] s rate-limit wait, "
        r"[0-9]+\.[0-9] s"
    )


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without any real credentials, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env[EMULATE_NOW_ENV] = DEMO_NOW.isoformat()
    env.update(extra)
    return env


def api_env() -> dict[str, str]:
    """The environment with the emulator fixtures' credentials."""
    return cli_env(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD=PASSWORD)


def run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; its exit code, stdout and stderr."""
    return subprocess.run(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "dfs_async", *args],
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def spawn_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    stdout: int,
    stderr: int,
) -> subprocess.Popen[str]:
    """Start the CLI and return at once (for signals, terminals)."""
    return subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "dfs_async", *args],
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


async def run_cli_async(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop, so an emulator in this process keeps serving."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dfs_async",
        *args,
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def iso(api_datetime: str | None) -> str | None:
    """The CLI's form of one of the API's datetimes (no offset means UTC)."""
    if api_datetime is None:
        return None
    return parse_datetime(api_datetime).isoformat()


def expected_task(item: Mapping[str, Any]) -> dict[str, Any]:
    """An emulator id_list item as the CLI writes it in JSONL."""
    return {
        "id": item["id"],
        "url": item["url"],
        "datetime_posted": iso(item["datetime_posted"]),
        "datetime_done": iso(item["datetime_done"]),
        "status": item["status"],
        "cost": item["cost"],
        "metadata": item.get("metadata"),
    }


def expected_error(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An emulator errors entry as the CLI writes it in JSONL."""
    return {**entry, "datetime": iso(entry["datetime"])}


def csv_cells(row: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """A JSONL-form row as the CLI's CSV cells: empty for None, metadata as JSON text."""
    cells = []
    for name in fields:
        value = row[name]
        if value is None:
            cells.append("")
        elif isinstance(value, dict):
            cells.append(json.dumps(value, separators=(",", ":")))
        else:
            cells.append(str(value))
    return cells


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, split as str.splitlines() splits."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file, header included."""
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def sent_datetime_to(emu: Emulator) -> str:
    """The window end the CLI fixed at its start, as it sent it."""
    body = emu.requests[0].body
    assert isinstance(body, list)
    value = body[0]["datetime_to"]
    assert isinstance(value, str)
    return value


def ago(days: float) -> str:
    """`days` before now in the API's form, which both the CLI and the emulator read."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S +00:00")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with the fixtures' credentials and 2,500 tasks."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, n_errors=300, seed=3) as emu:
        yield emu


# -- the real API's path: credentials from the environment or a file, --base-url -------------


async def test_id_list_jsonl_is_the_emulators_data_exactly(
    emulator: Emulator, tmp_path: Path
) -> None:
    """id-list to JSONL: every task once, in order, fields in record order, ISO datetimes."""
    start = ago(170)
    code, out, err = await run_cli_async(
        "id-list",
        "--from",
        start,
        "--base-url",
        emulator.url,
        "-o",
        "tasks.jsonl",
        cwd=tmp_path,
        env=api_env(),
    )
    assert (code, out) == (0, "")
    rows = read_jsonl(tmp_path / "tasks.jsonl")
    expected = emulator.expected_id_list(start, sent_datetime_to(emulator))
    assert len(expected) == 2500
    assert rows == [expected_task(item) for item in expected]
    assert list(rows[0]) == TASK_FIELDS
    assert re.fullmatch(summary("2,500 records", 3, 3) + "\n", err)


async def test_id_list_csv_with_metadata_and_password_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    """id-list --metadata to CSV, credentials from --login/--password-file: exact cells."""
    (tmp_path / "password").write_text(PASSWORD + "\n\nsecond line ignored\n")
    start = datetime.now(UTC) - timedelta(days=20)
    end = datetime.now(UTC) - timedelta(days=2)
    code, out, _ = await run_cli_async(
        "id-list",
        "--from",
        start.strftime("%Y-%m-%d %H:%M:%S"),
        "--to",
        end.astimezone(timezone(timedelta(hours=2))).strftime("%Y-%m-%d %H:%M:%S %z"),
        "--metadata",
        "--sort",
        "desc",
        "--format",
        "csv",
        "-o",
        "tasks.csv",
        "--login",
        LOGIN,
        "--password-file",
        "password",
        "--base-url",
        emulator.url,
        cwd=tmp_path,
        env=cli_env(),
    )
    assert (code, out) == (0, "")
    rows = read_csv(tmp_path / "tasks.csv")
    expected = emulator.expected_id_list(
        start.replace(microsecond=0),
        end.replace(microsecond=0),
        sort="desc",
        include_metadata=True,
    )
    assert len(expected) > 200
    assert rows[0] == TASK_FIELDS
    assert rows[1:] == [csv_cells(expected_task(item), TASK_FIELDS) for item in expected]
    assert (tmp_path / "tasks.csv").read_bytes().count(b"\r\n") == len(expected) + 1


async def test_errors_jsonl_and_csv_to_stdout(emulator: Emulator, tmp_path: Path) -> None:
    """errors, filtered by function, to stdout in both formats: the emulator's entries."""
    common = ("errors", "--function", "backlinks/live", "--base-url", emulator.url, "-q")
    code, out, err = await run_cli_async(*common, cwd=tmp_path, env=api_env())
    assert (code, err) == (0, "")
    end = sent_datetime_to(emulator)
    expected = [
        expected_error(e) for e in emulator.expected_errors("backlinks/live", datetime_to=end)
    ]
    assert len(expected) > 20
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == expected
    assert list(rows[0]) == ERROR_FIELDS

    code, out, err = await run_cli_async(*common, "--format", "csv", cwd=tmp_path, env=api_env())
    assert (code, err) == (0, "")
    assert list(csv.reader(out.splitlines())) == [
        ERROR_FIELDS,
        *[csv_cells(row, ERROR_FIELDS) for row in expected],
    ]


# Text that CSV has to quote, and characters that str.splitlines() breaks a line at.
AWKWARD = 'a "quoted", comma\nnew line\r\ncarriage return; \u2028 \u2029 \x85 done'


async def test_awkward_text_round_trips_through_csv_and_jsonl(tmp_path: Path) -> None:
    """Commas, quotes, newlines and U+2028/U+2029/U+0085 in fields read back exactly."""
    posted = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S +00:00")
    task = {
        "id": "11010000-0000-0000-0000-000000000001",
        "url": f"https://api.dataforseo.com/v3/x?q={AWKWARD}",
        "datetime_posted": posted,
        "datetime_done": None,
        "status": AWKWARD,
        "cost": 0.5,
        "metadata": None,
    }
    error = {
        "id": "11010000-0000-0000-0000-000000000002",
        "datetime": posted[:19],
        "function": "backlinks/live",
        "error_code": 40501,
        "error_message": AWKWARD,
        "http_url": "https://api.dataforseo.com/v3/backlinks/live",
        "http_method": "POST",
        "http_code": 200,
        "http_time": 0.25,
        "http_response": '{"status_message": "Invalid Field: \'target\'.", "x": [1, 2]}\n',
    }
    async with Emulator(LOGIN, PASSWORD, tasks=[task], errors=[error]) as emu:
        base = ("--base-url", emu.url, "-q")
        env = api_env()
        results = await asyncio.gather(
            run_cli_async(
                "id-list",
                "--from",
                ago(2),
                *base,
                "--format",
                "csv",
                "-o",
                "t.csv",
                cwd=tmp_path,
                env=env,
            ),
            run_cli_async("errors", *base, "--format", "csv", "-o", "e.csv", cwd=tmp_path, env=env),
            run_cli_async("errors", *base, "-o", "e.jsonl", cwd=tmp_path, env=env),
            run_cli_async(
                "id-list", "--from", ago(2), *base, "-o", "t.jsonl", cwd=tmp_path, env=env
            ),
        )
    assert list(results) == [(0, "", "")] * 4
    assert read_csv(tmp_path / "t.csv") == [
        TASK_FIELDS,
        csv_cells(expected_task(task), TASK_FIELDS),
    ]
    assert read_csv(tmp_path / "e.csv") == [
        ERROR_FIELDS,
        csv_cells(expected_error(error), ERROR_FIELDS),
    ]
    assert read_jsonl(tmp_path / "t.jsonl") == [expected_task(task)]
    assert read_jsonl(tmp_path / "e.jsonl") == [expected_error(error)]


async def test_wrong_password_exits_3_and_leaves_the_output_alone(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A refused credential: exit 3, one error line, no summary, the old -o file untouched."""
    (tmp_path / "tasks.jsonl").write_text("an earlier export\n")
    code, out, err = await run_cli_async(
        "id-list",
        "--from",
        ago(10),
        "--base-url",
        emulator.url,
        "-o",
        "tasks.jsonl",
        "--state",
        "tasks.state",
        cwd=tmp_path,
        env=cli_env(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD="wrong"),
    )
    assert (code, out) == (3, "")
    assert err == (
        "dfs-async: error: authentication failed: 40100 You are not authorized to access this "
        "resource. (HTTP 401, /v3/backlinks/id_list); check the login and the API password "
        "(which is not the password of the dashboard)\n"
    )
    assert (tmp_path / "tasks.jsonl").read_text() == "an earlier export\n"
    # Only the lock files are new (they stay: see dfs_async/cli/locks.py).
    assert sorted(os.listdir(tmp_path)) == ["tasks.jsonl", "tasks.jsonl.lock", "tasks.state.lock"]


async def test_an_account_refusal_shows_the_apis_reason(emulator: Emulator, tmp_path: Path) -> None:
    """40200 (payment) is exit 5 with the API's code and message, without a password hint."""
    emulator.inject(1, Fault.envelope_error(40200, "Payment Required."))
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(10), "--base-url", emulator.url, cwd=tmp_path, env=api_env()
    )
    assert (code, out) == (5, "")
    assert err == (
        "dfs-async: error: the API refused the account: 40200 Payment Required. "
        "(HTTP 200, /v3/backlinks/id_list)\n"
    )


async def test_server_trouble_that_outlasts_the_retries_exits_4(
    emulator: Emulator, tmp_path: Path
) -> None:
    """HTTP 500 on every try: exit 4 after 1 + --retries calls, one error line, no file."""
    emulator.script({n: Fault.http_status(500) for n in range(1, 50)})
    code, out, err = await run_cli_async(
        "id-list",
        "--from",
        ago(10),
        "--base-url",
        emulator.url,
        "--retries",
        "1",
        "-o",
        "tasks.jsonl",
        cwd=tmp_path,
        env=api_env(),
    )
    assert (code, out) == (4, "")
    retry, gave_up, error = err.splitlines()  # the client's log, then the error
    assert re.fullmatch(
        r"dfs-async: /v3/backlinks/id_list offset=0: ServerError HTTP 500; retry 1/1 in "
        r"[0-9]\.[0-9]{2} s",
        retry,
    )
    assert gave_up == (
        "dfs-async: /v3/backlinks/id_list: giving up after 2 attempts: ServerError HTTP 500"
    )
    assert error == (
        "dfs-async: error: server trouble outlasted the retries: no status code HTTP 500: "
        "'500 Internal Server Error\\n' (HTTP 500, /v3/backlinks/id_list)"
    )
    assert len(emulator.requests) == 2
    assert os.listdir(tmp_path) == ["tasks.jsonl.lock"]  # no output: only the run's lock


def test_missing_password_exits_3(tmp_path: Path) -> None:
    """No password anywhere: exit 3 before any call, with what to set."""
    result = run_cli(
        "id-list",
        "--from",
        "2026-11-01",
        cwd=tmp_path,
        env=cli_env(DATAFORSEO_LOGIN=LOGIN),
    )
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == (
        "dfs-async: error: no DataForSEO password: set DATAFORSEO_LOGIN and "
        "DATAFORSEO_PASSWORD, or pass --login and --password-file\n"
    )


def open_if_read(fifo: Path) -> int | None:
    """The FIFO opened for writing once a reader has it open, None until then."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
            raise
        return None


def blocked_in_read(pid: int) -> bool:
    """Whether the process sleeps reading a pipe; True where Linux's /proc cannot tell."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return True
    if wchan in ("", "0"):  # the kernel hides it: fall back to a pause
        time.sleep(0.5)
        return True
    return "pipe_read" in wchan


def test_ctrl_c_while_reading_the_password_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C before the export's own handlers (here: reading the password) is 130, no traceback."""
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    args = ["id-list", "--from", "2026-11-01", "--login", LOGIN, "--password-file", "password"]
    process = spawn_cli(*args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = None
    try:
        # Opening a FIFO to write without blocking fails until a reader has it open: from
        # then on the command waits for a password that never comes.
        deadline = time.monotonic() + 20
        while (writer := open_if_read(fifo)) is None:
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # The signal must find the reader inside read(), which it interrupts. Sent as open()
        # returns, it is handled in C but only acted on at the next bytecode boundary: CPython
        # then blocks in read() with the KeyboardInterrupt pending (the user's second Ctrl-C
        # would end it; the test's would not be "one line"). CI's loaded runs hit that window.
        while not blocked_in_read(process.pid):
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if writer is not None:
            os.close(writer)
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (process.returncode, out, err) == (
        130,
        "",
        "interrupted: before the first page arrived\n",
    )


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2026-13-01"],
            "argument --from: '2026-13-01' is not a valid date: month must be in 1..12 "
            "(see 'dfs-async id-list --help')",
        ),
        (
            ["--from", "0001-01-01T00:00+01:00"],
            "argument --from: '0001-01-01T00:00+01:00' is not a valid date: date value out of "
            "range (see 'dfs-async id-list --help')",
        ),
        (
            ["--from", "2026-11-01", "--to", "yesterday"],
            "argument --to: 'yesterday' is not a date: use ISO 8601 such as 2026-11-01, "
            "2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z, or 30d, 12h, "
            "2w, 90m or now; without a zone it is UTC (see 'dfs-async id-list --help')",
        ),
        (
            ["--from", "5y"],
            "argument --from: '5y' is not a date: use ISO 8601 such as 2026-11-01, "
            "2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z, or 30d, 12h, "
            "2w, 90m or now; without a zone it is UTC (see 'dfs-async id-list --help')",
        ),
        (
            ["--emulate", "--from", "99999999d"],
            "99999999 days before 2026-12-01T00:00:00+00:00 is before the year 1 (see "
            "'dfs-async id-list --help')",
        ),
        (
            ["--emulate", "--from", "1d", "--to", "2d"],
            "--from (2026-11-30 00:00:00 +00:00) must be before --to (2026-11-29 00:00:00 +00:00)",
        ),
        (
            ["--emulate", "--from", "7mo"],
            "argument --from: '7mo' is not a date: use ISO 8601 such as 2026-11-01, "
            "2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z, or 30d, 12h, "
            "2w, 90m or now; without a zone it is UTC (see 'dfs-async id-list --help')",
        ),
        (
            ["--emulate", "--from", "2026-11-20", "--to", "2026-11-10T00:00:00Z"],
            "--from (2026-11-20 00:00:00 +00:00) must be before --to (2026-11-10 00:00:00 +00:00)",
        ),
    ],
)
def test_bad_dates_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    """A bad date is exit 2 and exactly one error line, no traceback."""
    result = run_cli("id-list", *args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"dfs-async: error: {message}\n"


def file_argument_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    """-o/--state mistakes and the message each must give."""
    see = " (see 'dfs-async id-list --help')"
    cases = [
        (
            ["--state", "tasks.state"],
            "--state needs -o FILE: standard output cannot be cut back to the last saved "
            "page, so a resumed export could lose or repeat records" + see,
        ),
        (
            ["-o", "tasks.jsonl", "--state", "./tasks.jsonl"],
            "-o and --state name the same file; the state needs a file of its own" + see,
        ),
        (
            ["-o", "tasks.jsonl", "--state", "missing/tasks.state"],
            "--state missing/tasks.state: no such directory missing",
        ),
        (["-o", "missing/tasks.jsonl"], "-o missing/tasks.jsonl: no such directory missing"),
        (["-o", "."], "-o .: is a directory"),
    ]
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "read-only").mkdir(mode=0o555)
        cases.append(
            (
                ["-o", "tasks.jsonl", "--state", "read-only/tasks.state"],
                "--state read-only/tasks.state: cannot create files in read-only",
            )
        )
    return cases


async def test_output_and_state_mistakes_exit_2_before_any_call(tmp_path: Path) -> None:
    """--state without -o, both naming one file, an unusable path: exit 2, one line, no file."""
    cases = file_argument_cases(tmp_path)
    results = await asyncio.gather(
        *[
            run_cli_async("id-list", "--emulate", "--from", "2026-07-01", *args, cwd=tmp_path)
            for args, _ in cases
        ]
    )
    assert list(results) == [(2, "", f"dfs-async: error: {message}\n") for _, message in cases]
    assert os.listdir(tmp_path) in ([], ["read-only"])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_write_exits_1_naming_the_file(tmp_path: Path) -> None:
    """A write error on -o (a full disk) is exit 1 with one line naming the file."""
    result = run_cli(
        "id-list", "--emulate", "--emulate-tasks", "10", "--from", "2026-07-01", "-q", "-o",
        "/dev/full", cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "dfs-async: error: writing /dev/full: No space left on device\n"


def test_help_says_dates_without_a_zone_are_utc_and_lists_exit_codes(tmp_path: Path) -> None:
    """--help of the program and of both commands: dates without a zone are UTC; exit codes."""
    for args in ([], ["id-list"], ["errors"]):
        result = run_cli(*args, "--help", cwd=tmp_path)
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "A date or time without a zone is UTC." in text
        assert (
            "Or relative: a whole number and m, h, d or w (minutes, hours, days, weeks) means "
            "that long before now, as in --from 30d or --from 90m; 'now' is now."
        ) in text
        assert (
            "Exit codes: 0 done; 1 other failure (writing a file); 2 bad arguments or state "
            "file, or another run is writing the same -o or --state file; 3 authentication "
            "failed (login or API password, or the proxy's credentials); 4 rate limit or server "
            "trouble that outlasted the retries, or an unreadable reply; 5 the API refused the "
            "account (payment required, cost limit, subscription, IP not whitelisted); 130 "
            "interrupted (Ctrl-C); 141 the reader of standard output went away; 143 terminated "
            "(SIGTERM)."
        ) in text


def test_version(tmp_path: Path) -> None:
    """--version prints the package version."""
    result = run_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"dfs-async {dfs_async.__version__}\n")


# -- the embedded demo, interruption and resume -----------------------------------------------


def demo_emulator(n: int, started: datetime = DEMO_NOW) -> Emulator:
    """The emulator `--emulate --emulate-tasks n` runs for an export started at `started`."""
    return Emulator(n_tasks=n, now=lambda: started, data_now=started, data_days=EMULATOR_DAYS)


def demo_tasks(n: int, start: str = "2026-07-01 00:00:00", end: datetime = DEMO_NOW) -> list[Any]:
    """What `--emulate --emulate-tasks n` serves for --from 2026-07-01 at the pinned clock."""
    emu = demo_emulator(n, end)
    return [expected_task(t) for t in emu.expected_id_list(start, end)]


def test_emulate_says_the_rate_is_shortened_and_writes_n_records(tmp_path: Path) -> None:
    """--emulate: the notice on stderr, then exactly the N synthetic tasks, then the summary."""
    result = run_cli(
        "id-list",
        "--emulate",
        "--emulate-tasks",
        "1200",
        "--emulate-rate",
        "10/2",
        "--from",
        "2026-07-01",
        "-o",
        "demo.jsonl",
        cwd=tmp_path,
    )
    assert result.returncode == 0
    notice, closing = result.stderr.splitlines()
    assert notice == (
        "emulator: 1,200 synthetic tasks posted 2026-05-29 to 2026-11-30, laid out before "
        "2026-12-01 00:00:00 UTC (when this export started); rate limit shortened to "
        "10 calls / 2 s (the real API allows 10 / 60 s)"
    )
    expected = demo_tasks(1200)  # the tasks from 2026-07-01 on, of data from 2026-05-29
    assert len(expected) == 987
    assert re.fullmatch(summary("987 records", 1, 1), closing)
    assert read_jsonl(tmp_path / "demo.jsonl") == expected


def test_quiet_prints_nothing_but_the_records(tmp_path: Path) -> None:
    """--quiet: no notice, no summary; stdout holds the CSV."""
    result = run_cli(
        "errors", "--emulate", "--emulate-errors", "40", "--format", "csv", "-q", cwd=tmp_path
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert len(list(csv.reader(result.stdout.splitlines()))) == 41


def test_sigint_mid_stream_exits_130_with_a_state_that_matches_the_output(
    tmp_path: Path,
) -> None:
    """SIGINT between pages: exit 130, the state counts exactly the records and bytes written."""
    output, state_file = tmp_path / "tasks.jsonl", tmp_path / "tasks.state"
    slow = spawn_cli(
        "id-list", "--emulate", "--emulate-tasks", "3000", "--emulate-rate", "1/0.4",
        "--from", "2026-07-01", "--page-size", "500", "-o", "tasks.jsonl", "--state",
        "tasks.state", cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until a page or two are written
        if state_file.exists() and json.loads(state_file.read_text())["stream"]["yielded"]:
            break
        time.sleep(0.05)
    slow.send_signal(signal.SIGINT)
    out, err = slow.communicate(timeout=20)
    assert (slow.returncode, out) == (130, "")
    saved = json.loads(state_file.read_text())
    written = read_jsonl(output)
    assert 0 < len(written) < 3000
    assert written == demo_tasks(3000)[: len(written)]
    assert saved["stream"]["yielded"] == len(written)
    assert saved["output_bytes"] == output.stat().st_size
    assert saved["output"] == str(output)
    assert saved["stream"]["done"] is False
    pages = len(written) // 500
    calls = r"[0-9]+ calls?"  # the next page may be in flight when the signal comes
    assert re.fullmatch(
        rf"interrupted: {len(written):,} records(?: costing \$[0-9,]+\.[0-9]{{4}})? "
        rf"in {pages} pages?, {calls}, "
        rf"[0-9]+\.[0-9] s rate-limit wait, [0-9]+\.[0-9] s{CONTINUE}",
        err.splitlines()[-1],
    )


def real_clock_env() -> dict[str, str]:
    """The CLI's environment with the demo on the real clock (nothing pinned)."""
    env = cli_env()
    del env[EMULATE_NOW_ENV]
    return env


def notice_started(stderr: str) -> datetime:
    """The export's start, as the --emulate notice reports it."""
    found = re.search(r"laid out before ([0-9-]+ [0-9:]+) UTC \(when this export started\)", stderr)
    assert found is not None, stderr
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)


@pytest.mark.parametrize("to", ["now", "absolute"])
def test_the_demo_runs_at_the_real_now(to: str, tmp_path: Path) -> None:
    """--emulate on the real clock: --from 7d to now (or the real time, spelt out) is the data."""
    before = datetime.now(UTC).replace(microsecond=0)
    end = before.isoformat() if to == "absolute" else "now"
    result = run_cli(
        "id-list", "--emulate", "--emulate-tasks", "20000", "--from", "7d", "--to", end, "-o",
        "out.jsonl", cwd=tmp_path, env=real_clock_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    started = notice_started(result.stderr)
    assert before <= started <= datetime.now(UTC)
    window_end = before if to == "absolute" else started
    emu = demo_emulator(20000, started)
    expected = [
        expected_task(t) for t in emu.expected_id_list(started - timedelta(days=7), window_end)
    ]
    assert len(expected) > 500  # 20,000 over 186 days: about 750 a week
    assert read_jsonl(tmp_path / "out.jsonl") == expected


def test_the_demo_has_data_for_the_whole_six_months(tmp_path: Path) -> None:
    """At the real now, --from six calendar months back gets a record within a day of it."""
    # A minute after six months back: still inside the limit when the CLI reads its clock.
    start = months_before(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1), 6)
    result = run_cli(
        "id-list", "--emulate", "--emulate-tasks", "2000", "--from", start.isoformat(),
        "--max-items", "1", "-o", "out.jsonl", cwd=tmp_path, env=real_clock_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first = datetime.fromisoformat(read_jsonl(tmp_path / "out.jsonl")[0]["datetime_posted"])
    assert timedelta(0) <= first - start < timedelta(days=1)  # 2,000 over 186 days


def test_an_interrupted_relative_export_resumes_days_later_on_the_same_records(
    tmp_path: Path,
) -> None:
    """--from 30d, cut short, run again three days later: the first run's window and records."""
    first_now = datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC)
    args = (
        "id-list", "--emulate", "--emulate-tasks", "6000", "--from", "30d", "--page-size",
        "200", "-o", "tasks.jsonl", "--state", "tasks.state",
    )  # fmt: skip
    state_file = tmp_path / "tasks.state"
    first_env = cli_env(**{EMULATE_NOW_ENV: first_now.isoformat()})
    slow = spawn_cli(
        *args, "--emulate-rate", "1/60", cwd=tmp_path, env=first_env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the first page is written; the next waits 60 s
        if state_file.exists() and json.loads(state_file.read_text())["stream"]["yielded"]:
            break
        time.sleep(0.05)
    slow.send_signal(signal.SIGINT)
    slow.communicate(timeout=20)
    assert slow.returncode == 130
    assert json.loads(state_file.read_text())["started"] == first_now.isoformat()
    later = first_now + timedelta(days=3)
    result = run_cli(*args, cwd=tmp_path, env=cli_env(**{EMULATE_NOW_ENV: later.isoformat()}))
    assert result.returncode == 0, result.stderr
    assert "resuming from tasks.state: 200 records already written" in result.stderr
    expected = demo_tasks(6000, format_api(first_now - timedelta(days=30)), first_now)
    assert len(expected) > 200
    assert read_jsonl(tmp_path / "tasks.jsonl") == expected


def format_api(moment: datetime) -> str:
    """`moment` in the API's request form."""
    return moment.strftime("%Y-%m-%d %H:%M:%S +00:00")


@pytest.mark.parametrize(
    ("now", "earliest"),
    [
        ("2027-03-31T12:00:00Z", "2027-02-28T12:00:00Z"),
        ("2028-03-31T12:00:00Z", "2028-02-29T12:00:00Z"),
        ("2028-02-29T12:00:00Z", "2028-01-29T12:00:00Z"),
        ("2026-12-31T23:59:59Z", "2026-11-30T23:59:59Z"),
    ],
)
def test_the_demo_accepts_metadata_to_one_calendar_month_and_not_a_second_more(
    now: str, earliest: str, tmp_path: Path
) -> None:
    """At month ends and 29 February, --metadata reaches back exactly one calendar month."""
    env = cli_env(**{EMULATE_NOW_ENV: now})
    base = ("id-list", "--emulate", "--metadata", "--max-items", "1", "-q")
    inside = run_cli(*base, "--from", earliest, cwd=tmp_path, env=env)
    assert (inside.returncode, inside.stderr) == (0, "")
    assert len(inside.stdout.splitlines()) == 1
    moment = parse_when(earliest, now=DEMO_NOW) - timedelta(seconds=1)
    outside = run_cli(*base, "--from", moment.isoformat(), cwd=tmp_path, env=env)
    assert (outside.returncode, outside.stdout) == (2, "")
    assert "is more than one month" in outside.stderr


async def cut_by_server_trouble(
    emu: Emulator, tmp_path: Path, *args: str
) -> tuple[tuple[str, ...], str]:
    """Run an export that gets the first page, then HTTP 500 (no retries): exit 4.

    Returns the arguments (to run it again) and what it printed on stderr.
    """
    emu.inject(2, Fault.http_status(500))
    every = (
        "id-list",
        "--from",
        ago(170),
        "--base-url",
        emu.url,
        *args,
        "-o",
        "tasks.jsonl",
        "--state",
        "tasks.state",
    )
    code, out, err = await run_cli_async(*every, "--retries", "0", cwd=tmp_path, env=api_env())
    assert (code, out) == (4, "")
    return every, err


async def test_a_stream_cut_short_says_how_to_continue_and_max_items_holds(
    tmp_path: Path,
) -> None:
    """Exit 4 mid-stream names the state file; the re-run stops at exactly --max-items."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, rate_limit=None) as emu:
        args, err = await cut_by_server_trouble(
            emu, tmp_path, "--page-size", "500", "--max-items", "1200"
        )
        gave_up, first, error = err.splitlines()
        assert gave_up == (  # the client's log, as the prefetched second call failed
            "dfs-async: /v3/backlinks/id_list: giving up after 1 attempts: ServerError HTTP 500"
        )
        assert re.fullmatch(summary("500 records", 1, 2), first)
        assert error == (
            "dfs-async: error: server trouble outlasted the retries: no status code HTTP 500: "
            f"'500 Internal Server Error\\n' (HTTP 500, /v3/backlinks/id_list){CONTINUE}"
        )
        assert len(read_jsonl(tmp_path / "tasks.jsonl")) == 500

        code, out, err = await run_cli_async(*args, cwd=tmp_path, env=api_env())
        expected = emu.expected_id_list(args[2], sent_datetime_to(emu))
    assert (code, out) == (0, "")
    resuming, closing = err.splitlines()
    assert resuming == "resuming from tasks.state: 500 records already written"
    assert re.fullmatch(summary(r"700 records \(1,200 with the earlier runs\)", 2, 2), closing)
    assert read_jsonl(tmp_path / "tasks.jsonl") == [expected_task(i) for i in expected[:1200]]
    assert [r.body[0]["limit"] for r in emu.requests[2:]] == [500, 200]


async def test_a_resumed_run_drops_what_was_written_after_the_saved_state(
    tmp_path: Path,
) -> None:
    """Bytes written after the last saved state (a run killed between the two writes) are cut."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, rate_limit=None) as emu:
        args, _ = await cut_by_server_trouble(emu, tmp_path)
        output = tmp_path / "tasks.jsonl"
        with output.open("ab") as file:  # as if a run had died between writing and saving
            file.write(b'{"id":"half a rec')
        code, out, err = await run_cli_async(*args, cwd=tmp_path, env=api_env())
        expected = emu.expected_id_list(args[2], sent_datetime_to(emu))
    assert (code, out) == (0, "")
    resuming, warning, closing = err.splitlines()
    assert resuming == "resuming from tasks.state: 1,000 records already written"
    assert warning == (
        f"dfs-async: warning: {output}: dropping 17 bytes written after the saved state"
    )
    assert re.fullmatch(summary(r"1,500 records \(2,500 with the earlier runs\)", 2, 2), closing)
    assert read_jsonl(output) == [expected_task(item) for item in expected]
    assert json.loads((tmp_path / "tasks.state").read_text())["stream"]["done"] is True


FINISHED_ARGS = (
    "--emulate",
    "--emulate-tasks",
    "1200",
    "--from",
    "2026-07-01",
    "-o",
    "tasks.jsonl",
    "--state",
    "tasks.state",
)


@pytest.fixture(scope="module")
def finished_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a finished `id-list --emulate` export and its state (read-only use)."""
    directory = tmp_path_factory.mktemp("finished")
    result = run_cli("id-list", *FINISHED_ARGS, "-q", cwd=directory)
    assert (result.returncode, result.stderr) == (0, "")
    return directory


def test_a_finished_export_is_not_done_again(finished_export: Path) -> None:
    """The same command after a finished export writes nothing and says so."""
    before = (finished_export / "tasks.jsonl").read_bytes()
    result = run_cli("id-list", *FINISHED_ARGS, cwd=finished_export)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.splitlines()[-1] == (
        "nothing to do: the state file tasks.state records a finished export (987 records); "
        "delete it to export again"
    )
    assert (finished_export / "tasks.jsonl").read_bytes() == before
    assert read_jsonl(finished_export / "tasks.jsonl") == demo_tasks(1200)


def test_a_state_file_for_another_window_is_refused(finished_export: Path) -> None:
    """A different --from with the same state file is exit 2, naming the difference."""
    args = [a if a != "2026-07-01" else "2026-08-01" for a in FINISHED_ARGS]
    result = run_cli("id-list", *args, cwd=finished_export)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "dfs-async: error: the state file is for a different request: --from is "
        "'2026-07-01 00:00:00 +00:00' there, '2026-08-01 00:00:00 +00:00' here\n",
    )


def test_a_state_file_from_the_other_command_is_refused(finished_export: Path) -> None:
    """An id-list state file given to `errors` is exit 2, naming both endpoints."""
    result = run_cli("errors", *FINISHED_ARGS[:3], *FINISHED_ARGS[5:], cwd=finished_export)
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "dfs-async: error: the state file is for /v3/backlinks/id_list, not /v3/backlinks/errors\n",
    )


def test_a_bad_state_file_is_exit_2(tmp_path: Path) -> None:
    """A state file that is not one is a bad argument, named in the message."""
    (tmp_path / "s.json").write_text("{}")
    result = run_cli(
        "id-list", "--emulate", "--from", "2026-07-01", "-o", "out.jsonl", "--state", "s.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "dfs-async: error: bad state file s.json: not a dfs-async state file (format 1)\n"
    )


PROGRESS = re.compile(
    r"([0-9]+)% ([0-9,]+) records? · ([0-9]+) calls? · [0-9]:[0-9]{2}:[0-9]{2} "
    r"\([0-9]:[0-9]{2}:[0-9]{2} waiting\) · ETA ([0-9]:[0-9]{2}:[0-9]{2}|-:--:--)"
)


def test_progress_is_one_line_on_an_80_column_terminal(tmp_path: Path) -> None:
    """With stderr on an 80-column terminal the live line fits on one row; the summary stays."""
    pty = pytest.importorskip("pty")
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, bytes([24, 0, 80, 0, 0, 0, 0, 0]))  # rows, columns
    try:
        process = spawn_cli(
            "id-list", "--emulate", "--emulate-tasks", "2500", "--from", "2026-07-01",
            "--max-items", "2000", "-o", "tasks.jsonl",
            cwd=tmp_path,
            env=cli_env(TERM="xterm", COLUMNS="80", LINES="24"),
            stdout=subprocess.DEVNULL,
            stderr=child,
        )  # fmt: skip
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the terminal closes when the process ends (EIO on Linux)
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=20) == 0
    finally:
        os.close(parent)
    screen = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", b"".join(chunks)).decode()
    rows = [row for row in re.split(r"[\r\n]+", screen) if row.strip()]
    live = [row.strip() for row in rows if "records ·" in row or "record ·" in row]
    assert live
    assert all(PROGRESS.fullmatch(row) for row in live), live
    assert all(len(row) <= 80 for row in live), live
    last = PROGRESS.fullmatch(live[-1])
    assert last is not None
    assert last.group(1, 2, 3) == ("100", "2,000", "2")
    assert re.fullmatch(summary("2,000 records", 2, 2), rows[-1])
    assert len(read_jsonl(tmp_path / "tasks.jsonl")) == 2000


# -- pure helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-22 12:00", datetime(2026, 11, 22, 12, tzinfo=UTC)),
        ("2026-11-01 12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00.5-0130", datetime(2026, 11, 1, 13, 30, 0, 500000, tzinfo=UTC)),
        ("2026-11-01 12:00:00 +00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_iso_and_api_forms_as_utc(text: str, expected: datetime) -> None:
    """Every accepted form gives the same instant in UTC; no zone means UTC."""
    parsed = parse_when(text, now=DEMO_NOW)
    assert (parsed, parsed.tzinfo) == (expected, UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC)),
        ("12h", datetime(2027, 3, 30, 11, 59, 59, tzinfo=UTC)),
        ("2w", datetime(2027, 3, 16, 23, 59, 59, tzinfo=UTC)),
        ("90m", datetime(2027, 3, 30, 22, 29, 59, tzinfo=UTC)),
        ("0d", datetime(2027, 3, 30, 23, 59, 59, tzinfo=UTC)),
        ("now", datetime(2027, 3, 30, 23, 59, 59, tzinfo=UTC)),
        (" 7d ", datetime(2027, 3, 23, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_relative_dates_count_back_from_the_now_passed_in(text: str, expected: datetime) -> None:
    """30d, 12h, 2w, 90m and now are read against the given now, nothing else."""
    now = datetime(2027, 3, 30, 23, 59, 59, tzinfo=UTC)
    assert parse_when(text, now=now) == expected
    assert parse_when_spec(text) == now - expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", "'30' is not a date"),
        ("30y", "'30y' is not a date"),
        ("-3d", "'-3d' is not a date"),
        ("3.5h", "'3.5h' is not a date"),
        ("1d ago", "'1d ago' is not a date"),
        ("999999999999w", "'999999999999w' reaches too far back"),
    ],
)
def test_bad_relative_dates_are_a_value_error(text: str, message: str) -> None:
    """Other units, signs, fractions and spans beyond any calendar are refused with a reason."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_when(text, now=DEMO_NOW)


def test_a_relative_date_before_the_year_1_is_a_value_error() -> None:
    """A span that fits a timedelta but not the calendar names what went wrong."""
    with pytest.raises(ValueError, match=r"^99999999 days before 2026-12-01T00:00:00\+00:00 is "):
        parse_when("99999999d", now=DEMO_NOW)


@pytest.mark.parametrize("text", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-00:01"])
def test_parse_when_refuses_a_time_outside_the_utc_range(text: str) -> None:
    """A local time that is before year 1 or after 9999 in UTC is a ValueError, not a crash."""
    with pytest.raises(ValueError, match=r"^'.*' is not a valid date: date value out of range$"):
        parse_when(text, now=DEMO_NOW)


def test_library_messages_name_the_options() -> None:
    """The library's argument names become the options the user typed."""
    assert cli_wording(
        "datetime_to (2026-12-02 00:00:00 +00:00) is in the future; the API accepts at most "
        "the current time (2026-12-01 00:00:00 +00:00); pass None for 'now'"
    ) == (
        "--to (2026-12-02 00:00:00 +00:00) is in the future; the API accepts at most "
        "the current time (2026-12-01 00:00:00 +00:00); omit --to for 'now'"
    )
    assert cli_wording("page_size must be a whole number from 1 to 1000, got 0") == (
        "--page-size must be a whole number from 1 to 1000, got 0"
    )


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (dfs_async.InvalidArgumentError("x"), 2),
        (
            dfs_async.InvalidRequestError(
                status_code=40501, status_message="m", http_status=200, endpoint="/e"
            ),
            2,
        ),
        (
            dfs_async.AuthenticationError(
                status_code=40100, status_message="m", http_status=401, endpoint="/e"
            ),
            3,
        ),
        (
            dfs_async.RateLimitedError(
                status_code=40202, status_message="m", http_status=200, endpoint="/e"
            ),
            4,
        ),
        (
            dfs_async.ServerError(
                status_code=50000, status_message="m", http_status=200, endpoint="/e"
            ),
            4,
        ),
        (dfs_async.RequestTimeoutError("timed out", endpoint="/e"), 4),
        (dfs_async.MalformedResponseError("cut", endpoint="/e", http_status=200, raw="{"), 4),
        (dfs_async.DecodeError("bad", endpoint="/e", path="$.x", raw="{}"), 4),
        (OSError(28, "No space left on device", "out.jsonl"), 1),
    ],
)
def test_exit_codes_follow_how_a_caller_reacts(exc: BaseException, code: int) -> None:
    """Arguments 2, credentials 3, trouble that outlasted the retries 4, files 1."""
    assert classify(exc)[0] == code


@pytest.mark.parametrize(
    ("status_code", "http_status", "message"),
    [
        (
            40100,
            401,
            "authentication failed: 40100 Unauthorized. (HTTP 401, /e); check the login and the "
            "API password (which is not the password of the dashboard)",
        ),
        (
            None,
            401,
            "authentication failed: no status code Unauthorized. (HTTP 401, /e); check the "
            "login and the API password (which is not the password of the dashboard)",
        ),
        (40200, 200, "the API refused the account: 40200 Unauthorized. (HTTP 200, /e)"),
        (40201, 200, "the API refused the account: 40201 Unauthorized. (HTTP 200, /e)"),
        (40203, 200, "the API refused the account: 40203 Unauthorized. (HTTP 200, /e)"),
        (40204, 200, "the API refused the account: 40204 Unauthorized. (HTTP 200, /e)"),
        (40207, 200, "the API refused the account: 40207 Unauthorized. (HTTP 200, /e)"),
        (None, 402, "the API refused the account: no status code Unauthorized. (HTTP 402, /e)"),
    ],
)
def test_only_a_refused_credential_gets_the_password_hint(
    status_code: int | None, http_status: int, message: str
) -> None:
    """40100 / HTTP 401: exit 3 with the password hint; payment, limits, IP list: exit 5."""
    exc = dfs_async.AuthenticationError(
        status_code=status_code,
        status_message="Unauthorized.",
        http_status=http_status,
        endpoint="/e",
    )
    assert classify(exc) == (3 if http_status == 401 else 5, message)


def test_summary_line() -> None:
    """The closing line counts records, pages, calls, the wait and the time."""
    stats = dfs_async.Stats(calls=3, seconds_waited=0.04)
    line = summary_line(records=2500, earlier=0, pages=3, stats=stats, elapsed=1.23)
    assert line == "2,500 records in 3 pages, 3 calls, 0.0 s rate-limit wait, 1.2 s"
    stats = dfs_async.Stats(calls=2, retries=1, seconds_waited=61.0)
    line = summary_line(records=1, earlier=999, pages=1, stats=stats, elapsed=75)
    assert line == (
        "1 record (1,000 with the earlier runs) in 1 page, 2 calls (1 retry), "
        "61.0 s rate-limit and retry wait, 1 min 15 s"
    )


def test_progress_line_fits_80_columns() -> None:
    """The live line: exact text, and at most 78 columns up to 9,999,999 records and 10 hours."""
    assert progress_line(records=840, calls=1, waited=1.5, elapsed=3.9) == (
        "840 records · 1 call · 0:00:03 (0:00:01 waiting)"
    )
    assert progress_line(
        records=840, calls=1, waited=1.5, elapsed=3.9, percent=42.0, remaining=None
    ) == ("42% 840 records · 1 call · 0:00:03 (0:00:01 waiting) · ETA -:--:--")
    widest = progress_line(
        records=9_999_999,
        calls=9_999,
        waited=35_999,
        elapsed=35_999,
        percent=100.0,
        remaining=35_999,
    )
    assert widest == (
        "100% 9,999,999 records · 9,999 calls · 9:59:59 (9:59:59 waiting) · ETA 9:59:59"
    )
    assert len(widest) == 78
