"""The `dfs-async` command line, run as a real process (`python -m dfs_async`) against emulators."""

from __future__ import annotations

import asyncio
import csv
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
from dfs_async._cli import EMULATOR_NOW, classify, cli_wording, parse_when, summary_line
from dfs_async._convert import parse_datetime
from dfs_async.testing import Emulator

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
SUMMARY = re.compile(
    r"[0-9,]+ records? in [0-9,]+ pages?, [0-9,]+ calls?, [0-9.]+ s rate-limit wait, [0-9.]+ s"
)


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without any real credentials, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "dfs_async", *args],
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run_cli_async(*args: str, cwd: Path, env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run the CLI without blocking the loop, so an emulator in this process keeps serving."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dfs_async",
        *args,
        cwd=cwd,
        env=dict(env),
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
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def sent_datetime_to(emu: Emulator) -> str:
    """The window end the CLI fixed at its start, as it sent it."""
    body = emu.requests[0].body
    assert isinstance(body, list)
    value = body[0]["datetime_to"]
    assert isinstance(value, str)
    return value


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, n_errors=300, seed=3) as emu:
        yield emu


# -- the real API's path: credentials from the environment or a file, --base-url -------------


async def test_id_list_jsonl_is_the_emulators_data_exactly(
    emulator: Emulator, tmp_path: Path
) -> None:
    """id-list to JSONL: every task once, in order, fields in record order, ISO datetimes."""
    start = datetime.now(UTC) - timedelta(days=170)
    code, out, err = await run_cli_async(
        "id-list",
        "--from",
        start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--base-url",
        emulator.url,
        "-o",
        "tasks.jsonl",
        cwd=tmp_path,
        env=cli_env(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD=PASSWORD),
    )
    assert (code, out) == (0, "")
    rows = read_jsonl(tmp_path / "tasks.jsonl")
    expected = emulator.expected_id_list(start, sent_datetime_to(emulator))
    assert len(expected) == 2500
    assert rows == [expected_task(item) for item in expected]
    assert list(rows[0]) == TASK_FIELDS
    assert err.startswith("2,500 records in 3 pages, 3 calls, 0.0 s rate-limit wait, ")
    assert SUMMARY.fullmatch(err.rstrip("\n"))


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
    env = cli_env(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD=PASSWORD)
    common = ("errors", "--function", "backlinks/live", "--base-url", emulator.url, "-q")
    code, out, err = await run_cli_async(*common, cwd=tmp_path, env=env)
    assert (code, err) == (0, "")
    end = sent_datetime_to(emulator)
    expected = [
        expected_error(e) for e in emulator.expected_errors("backlinks/live", datetime_to=end)
    ]
    assert len(expected) > 20
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == expected
    assert list(rows[0]) == ERROR_FIELDS

    code, out, err = await run_cli_async(*common, "--format", "csv", cwd=tmp_path, env=env)
    assert (code, err) == (0, "")
    assert list(csv.reader(out.splitlines())) == [
        ERROR_FIELDS,
        *[csv_cells(row, ERROR_FIELDS) for row in expected],
    ]


async def test_wrong_password_exits_3_with_the_reason(emulator: Emulator, tmp_path: Path) -> None:
    """A refused credential ends with exit 3 and one error line naming the API's answer."""
    code, out, err = await run_cli_async(
        "id-list",
        "--from",
        "2026-11-01",
        "--base-url",
        emulator.url,
        cwd=tmp_path,
        env=cli_env(DATAFORSEO_LOGIN=LOGIN, DATAFORSEO_PASSWORD="wrong"),
    )
    assert (code, out) == (3, "")
    assert err.splitlines()[-1] == (
        "dfs-async: error: authentication failed: 40100 You are not authorized to access this "
        "resource. (HTTP 401, /v3/backlinks/id_list); check the login and the API password "
        "(which is not the password of the dashboard)"
    )
    assert "Traceback" not in err


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
            ["--from", "2026-11-01", "--to", "yesterday"],
            "argument --to: 'yesterday' is not a date: use ISO 8601 such as 2026-11-01, "
            "2026-11-01T12:00, 2026-11-01 12:00:00+02:00 or 2026-11-01T12:00:00Z; without a "
            "zone it is UTC (see 'dfs-async id-list --help')",
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


def test_help_says_dates_without_a_zone_are_utc(tmp_path: Path) -> None:
    """--help of the program and of both commands says a date without a zone is UTC."""
    for args in ([], ["id-list"], ["errors"]):
        result = run_cli(*args, "--help", cwd=tmp_path)
        assert result.returncode == 0
        assert "A date or time without a zone is UTC." in " ".join(result.stdout.split())


def test_version(tmp_path: Path) -> None:
    """--version prints the package version."""
    result = run_cli("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"dfs-async {dfs_async.__version__}\n")


# -- the embedded demo, interruption and resume -----------------------------------------------


def demo_tasks(n: int) -> list[dict[str, Any]]:
    """What `--emulate --emulate-tasks n` serves for --from 2026-07-01 (its clock stands still)."""
    emu = Emulator(n_tasks=n, now=lambda: EMULATOR_NOW)
    return [expected_task(t) for t in emu.expected_id_list("2026-07-01 00:00:00", EMULATOR_NOW)]


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
    notice, summary = result.stderr.splitlines()
    assert notice == (
        "emulator: 1,200 synthetic tasks posted 2026-07-04 to 2026-11-30, its clock fixed at "
        "2026-12-01 00:00 UTC; rate limit shortened to 10 calls / 2 s (the real API allows "
        "10 / 60 s)"
    )
    assert summary.startswith("1,200 records in 2 pages, 2 calls, ")
    assert read_jsonl(tmp_path / "demo.jsonl") == demo_tasks(1200)


def test_quiet_prints_nothing_but_the_records(tmp_path: Path) -> None:
    """--quiet: no notice, no summary; stdout holds the CSV."""
    result = run_cli(
        "errors", "--emulate", "--emulate-errors", "40", "--format", "csv", "-q", cwd=tmp_path
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert len(list(csv.reader(result.stdout.splitlines()))) == 41


def test_interrupted_export_resumes_to_every_record_exactly_once(tmp_path: Path) -> None:
    """SIGINT mid-stream: exit 130, state matches the file; the re-run completes it exactly."""
    args = [
        "id-list",
        "--emulate",
        "--emulate-tasks",
        "3000",
        "--from",
        "2026-07-01",
        "--page-size",
        "500",
        "-o",
        "tasks.jsonl",
        "--state",
        "tasks.state",
    ]
    output, state_file = tmp_path / "tasks.jsonl", tmp_path / "tasks.state"
    slow = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "dfs_async", *args, "--emulate-rate", "1/0.4"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until a page or two are written
        if state_file.exists() and json.loads(state_file.read_text())["stream"]["yielded"]:
            break
        time.sleep(0.05)
    slow.send_signal(signal.SIGINT)
    out, err = slow.communicate(timeout=20)
    assert (slow.returncode, out) == (130, "")
    assert err.splitlines()[-1].startswith("interrupted: ")
    assert err.splitlines()[-1].endswith("; run the same command to continue from tasks.state")
    saved = json.loads(state_file.read_text())
    written = read_jsonl(output)
    assert 0 < len(written) < 3000
    assert saved["stream"]["yielded"] == len(written)
    assert saved["output_bytes"] == output.stat().st_size
    assert saved["stream"]["done"] is False

    # As if a later run had died between writing a page and saving the state.
    with output.open("ab") as file:
        file.write(b'{"id":"half a rec')
    resumed = run_cli(*args, cwd=tmp_path)
    assert resumed.returncode == 0
    assert f"resuming from tasks.state: {len(written):,} records already written" in (
        resumed.stderr
    )
    assert "dropping 17 bytes written after the saved state" in resumed.stderr
    assert read_jsonl(output) == demo_tasks(3000)
    assert json.loads(state_file.read_text())["stream"]["done"] is True

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stderr.splitlines()[-1] == (
        "nothing to do: the state file tasks.state records a finished export (3,000 records); "
        "delete it to export again"
    )
    assert read_jsonl(output) == demo_tasks(3000)

    other = run_cli(*[a if a != "2026-07-01" else "2026-08-01" for a in args], cwd=tmp_path)
    assert (other.returncode, other.stderr) == (
        2,
        "dfs-async: error: the state file is for a different request: --from is "
        "'2026-07-01 00:00:00 +00:00' there, '2026-08-01 00:00:00 +00:00' here\n",
    )


def test_a_bad_state_file_is_exit_2(tmp_path: Path) -> None:
    """A state file that is not one is a bad argument, named in the message."""
    (tmp_path / "s.json").write_text("{}")
    result = run_cli(
        "id-list", "--emulate", "--from", "2026-07-01", "--state", "s.json", cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "dfs-async: error: bad state file s.json: not a dfs-async state file (format 1)\n"
    )


def test_progress_is_shown_on_a_terminal(tmp_path: Path) -> None:
    """With stderr on a terminal the live display counts records; the summary stays."""
    pty = pytest.importorskip("pty")
    parent, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dfs_async",
                "id-list",
                "--emulate",
                "--emulate-tasks",
                "2500",
                "--from",
                "2026-07-01",
                "--max-items",
                "2000",
                "-o",
                "tasks.jsonl",
            ],
            cwd=tmp_path,
            env=cli_env(COLUMNS="200", TERM="xterm"),
            stderr=child,
            stdout=subprocess.DEVNULL,
        )
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
    assert "2,000 records · 2 pages · 2 calls · 0.0 s rate-limit wait · elapsed" in screen
    assert "· ETA" in screen
    assert re.search(r"2,000 records in 2 pages, 2 calls, 0\.0 s rate-limit wait, ", screen)
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
    parsed = parse_when(text)
    assert (parsed, parsed.tzinfo) == (expected, UTC)


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
