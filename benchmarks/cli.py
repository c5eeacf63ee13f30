"""The command line's own costs: answering at once, and writing JSON Lines.

Startup: `dfs-async --help`, `--version` and an argument error, each run through the installed
console script itself (the launcher pip wrote beside this interpreter, which also imports `re`
and rewrites argv[0]; `python -c` with the same import when there is none), against
`python -c pass` in the same run: the fastest of N runs of each, interleaved. Target: at most
3x (the parser needs the standard library only; the client, aiohttp and attrs load only for
real work).

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
from pathlib import Path

import attrs

from dfs_async import TaskId
from dfs_async.cli.writers import _orjson_lines, jsonl_bytes, jsonl_lines

from ._common import Row, best_of

UTC = timezone.utc
#: What the console script runs, for an interpreter without one beside it (a source tree).
_ENTRY = "import re, sys; from dfs_async.cli import main; sys.exit(main())"
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


def _console_script() -> list[str]:
    """How the shell starts `dfs-async`: the launcher beside this interpreter, run by it."""
    script = Path(sys.executable).with_name("dfs-async")
    if script.is_file():
        # The launcher's own interpreter line names this interpreter (or its symlink): run it
        # by that one explicitly, so that the baseline and the command share one interpreter.
        return [sys.executable, str(script)]
    return [sys.executable, "-c", _ENTRY]


def _startup(rounds: int) -> list[Row]:
    entry = _console_script()
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    commands |= {name: [*entry, *args] for name, args in _QUICK.items()}
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
            details={"rounds": rounds, "entry": "console script" if entry[1] != "-c" else "-c"},
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
    # The worst case of the fast path: the one float orjson spells otherwise comes last, so the
    # page is looked at whole and then written by the stdlib after all (a --metadata page is
    # handed over at its first record, at no cost).
    late = [*page[:-1], attrs.evolve(page[-1], cost=1e-5)]
    assert _orjson_lines(late) is None
    best = best_of(
        rounds,
        {
            "orjson": lambda: jsonl_bytes(page),
            "stdlib": lambda: jsonl_lines(page).encode("utf-8"),
            "late": lambda: jsonl_bytes(late),
            "late_stdlib": lambda: jsonl_lines(late).encode("utf-8"),
        },
    )
    ratio = best["orjson"] / best["stdlib"]
    late_ratio = best["late"] / best["late_stdlib"]
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
        ),
        Row(
            name="cli.jsonl.fallback_worst",
            measured=best["late"],
            baseline=best["late_stdlib"],
            unit="s",
            baseline_label="stdlib json",
            ratio=late_ratio,
            target="<= 1.25 (a page orjson cannot write costs little more)",
            passed=late_ratio <= 1.25,
            note="its last record's cost is 1e-5: looked at whole, then the stdlib's",
            details={"rounds": rounds},
        ),
    ]


def run(smoke: bool) -> list[Row]:
    return _startup(3 if smoke else 40) + _jsonl(5 if smoke else 200)
