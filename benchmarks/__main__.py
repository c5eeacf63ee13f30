"""``python -m benchmarks [--smoke] [--only NAME]``: run, print a table, write the JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import cli, decode, follow, memory, pipelining, quota, shared, store, stream
from ._common import Row, machine

BENCHMARKS: dict[str, Callable[[bool], list[Row]]] = {
    "decode": decode.run,
    "stream": stream.run,
    "quota": quota.run,
    "shared": shared.run,
    "memory": memory.run,
    "pipelining": pipelining.run,
    "cli": cli.run,
    "follow": follow.run,
    "store": store.run,
}

RESULTS = Path(__file__).resolve().parent / "results.json"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "rec/s":
        return f"{value / 1000:,.0f}k rec/s"
    if unit == "MB":
        return f"{value:.2f} MB"
    if unit == "s" and value < 1:
        return f"{value * 1000:.2f} ms"
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.1f} s"
    return f"{value:g} {unit}"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a plain-text table."""
    header = ("benchmark", "measured", "baseline", "ratio", "target", "result", "note")
    lines = [
        (
            row.name,
            _number(row.measured, row.unit),
            f"{_number(row.baseline, row.unit)} ({row.baseline_label})",
            "-" if row.ratio is None else f"{row.ratio:.3f}",
            row.target,
            {True: "PASS", False: "FAIL", None: "info"}[row.passed],
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    rule = "  ".join("-" * width for width in widths)
    out = [header, *lines]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in out]
    text.insert(1, rule)
    return "\n".join(line.rstrip() for line in text)


def _merged(path: Path, report: dict[str, Any], only: str) -> dict[str, Any]:
    """`report` of one benchmark laid into the results already in `path` (of the same kind,
    smoke or full): that benchmark's rows are replaced, every other row is kept as measured."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return report
    if not isinstance(previous, dict) or previous.get("smoke") != report["smoke"]:
        return report
    kept = [row for row in previous.get("rows", []) if not row["name"].startswith(f"{only}.")]
    seconds = {**previous.get("seconds", {}), **report["seconds"]}
    return {**report, "seconds": seconds, "rows": kept + report["rows"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks asked for; 0 unless `--strict` and a target was missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (CI)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON (default benchmarks/results.json; with --smoke, nowhere: "
        "tiny sizes must not replace the committed figures)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (default: report)"
    )
    args = parser.parse_args(argv)
    names = [args.only] if args.only else list(BENCHMARKS)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    for name in names:
        print(f"running {name}...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        rows += BENCHMARKS[name](args.smoke)
        timings[name] = time.perf_counter() - started
    print(format_table(rows))
    report = {
        "smoke": args.smoke,
        "machine": machine(),
        "seconds": timings,
        "rows": [row.to_json() for row in rows],
    }
    output = args.output or (None if args.smoke else RESULTS)
    if output is not None:
        if args.only:
            report = _merged(output, report, args.only)
        output.write_text(json.dumps(report, indent=2) + "\n")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}", file=sys.stderr)
    # Timings on a shared machine are noisy, so by default a miss is reported, not fatal.
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
