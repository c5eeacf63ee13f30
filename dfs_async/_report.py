"""The report over a store: tasks and spend per day and per function, statuses, errors.

Queries are plain functions over a ``sqlite3`` connection (`read_store`) returning plain data;
rendering is separate and pure (`render_table`, `report_json`).

Money: the API sends costs as floats (USD). Each cost is counted in whole millionths of a
dollar (``round(cost * 1e6)``, exact for the API's few decimals) and summed as integers in
SQL, so a sum does not depend on the order of the rows and equals any other exact summation;
figures are those sums divided by a million. The table shows dollars to four decimals, the
JSON the full six.

A task is *queued* while ``datetime_done`` is null, *done* once it has one and its status is
``Ok.`` (the API's success text), *failed* when done with another status. Tasks count by their
``datetime_posted``, errors entries by their ``datetime``, both within ``[start, end)``.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone
from typing import Any

import attrs

from ._store import format_time

__all__ = [
    "DaySpend",
    "ErrorCount",
    "FunctionSpend",
    "Report",
    "StatusCounts",
    "build_report",
    "money_text",
    "render_table",
    "report_json",
]

#: The status a done task has when it succeeded.
OK_STATUS = "Ok."
WIDTH = 80
_MICROS = "CAST(round(cost * 1000000) AS INTEGER)"


@attrs.frozen(kw_only=True)
class DaySpend:
    """One UTC day: tasks posted that day and what they cost."""

    day: date
    tasks: int
    spend: float


@attrs.frozen(kw_only=True)
class FunctionSpend:
    """One API function (from the task's url): its tasks, their cost, and how they stand."""

    function: str
    tasks: int
    spend: float
    queued: int
    failed: int


@attrs.frozen(kw_only=True)
class StatusCounts:
    """Tasks still queued, done, and failed."""

    queued: int
    done: int
    failed: int


@attrs.frozen(kw_only=True)
class ErrorCount:
    """errors entries of one function with one error code."""

    function: str
    error_code: int
    entries: int


@attrs.frozen(kw_only=True)
class Report:
    """Every figure of a report, for one window (and API, if one is named)."""

    start: datetime
    end: datetime
    api: str | None
    tasks: int
    spend: float
    days: tuple[DaySpend, ...]
    functions: tuple[FunctionSpend, ...]
    statuses: StatusCounts
    errors: tuple[ErrorCount, ...]

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON types (`report_json`)."""
        return report_json(self)

    def render(self, width: int = WIDTH) -> str:
        """The report as plain text no wider than `width` (`render_table`)."""
        return render_table(self, width)


def _dollars(micros: int | None) -> float:
    return (micros or 0) / 1_000_000


def _where(column: str, api: str | None) -> str:
    return f"{column} >= :start AND {column} < :end" + ("" if api is None else " AND api = :api")


def _params(start: datetime, end: datetime, api: str | None) -> dict[str, Any]:
    return {"start": format_time(start), "end": format_time(end), "api": api}


def spend_per_day(
    conn: sqlite3.Connection, start: datetime, end: datetime, api: str | None = None
) -> list[DaySpend]:
    """Tasks and spend per UTC day of posting, every day of the window (empty ones too)."""
    rows = conn.execute(
        f"SELECT substr(datetime_posted, 1, 10), count(*), sum({_MICROS}) FROM tasks "  # noqa: S608 -- fixed text, values bound
        f"WHERE {_where('datetime_posted', api)} GROUP BY 1",
        _params(start, end, api),
    ).fetchall()
    found = {day: (count, micros) for day, count, micros in rows}
    first = start.astimezone(timezone.utc).date()
    last = (end.astimezone(timezone.utc) - timedelta(microseconds=1)).date()
    days = []
    day = first
    while day <= last:
        count, micros = found.get(day.isoformat(), (0, 0))
        days.append(DaySpend(day=day, tasks=count, spend=_dollars(micros)))
        day += timedelta(days=1)
    return days


def spend_per_function(
    conn: sqlite3.Connection, start: datetime, end: datetime, api: str | None = None
) -> list[FunctionSpend]:
    """Tasks, spend, queued and failed per function, the costliest first."""
    rows = conn.execute(
        f"SELECT function, count(*), sum({_MICROS}), "  # noqa: S608 -- fixed text, values bound
        "sum(datetime_done IS NULL), sum(datetime_done IS NOT NULL AND status <> :ok) "
        f"FROM tasks WHERE {_where('datetime_posted', api)} GROUP BY function",
        {**_params(start, end, api), "ok": OK_STATUS},
    ).fetchall()
    found = [
        FunctionSpend(
            function=function, tasks=count, spend=_dollars(micros), queued=queued, failed=failed
        )
        for function, count, micros, queued, failed in rows
    ]
    return sorted(found, key=lambda f: (-f.spend, -f.tasks, f.function))


def status_counts(
    conn: sqlite3.Connection, start: datetime, end: datetime, api: str | None = None
) -> StatusCounts:
    """How many tasks of the window are still queued, done, and failed."""
    queued, done, failed = conn.execute(
        "SELECT coalesce(sum(datetime_done IS NULL), 0), "  # noqa: S608 -- fixed text, values bound
        "coalesce(sum(datetime_done IS NOT NULL AND status = :ok), 0), "
        "coalesce(sum(datetime_done IS NOT NULL AND status <> :ok), 0) "
        f"FROM tasks WHERE {_where('datetime_posted', api)}",
        {**_params(start, end, api), "ok": OK_STATUS},
    ).fetchone()
    return StatusCounts(queued=queued, done=done, failed=failed)


def errors_per_function(
    conn: sqlite3.Connection, start: datetime, end: datetime, api: str | None = None
) -> list[ErrorCount]:
    """errors entries (each occurrence) per function and error code, the most first."""
    rows = conn.execute(
        "SELECT function, error_code, sum(occurrences) FROM errors "  # noqa: S608 -- fixed text
        f"WHERE {_where('datetime', api)} GROUP BY function, error_code",
        _params(start, end, api),
    ).fetchall()
    found = [ErrorCount(function=f, error_code=c, entries=n) for f, c, n in rows]
    return sorted(found, key=lambda e: (-e.entries, e.function, e.error_code))


def build_report(
    conn: sqlite3.Connection, start: datetime, end: datetime, api: str | None = None
) -> Report:
    """Every figure of the report, read in one snapshot of the file."""
    conn.execute("BEGIN")  # one read transaction: a writer's commits meanwhile are not mixed in
    try:
        days = spend_per_day(conn, start, end, api)
        functions = spend_per_function(conn, start, end, api)
        statuses = status_counts(conn, start, end, api)
        errors = errors_per_function(conn, start, end, api)
        (micros,) = conn.execute(
            f"SELECT sum({_MICROS}) FROM tasks WHERE {_where('datetime_posted', api)}",  # noqa: S608 -- fixed text
            _params(start, end, api),
        ).fetchone()
    finally:
        conn.execute("COMMIT")
    return Report(
        start=start,
        end=end,
        api=api,
        tasks=sum(d.tasks for d in days),
        spend=_dollars(micros),
        days=tuple(days),
        functions=tuple(functions),
        statuses=statuses,
        errors=tuple(errors),
    )


# -- rendering: pure ----------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON types: the same figures as the table, spend to the millionth."""

    def money(value: float) -> float:
        return round(value, 6)

    return {
        "from": format_time(report.start),
        "to": format_time(report.end),
        "api": report.api,
        "tasks": report.tasks,
        "spend": money(report.spend),
        "statuses": attrs.asdict(report.statuses),
        "days": [
            {"day": d.day.isoformat(), "tasks": d.tasks, "spend": money(d.spend)}
            for d in report.days
        ],
        "functions": [{**attrs.asdict(f), "spend": money(f.spend)} for f in report.functions],
        "errors": [attrs.asdict(e) for e in report.errors],
    }


def money_text(value: float) -> str:
    """Dollars as the table shows them: ``$1,234.5678``."""
    return f"${value:,.4f}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_table(report: Report, width: int = WIDTH) -> str:
    """The report as plain text no wider than `width`, a bar per day (spend, else tasks)."""
    api = f", API {report.api}" if report.api else ""
    s = report.statuses
    lines = [
        _fit(f"Tasks posted {format_time(report.start)} to {format_time(report.end)}{api}", width),
        _fit(
            f"{report.tasks:,} tasks, {money_text(report.spend)}: {s.queued:,} still queued, "
            f"{s.done:,} done, {s.failed:,} failed",
            width,
        ),
        "",
    ]
    by_spend = any(d.spend for d in report.days)
    peak = max((d.spend if by_spend else d.tasks for d in report.days), default=0)
    counts = [f"{d.tasks:,}" for d in report.days]
    spends = [money_text(d.spend) for d in report.days]
    count_w = max([len("tasks"), *map(len, counts)])
    spend_w = max([len("spend"), *map(len, spends)])
    prefix = 10 + 2 + count_w + 2 + spend_w + 2
    bar_w = max(1, width - prefix)
    lines.append(f"{'day':<10}  {'tasks':>{count_w}}  {'spend':>{spend_w}}".rstrip())
    for d, count, spend in zip(report.days, counts, spends, strict=True):
        value = d.spend if by_spend else d.tasks
        bar = "#" * (round(bar_w * value / peak) if peak else 0)
        if value and not bar:
            bar = "."  # something, however small
        lines.append(f"{d.day.isoformat()}  {count:>{count_w}}  {spend:>{spend_w}}  {bar}".rstrip())
    lines.append("")
    rows = [
        [
            _fit(f.function or "(no function in url)", 40),
            f"{f.tasks:,}",
            money_text(f.spend),
            f"{f.queued:,}",
            f"{f.failed:,}",
        ]
        for f in report.functions
    ]
    lines += (
        _table(["function", "tasks", "spend", "queued", "failed"], rows)
        if rows
        else ["no tasks in this window"]
    )
    lines.append("")
    errors = [[_fit(e.function, 50), str(e.error_code), f"{e.entries:,}"] for e in report.errors]
    lines += (
        _table(["errors: function", "code", "entries"], errors)
        if errors
        else ["no errors entries in this window"]
    )
    return "\n".join(lines) + "\n"
