"""MkDocs hook: the benchmark figures in the docs come from `benchmarks/results.json` at build time.

`python -m benchmarks` writes that file; nobody copies a figure into the pages by hand. A page
asks for the figures with three kinds of marks, replaced before the page is rendered:

- ``<!-- benchmarks: table -->``: the results table, one row per row of the file, in its order.
- ``<!-- benchmarks: machine -->``: one sentence saying what the figures were measured on.
- ``{{ bench("quota.dfs_async", "measured") }}``: one figure of one row, for the prose
  (fields: measured, baseline, ratio, target, result, note).

A mark naming a row or a field the file does not have stops the build, so prose cannot keep
quoting a row that a new run no longer has. The rendering is pure (`render_page`), so the
suite checks it without MkDocs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "on_page_markdown", "render_page", "render_table"]

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results.json"

TABLE_MARK = "<!-- benchmarks: table -->"
MACHINE_MARK = "<!-- benchmarks: machine -->"
_FIGURE = re.compile(r"\{\{\s*bench\(\s*\"([^\"]+)\"\s*,\s*\"([a-z_]+)\"\s*\)\s*\}\}")

_RESULT = {True: "PASS", False: "FAIL", None: "info"}


class BenchmarkDocsError(Exception):
    """The results file cannot give what a page asks for."""


def number(value: float | None, unit: str) -> str:
    """A measured figure in the unit its row gives, at a precision that means something."""
    if value is None:
        return "-"
    if unit == "rec/s":
        return f"{value / 1000:,.0f}k rec/s"
    if unit == "MB":
        return f"{value:.2f} MB"
    if unit == "s" and value < 1:
        return f"{value * 1000:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.1f} s"
    return f"{value:g} {unit}"


def ratio(value: float | None) -> str:
    """A ratio with two significant decimals (three below 0.1, where two would read as 0)."""
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def _cell(text: str) -> str:
    # A table cell cannot hold a pipe or a line break.
    return text.replace("|", "\\|").replace("\n", " ")


def _field(row: Mapping[str, Any], field: str) -> str:
    unit = str(row["unit"])
    if field == "measured":
        return number(row["measured"], unit)
    if field == "baseline":
        return number(row["baseline"], unit)
    if field == "ratio":
        return ratio(row["ratio"])
    if field == "result":
        return _RESULT[row["passed"]]
    if field in ("target", "note", "baseline_label"):
        return str(row[field])
    raise BenchmarkDocsError(
        f"unknown benchmark field {field!r}; use measured, baseline, ratio, target, result or note"
    )


def render_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results as a Markdown table, one line per row, in the file's order."""
    lines = [
        "| benchmark | measured | baseline | ratio | target | result | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        baseline = f"{_field(row, 'baseline')} ({row['baseline_label']})"
        cells = [
            # Plain text, not code: a name in code font breaks anywhere, in a narrow column.
            str(row["name"]),
            _field(row, "measured"),
            baseline,
            _field(row, "ratio"),
            _field(row, "target"),
            _field(row, "result"),
            _field(row, "note"),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def render_machine(report: Mapping[str, Any]) -> str:
    """What the figures were measured on, from the file's `machine` and `smoke` entries."""
    machine = report["machine"]
    text = (
        f"Measured on {machine['cpus']} CPUs ({machine['cpu_model']}), "
        f"{machine['implementation']} {machine['python']}, {machine['platform']}."
    )
    if report.get("smoke"):
        text += (
            '\n\n!!! warning "A smoke run"\n'
            "    These figures come from `python -m benchmarks --smoke` (tiny sizes): they show\n"
            "    the benchmarks work, not how fast anything is.\n"
        )
    return text


def render_page(markdown: str, report: Mapping[str, Any]) -> str:
    """Replace every benchmark mark in a page's Markdown with figures from `report`."""
    rows: Sequence[Mapping[str, Any]] = report["rows"]
    by_name = {row["name"]: row for row in rows}

    def figure(match: re.Match[str]) -> str:
        name, field = match.group(1), match.group(2)
        row = by_name.get(name)
        if row is None:
            raise BenchmarkDocsError(
                f"the docs quote benchmark row {name!r}, which benchmarks/results.json does not "
                f"have (it has: {', '.join(by_name)})"
            )
        return _field(row, field)

    markdown = markdown.replace(TABLE_MARK, render_table(rows))
    markdown = markdown.replace(MACHINE_MARK, render_machine(report))
    return _FIGURE.sub(figure, markdown)


def load(path: Path = RESULTS) -> dict[str, Any]:
    """The results file, with a message saying how to make it when it is missing."""
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchmarkDocsError(
            f"{path} is missing: run `python -m benchmarks` (it writes that file) and commit it"
        ) from None
    return report


def _asks_for_figures(markdown: str) -> bool:
    return TABLE_MARK in markdown or MACHINE_MARK in markdown or bool(_FIGURE.search(markdown))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill in the figures of any page that asks for them."""
    if not _asks_for_figures(markdown):
        return markdown
    try:
        return render_page(markdown, load())
    except BenchmarkDocsError as exc:
        # PluginError makes MkDocs stop with this message instead of a traceback.
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page.file.src_path}: {exc}") from None
