"""The benchmarks, run at smoke sizes as CI runs them, so they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmarks compare against these; without the bench extra there is nothing to run.
for _module in ("dataforseo_client", "looptime", "msgspec", "orjson"):
    pytest.importorskip(_module, reason="the benchmarks need: pip install -e '.[bench]'")

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "decode.id_list.vs_msgspec",
    "decode.id_list.vs_official",
    "decode.id_list.vs_orjson",
    "decode.errors.vs_msgspec",
    "decode.errors.vs_official",
    "decode.errors.vs_orjson",
    "stream.wall.vs_raw",
    "stream.wall.vs_official",
    "stream.cpu.vs_raw",
    "stream.cpu.vs_official",
    "stream.cpu_per_page.vs_quota",
    "quota.dfs_async",
    "quota.AsyncLimiter(10,60)",
    "quota.AsyncLimiter(1,6)",
    "shared.workers",
    "shared.export_beside_follow",
    "memory.peak_1m_vs_10k",
    "pipelining.prefetch1",
    "pipelining.prefetch0",
    "cli.startup.help",
    "cli.startup.version",
    "cli.startup.usage_error",
    "cli.jsonl.orjson",
    "cli.jsonl.fallback_worst",
    "follow.calls_per_poll.posted",
    "follow.state.posted",
    "follow.calls_per_poll.done",
    "follow.state.done",
    "store.loop_hold",
    "store.throughput",
]


def test_smoke_run_prints_and_writes_every_row(tmp_path: Path) -> None:
    """`python -m benchmarks --smoke` exits 0, and every row is in the table and the JSON."""
    output = tmp_path / "results.json"
    done = subprocess.run(  # noqa: S603 - our own interpreter running our own module
        [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table_names = [line.split("  ", 1)[0] for line in done.stdout.splitlines()[2:]]
    assert table_names == ROWS
    report = json.loads(output.read_text())
    assert report["smoke"] is True
    assert [row["name"] for row in report["rows"]] == ROWS


def test_one_benchmark_rerun_keeps_the_others_rows(tmp_path: Path) -> None:
    """`--only cli` replaces the cli rows of the results file and keeps every other row."""
    output = tmp_path / "results.json"
    other = {"name": "decode.id_list.vs_msgspec", "measured": 1.0}
    stale = {"name": "cli.startup.help", "measured": 99.0}
    output.write_text(
        json.dumps(
            {"smoke": True, "machine": {}, "seconds": {"decode": 5.0}, "rows": [other, stale]}
        )
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter running our own module
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "cli", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    assert [row["name"] for row in report["rows"]] == [
        "decode.id_list.vs_msgspec",
        *(name for name in ROWS if name.startswith("cli.")),
    ]
    assert report["rows"][0] == other
    assert set(report["seconds"]) == {"decode", "cli"}
