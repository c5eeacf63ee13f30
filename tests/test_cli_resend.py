"""`dfs-async resend-webhooks`, run as a real process against an emulator in this process."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfs_async import FailedWebhook, TaskError, WebhookResendOutcome
from dfs_async._webhooks import WEBHOOK_RESEND_PATH, latest_failures
from dfs_async.cli.dates import parse_when_spec
from dfs_async.cli.parser import build_parser
from dfs_async.cli.resend import Resend, resend_options
from dfs_async.cli.resend_rules import Ledger, Mark, Tally
from dfs_async.testing import Emulator, WebhookTask

UTC = timezone.utc
LOGIN = "cron@example.com"
PASSWORD = "s3cret-Pa55word"
ROOT = Path(__file__).resolve().parents[1]
HOUR = timedelta(hours=1)
SUMMARY = re.compile(
    r"found (?P<found>[0-9,]+) tasks? with failed webhooks \((?P<deliveries>[0-9,]+) failed "
    r"deliver(?:y|ies)\); resent (?P<resent>[0-9,]+) in (?P<calls>[0-9,]+) calls?; "
    r"refused (?P<refused>[0-9,]+)(?: \((?P<codes>[^)]*)\))?; "
    r"skipped (?P<skipped>[0-9,]+) already resent"
)


def env(**extra: str) -> dict[str, str]:
    """The test's environment with the emulator's credentials and no real ones."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO_")}
    values["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), values.get("PYTHONPATH")]))
    values.update({"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD, **extra})
    values.setdefault("DFS_ASYNC_EMULATE_NOW", "2026-12-01T00:00:00Z")  # the demo's clock
    return values


async def spawn(*args: str, cwd: Path, environ: Mapping[str, str] | None = None) -> Any:
    """Start the CLI without blocking the loop, so the emulator here keeps serving."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dfs_async",
        "resend-webhooks",
        *args,
        cwd=cwd,
        env=dict(environ) if environ is not None else env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(
    *args: str, cwd: Path, environ: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    """Run the CLI to its end: exit code, stdout, stderr."""
    process = await spawn(*args, cwd=cwd, environ=environ)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def summary_of(stderr: str) -> dict[str, str]:
    """The counts of the run's closing summary line."""
    match = SUMMARY.fullmatch(stderr.splitlines()[-1])
    assert match is not None, stderr
    return {k: v for k, v in match.groupdict().items() if v is not None}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def hooked(emu: Emulator, n: int) -> list[WebhookTask]:
    """n tasks posted with a pingback URL."""
    return [emu.webhooks.post_task(pingback_url="https://h.example/p?id=$id") for _ in range(n)]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator on this machine's clock (as the CLI's), without a rate limit."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=10, n_errors=50, seed=11, rate_limit=None) as emu:
        yield emu


# -- pure: the ledger's decision ---------------------------------------------------------------


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def failure_entry(ident: str, stamp: timedelta) -> TaskError:
    """A failed pingback of `ident` at T0 + stamp."""
    return TaskError(
        id=ident,
        datetime=T0 + stamp,
        function="pingback_url",
        error_code=500,
        error_message="",
        http_url="https://h/",
        http_method="GET",
        http_code=500,
        http_time=0.0,
        http_response="",
    )


def failure(ident: str, *stamps: timedelta) -> FailedWebhook:
    """The FailedWebhook of failures at T0 + each stamp."""
    [item] = latest_failures(failure_entry(ident, stamp) for stamp in stamps)
    return item


def test_a_task_is_sent_again_only_after_a_newer_failure() -> None:
    """Resent for a failure: skipped for it, sent for a later one or one more in its second."""
    a, b = "a" * 8 + "-0000-0000-0000-" + "0" * 12, "b" * 8 + "-0000-0000-0000-" + "0" * 12
    first = [failure(a, timedelta(0)), failure(b, timedelta(0))]
    ledger = Ledger()
    plan = ledger.plan(first)
    assert [f.id for f in plan.to_resend] == [a, b]
    ledger = ledger.start(plan.to_resend)
    assert ledger.in_flight == (a, b)
    ledger = ledger.finish(
        plan.to_resend,
        [
            WebhookResendOutcome(id=a, status_code=20100, status_message="Task Created."),
            WebhookResendOutcome(id=b, status_code=40400, status_message="Not Found."),
        ],
    )
    assert ledger == Ledger(resent={a: Mark(datetime=T0, attempts_at_latest=1)}, in_flight=())
    again = ledger.plan(first)  # the same failures: a was resent, b was refused
    assert ([f.id for f in again.to_resend], [f.id for f in again.skipped]) == ([b], [a])
    later = ledger.plan([failure(a, timedelta(0), timedelta(seconds=1))])
    assert [f.id for f in later.to_resend] == [a]
    same_second = ledger.plan([failure(a, timedelta(0), timedelta(0))])
    assert [f.id for f in same_second.to_resend] == [a]
    older = ledger.plan([failure(a, -HOUR)])  # an entry older than the one resent
    assert [f.id for f in older.skipped] == [a]
    assert Ledger.from_json(json.loads(json.dumps(ledger.to_json()))) == ledger
    assert ledger.prune(T0 + HOUR).resent == {}
    assert ledger.prune(T0).resent == ledger.resent


TASKS = [f"{n:08x}-0000-0000-0000-000000000000" for n in range(4)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 3), st.integers(0, 8)), max_size=5),
            st.booleans(),
        ),
        min_size=1,
        max_size=7,
    )
)
def test_runs_resend_a_task_exactly_when_a_newer_entry_than_the_one_resent_exists(
    runs: list[tuple[list[tuple[int, int]], bool]],
) -> None:
    """Over any history of runs (some killed mid-call), a task is planned iff an entry newer
    than the one it was resent for exists; a killed call's ids, and only they, come again."""
    entries: list[tuple[int, int]] = []
    resent_for: dict[str, tuple[int, int]] = {}  # task -> (newest second, entries in it)
    in_flight: set[str] = set()
    ledger = Ledger()
    for added, killed in runs:
        entries.extend(added)
        failures = latest_failures(
            failure_entry(TASKS[task], timedelta(seconds=second)) for task, second in entries
        )
        newest = {}
        for task in {TASKS[t] for t, _ in entries}:
            seconds = [sec for t, sec in entries if TASKS[t] == task]
            newest[task] = (max(seconds), seconds.count(max(seconds)))
        plan = ledger.plan(failures)
        expected = {t for t, mark in newest.items() if t not in resent_for or mark > resent_for[t]}
        assert {f.id for f in plan.to_resend} == expected
        assert {f.id for f in plan.skipped} == set(newest) - expected
        assert set(plan.again) == expected & in_flight
        if not plan.to_resend:
            continue
        ledger = Ledger.from_json(json.loads(json.dumps(ledger.start(plan.to_resend).to_json())))
        if killed:  # SIGKILL with the call in flight: only the saved start remains
            in_flight = {f.id for f in plan.to_resend}
            continue
        outcomes = [
            WebhookResendOutcome(id=f.id, status_code=20100, status_message="Task Created.")
            for f in plan.to_resend
        ]
        ledger = Ledger.from_json(
            json.loads(json.dumps(ledger.finish(plan.to_resend, outcomes).to_json()))
        )
        in_flight = set()
        for item in plan.to_resend:
            resent_for[item.id] = newest[item.id]
        assert ledger.plan(failures).to_resend == ()  # nothing twice for the same failures


def test_ids_in_flight_are_the_ones_sent_again() -> None:
    """A ledger saved mid-call names its ids; the plan sends exactly those again."""
    a = "a" * 8 + "-0000-0000-0000-" + "0" * 12
    ledger = Ledger(in_flight=(a,))
    assert ledger.plan([failure(a, timedelta(0))]).again == (a,)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"dfs_async_resend": 2, "resent": {}, "in_flight": []},
        {"dfs_async_resend": 1, "resent": [], "in_flight": []},
        {
            "dfs_async_resend": 1,
            "resent": {"x": {"failure": "2026-11-30T12:00:00"}},
            "in_flight": [],
        },
        {"dfs_async_resend": 1, "resent": {}, "in_flight": [1]},
    ],
)
def test_a_bad_ledger_is_refused(data: Any) -> None:
    """Another format, a naive datetime, a missing count or a bad id list is a ValueError."""
    with pytest.raises(ValueError, match=r"state file|bad"):
        Ledger.from_json(data)


def test_spans_and_dates_for_from_and_to() -> None:
    """24h, 90m, 7d, now are spans before now; a date is a date; anything else says both forms."""
    assert parse_when_spec("24h") == timedelta(hours=24)
    assert parse_when_spec("90m") == timedelta(minutes=90)
    assert parse_when_spec("7d") == timedelta(days=7)
    assert parse_when_spec("2026-11-30 12:00") == T0
    assert parse_when_spec("now") == timedelta(0)
    with pytest.raises(ValueError, match="or 30d, 12h, 2w, 90m or now"):
        parse_when_spec("yesterday")


def test_the_summary_counts_refusals_by_code() -> None:
    """found / resent in calls / refused by code / skipped, in one line."""
    tally = Tally(found=182, deliveries=252, skipped=3)
    tally.add([WebhookResendOutcome(id="x", status_code=20100, status_message="")] * 99)
    tally.add(
        [
            WebhookResendOutcome(id="y", status_code=40501, status_message=""),
            WebhookResendOutcome(id="z", status_code=40400, status_message=""),
        ]
    )
    assert tally.summary(dry_run=False) == (
        "found 182 tasks with failed webhooks (252 failed deliveries); resent 99 in 2 calls; "
        "refused 2 (40400: 1, 40501: 1); skipped 3 already resent"
    )


# -- runs against the emulator ------------------------------------------------------------


def resends_per_task(emu: Emulator, since: int = 0) -> Counter[str]:
    return Counter(r.id for r in emu.webhooks.resent[since:])


async def test_a_cron_loop_of_5_runs_resends_each_failure_exactly_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """New failures between runs are resent once each; old ones never; a resend that fails
    again is resent in the next run; an entry older than the one resent is not."""
    hooks = emulator.webhooks
    now = datetime.now(UTC)
    first = hooked(emulator, 10)
    for n, task in enumerate(first):
        hooks.fail(task.id, at=now - 3 * HOUR + timedelta(minutes=n))
        if n % 2:
            hooks.fail(task.id, at=now - 2 * HOUR + timedelta(minutes=n), http_code=0)
    args = ("--api", "serp", "--base-url", emulator.url, "--state", "hooks.state")
    expected: list[Counter[str]] = []
    third: list[WebhookTask] = []

    def between(number: int) -> Counter[str]:
        """The failures added before run `number`, and which tasks that run must resend."""
        moment = datetime.now(UTC)
        if number == 1:
            return Counter(t.id for t in first)
        if number == 2:
            second = hooked(emulator, 5)
            for task in [*second, *first[:3]]:
                hooks.fail(task.id, at=moment)  # new tasks, and newer failures of old ones
            return Counter(t.id for t in [*second, *first[:3]])
        if number == 3:
            third.extend(hooked(emulator, 3))
            for task in third:
                hooks.fail(task.id, at=moment - HOUR)
            hooks.fail_on_resend(third[0].id)  # its resend in run 3 fails again
            return Counter(t.id for t in third)
        if number == 4:
            # A late entry, older than the failure first[5] was resent for: nothing to do.
            hooks.fail(first[5].id, at=now - 4 * HOUR)
            return Counter([third[0].id])
        return Counter()

    for number in range(1, 6):
        want = between(number)
        before = len(emulator.webhooks.resent)
        code, out, err = await run_cli(*args, "-o", f"run{number}.jsonl", cwd=tmp_path)
        assert (code, out) == (0, "")
        got = resends_per_task(emulator, before)
        assert got == want, f"run {number}"
        counts = summary_of(err)
        assert int(counts["resent"]) == sum(want.values())
        assert counts["refused"] == "0"
        rows = read_jsonl(tmp_path / f"run{number}.jsonl")
        assert sorted(r["id"] for r in rows) == sorted(want)
        assert {r["outcome"] for r in rows} <= {"resent"}
        expected.append(want)
    assert [sum(c.values()) for c in expected] == [10, 8, 3, 1, 0]
    # Every task's resends: once per failure episode, never twice for one.
    assert resends_per_task(emulator) == sum(expected, Counter())
    ledger = json.loads((tmp_path / "hooks.state").read_text())
    assert ledger["in_flight"] == []
    assert len(ledger["resent"]) == 18


async def test_sigkill_mid_run_then_a_rerun_resends_at_most_the_batch_in_flight(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Killed while call 2 (80 ids) waits for its reply: the rerun sends exactly those 80
    again, nothing else twice; the killed run's -o holds call 1's 100 whole lines."""
    now = datetime.now(UTC)
    emulator.webhooks.seed_failures(
        tasks=180, failures=250, since=now - 20 * HOUR, until=now - timedelta(minutes=1)
    )
    hold = emulator.webhooks.hold(call=2)
    args = ("--api", "serp", "--base-url", emulator.url, "--state", "hooks.state")
    process = await spawn(*args, "-o", "killed.jsonl", cwd=tmp_path)
    try:
        await asyncio.wait_for(hold.arrived.wait(), 60)
        saved = json.loads((tmp_path / "hooks.state").read_text())
        process.kill()
        await process.wait()
    finally:
        hold.release()
    assert process.returncode == -9
    calls = [r.body for r in emulator.requests if r.path == WEBHOOK_RESEND_PATH]
    assert [len(body) for body in calls] == [100, 80]
    in_flight = [task["id"] for task in calls[1]]
    assert saved["in_flight"] == in_flight  # saved before the call went out
    assert sorted(saved["resent"]) == sorted(task["id"] for task in calls[0])
    killed_rows = read_jsonl(tmp_path / "killed.jsonl")
    assert [r["id"] for r in killed_rows] == [task["id"] for task in calls[0]]

    code, out, err = await run_cli(*args, "-o", "rerun.jsonl", cwd=tmp_path)
    assert (code, out) == (0, "")
    again, closing = err.splitlines()
    assert again == (
        "sending again 80 tasks whose call was in flight when an earlier run stopped: the "
        "API cannot tell whether it arrived"
    )
    assert summary_of(closing) == {
        "found": "180",
        "deliveries": "250",
        "resent": "80",
        "calls": "1",
        "refused": "0",
        "skipped": "100",
    }
    per_task = resends_per_task(emulator)
    assert set(per_task) == {failure["id"] for failure in emulator.webhooks.failures}
    twice = {ident for ident, n in per_task.items() if n > 1}
    assert twice == set(in_flight)  # at most the batch in flight, here exactly it
    assert max(per_task.values()) == 2

    code, _, err = await run_cli(*args, cwd=tmp_path)
    assert code == 0
    assert summary_of(err)["resent"] == "0"
    assert summary_of(err)["skipped"] == "180"


async def test_dry_run_lists_and_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    """--dry-run: rows for every task to send, no resend call, the state file untouched."""
    tasks = hooked(emulator, 3)
    for task in tasks:
        emulator.webhooks.fail(task.id, at=datetime.now(UTC) - HOUR, http_code=502)
    code, out, err = await run_cli(
        "--api", "serp", "--base-url", emulator.url, "--dry-run", "--state", "s.state",
        "--format", "csv", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "id,outcome,status_code,status_message,function,datetime,http_url,http_code,"
        "http_response,failed_attempts"
    )
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(t.id for t in tasks)
    assert all(",would resend,,,pingback_url," in line for line in lines[1:])
    assert err.splitlines()[-1] == (
        "found 3 tasks with failed webhooks (3 failed deliveries); would resend 3 in 1 call; "
        "skipped 0 already resent; dry run: nothing was sent"
    )
    assert [r.path for r in emulator.requests] == ["/v3/serp/errors", "/v3/serp/errors"]
    assert not (tmp_path / "s.state").exists()


async def test_refused_ids_are_exit_0_unless_strict(emulator: Emulator, tmp_path: Path) -> None:
    """An expired task is refused 40400: exit 0 with it in the summary; --strict exits 5."""
    ok, gone = hooked(emulator, 2)
    for task in (ok, gone):
        emulator.webhooks.fail(task.id, at=datetime.now(UTC) - HOUR)
    emulator.webhooks.forget(gone.id)
    args = ("--api", "serp", "--base-url", emulator.url, "-o", "out.jsonl")
    code, _, err = await run_cli(*args, cwd=tmp_path)
    assert code == 0
    assert summary_of(err)["codes"] == "40400: 1"
    rows = {r["id"]: r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert (rows[gone.id]["outcome"], rows[gone.id]["status_code"]) == ("refused", 40400)
    assert rows[ok.id]["outcome"] == "resent"
    code, _, err = await run_cli(*args, "--strict", "-q", cwd=tmp_path)
    assert (code, err) == (6, "dfs-async: error: 1 id refused (--strict)\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--from", "8d"), r"--from \(.*\) is more than 7 days ago"),
        (("--kind", "all"), r"argument --kind: invalid choice: 'all'"),
        (("--from", "soon"), r"or 30d, 12h, 2w, 90m or now"),
        (("-o", "same", "--state", "same"), r"-o and --state name the same file"),
        (("--state", "nodir/s.state"), r"--state nodir/s.state: no such directory nodir"),
        (("--emulate-rate", "10/1"), r"--emulate-rate needs --emulate"),
    ],
)
async def test_mistakes_exit_2_before_any_call(
    emulator: Emulator, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    """A bad option is one line on stderr, exit 2, and no request reaches the server."""
    code, out, err = await run_cli(
        "--api", "serp", "--base-url", emulator.url, *extra, cwd=tmp_path
    )
    assert (code, out) == (2, "")
    assert re.search(message, err), err
    assert len(err.splitlines()) == 1
    assert emulator.requests == []


async def test_a_bad_state_file_is_exit_2(emulator: Emulator, tmp_path: Path) -> None:
    """A state file of another kind is refused before any call."""
    (tmp_path / "s.state").write_text('{"dfs_async_cli": 1}')
    code, _, err = await run_cli("--base-url", emulator.url, "--state", "s.state", cwd=tmp_path)
    assert code == 2
    assert err == (
        "dfs-async: error: bad state file s.state: not a resend-webhooks state file (format 1)\n"
    )
    assert emulator.requests == []


async def test_a_second_run_on_the_same_state_is_refused(
    emulator: Emulator, tmp_path: Path
) -> None:
    """While another run holds the state's lock, a run exits 2 without a call."""
    with (tmp_path / "s.state.lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        code, _, err = await run_cli("--base-url", emulator.url, "--state", "s.state", cwd=tmp_path)
    assert code == 2
    assert err == (
        "dfs-async: error: s.state is in use by another process (it holds s.state.lock); "
        "wait for it to end; two runs must not write one file\n"
    )
    assert emulator.requests == []


async def test_a_wrong_password_is_exit_3_and_leaves_the_output(
    emulator: Emulator, tmp_path: Path
) -> None:
    """401: exit 3 with the password hint; an existing -o file is left as it was."""
    (tmp_path / "out.jsonl").write_text("before\n")
    code, _, err = await run_cli(
        "--base-url", emulator.url, "-o", "out.jsonl", cwd=tmp_path,
        environ=env(DATAFORSEO_PASSWORD="wrong"),
    )  # fmt: skip
    assert code == 3
    assert "authentication failed" in err
    assert "wrong" not in err
    assert (tmp_path / "out.jsonl").read_text() == "before\n"


async def test_the_demo_shows_resends_refusals_and_then_skips(tmp_path: Path) -> None:
    """--emulate: the notice and summary; the same command with --state then skips 180."""
    args = ("--emulate", "--state", "demo.state", "-o", "demo.jsonl")
    code, _, err = await run_cli(*args, cwd=tmp_path, environ=env())
    assert code == 0
    notice, closing = err.splitlines()
    assert notice == (
        "emulator: 182 tasks with failed webhooks (252 failed deliveries, 2 of the tasks "
        "expired since) between 2026-11-30 02:00 and 23:50 UTC (before the start of this "
        "hour); rate limit shortened to 10 calls / 1 s (the client assumes 10 / 60 s for the "
        "real API)"
    )
    assert summary_of(closing) == {
        "found": "182",
        "deliveries": "252",
        "resent": "180",
        "calls": "2",
        "refused": "2",
        "codes": "40400: 2",
        "skipped": "0",
    }
    code, _, err = await run_cli(*args, cwd=tmp_path, environ=env())
    assert code == 0
    assert summary_of(err) == {
        "found": "182",
        "deliveries": "252",
        "resent": "0",
        "calls": "1",
        "refused": "2",
        "codes": "40400: 2",
        "skipped": "180",
    }
    assert [r["outcome"] for r in read_jsonl(tmp_path / "demo.jsonl")] == ["refused"] * 2


async def test_ctrl_c_during_a_call_exits_130_and_names_the_ids_in_flight(
    emulator: Emulator, tmp_path: Path
) -> None:
    """SIGINT while call 2 waits: exit 130, the summary so far, the 80 ids left in flight."""
    now = datetime.now(UTC)
    emulator.webhooks.seed_failures(
        tasks=180, failures=250, since=now - 20 * HOUR, until=now - timedelta(minutes=1)
    )
    hold = emulator.webhooks.hold(call=2)
    args = ("--api", "serp", "--base-url", emulator.url, "--state", "hooks.state")
    process = await spawn(*args, "-o", "out.jsonl", cwd=tmp_path)
    try:
        await asyncio.wait_for(hold.arrived.wait(), 60)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        hold.release()
    assert (process.returncode, out) == (130, b"")
    assert err.decode().splitlines()[-1] == (
        "interrupted: found 180 tasks with failed webhooks (250 failed deliveries); resent 100 "
        "in 1 call; refused 0; skipped 0 already resent; the call in flight (80 ids) may have "
        "been delivered: the next run with this --state sends those ids again"
    )
    saved = json.loads((tmp_path / "hooks.state").read_text())
    assert (len(saved["resent"]), len(saved["in_flight"])) == (100, 80)
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 100


def test_the_runs_repr_never_shows_the_password() -> None:
    """A Resend holding credentials shows neither them nor the ledger in its repr."""
    namespace = build_parser().parse_args(["resend-webhooks"])
    assert isinstance(namespace, argparse.Namespace)
    run = Resend(resend_options(namespace), credentials=(LOGIN, PASSWORD))
    assert PASSWORD not in repr(run)
