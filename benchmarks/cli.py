"""The command line's own costs: answering at once, and writing JSON Lines.

Startup: `dfs-async --help`, `--version` and an argument error, each run as the console script
runs it (a fresh interpreter importing `dfs_async.cli`), against `python -c pass` in the same
run: the fastest of N runs of each, interleaved. Target: at most 3x (the parser needs the
standard library only; the client, aiohttp and attrs load only for real work).

JSON Lines: one 1000-record id_list page written by the orjson path (the `speed` extra)
against the standard library's, byte for byte the same output (tests/test_cli_jsonl.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from dfs_async import TaskId
from dfs_async.cli.writers import _orjson_lines, jsonl_bytes, jsonl_lines

from ._common import Row, best_of

UTC = timezone.utc
_ENTRY = "import sys; from dfs_async.cli import main; sys.exit(main())"
_QUICK = {
    "help": ["--help"],
    "version": ["--version"],
    "usage_error": ["id-list", "--from", "yesterday"],
}


def _seconds(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 -- our own interpreter
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env
    )
    return time.perf_counter() - started


def _startup(rounds: int) -> list[Row]:
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands |= {name: [sys.executable, "-c", _ENTRY, *args] for name, args in _QUICK.items()}
    best = dict.fromkeys(commands, float("inf"))
    with tempfile.TemporaryDirectory() as cache:
        # Bytecode as an installed wheel has it: a source tree run with
        # PYTHONDONTWRITEBYTECODE would compile every module on every start. One cache for
        # all, the baseline too, filled by the first round, which is not counted.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for round_ in range(rounds + 1):  # interleaved: a noisy moment hits every one alike
            for name, command in commands.items():
                seconds = _seconds(command, env)
                if round_:
                    best[name] = min(best[name], seconds)
    baseline = best.pop("python -c pass")
    return [
        Row(
            name=f"cli.startup.{name}",
            measured=seconds,
            baseline=baseline,
            unit="s",
            baseline_label="python -c pass",
            ratio=seconds / baseline,
            target="<= 3.00 (no client imported)",
            passed=seconds / baseline <= 3.0,
            note=f"dfs-async {' '.join(_QUICK[name])}",
            details={"rounds": rounds},
        )
        for name, seconds in best.items()
    ]


def page_of_task_ids() -> list[TaskId]:
    """1000 records as id_list sends them (a third done), for the JSON Lines writer."""
    posted = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    return [
        TaskId(
            id=f"11011200-1535-0216-0000-{n:012d}",
            url="https://api.dataforseo.com/v3/backlinks/summary/live",
            datetime_posted=posted + timedelta(seconds=n),
            datetime_done=None if n % 3 else posted + timedelta(seconds=n + 5),
            status="Ok." if n % 3 == 0 else "Task In Queue.",
            cost=0.02 if n % 2 else 0.0,
        )
        for n in range(1000)
    ]


def _jsonl(rounds: int) -> list[Row]:
    page = page_of_task_ids()
    assert _orjson_lines(page) == jsonl_lines(page).encode("utf-8")  # the fast path, same bytes
    best = best_of(
        rounds,
        {"orjson": lambda: jsonl_bytes(page), "stdlib": lambda: jsonl_lines(page).encode("utf-8")},
    )
    ratio = best["orjson"] / best["stdlib"]
    return [
        Row(
            name="cli.jsonl.orjson",
            measured=best["orjson"],
            baseline=best["stdlib"],
            unit="s",
            baseline_label="stdlib json",
            ratio=ratio,
            target="<= 0.25 (8 ms -> 1.5 ms a page)",
            passed=ratio <= 0.25,
            note="1000 records a page, identical bytes",
            details={"rounds": rounds, "bytes": len(jsonl_bytes(page))},
        )
    ]


def run(smoke: bool) -> list[Row]:
    return _startup(3 if smoke else 40) + _jsonl(5 if smoke else 200)
