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
    "memory.peak_1m_vs_10k",
    "pipelining.prefetch1",
    "pipelining.prefetch0",
    "cli.startup.help",
    "cli.startup.version",
    "cli.startup.usage_error",
    "cli.jsonl.orjson",
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
