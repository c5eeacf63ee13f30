"""The report over a store file: its figures equal independent SQL, its text fits 80 columns."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dfs_async import PagerState, Store, TaskError, TaskId, read_store
from dfs_async._report import build_report, render_table, report_json
from dfs_async.testing import generate_errors, generate_tasks

UTC = timezone.utc
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def state(api: str, function: str) -> PagerState:
    """A stream state for writes."""
    return PagerState(
        api=api,
        function=function,
        params={},
        page_size=1000,
        max_items=None,
        offset=0,
        yielded=0,
        seen=(),
    )


def at(text: str) -> datetime:
    """A UTC datetime from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def parse_api(text: str) -> datetime:
    """An emulator datetime as an aware UTC datetime."""
    if text[-6] in "+-":
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").astimezone(UTC)
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store, closed after."""
    conn = read_store(path)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 20,000 generated tasks over 150 days (two APIs) and 2,000 errors entries."""
    path = tmp_path_factory.mktemp("report") / "big.sqlite"
    items = generate_tasks(20_000, seed=2, now=NOW)
    with Store(path) as store:
        for start in range(0, len(items), 1000):
            api = "backlinks" if start % 2000 == 0 else "serp"
            records = [
                TaskId(
                    id=i["id"],
                    url=i["url"] if api == "backlinks" else i["url"].replace("backlinks/", "serp/"),
                    datetime_posted=parse_api(i["datetime_posted"]),
                    datetime_done=None
                    if i["datetime_done"] is None
                    else parse_api(i["datetime_done"]),
                    status=i["status"],
                    cost=i["cost"],
                )
                for i in items[start : start + 1000]
            ]
            store.write(f"ids-{api}", records, state(api, "id_list"))
        entries = [
            TaskError(**{**e, "datetime": parse_api(e["datetime"])})
            for e in generate_errors(2000, seed=2, now=NOW)
        ]
        store.write("errors", entries, state("backlinks", "errors"))
    return path


WINDOWS = [
    (NOW - timedelta(days=30), NOW, None),
    (NOW - timedelta(days=200), NOW, None),
    (NOW - timedelta(days=90), NOW - timedelta(days=10, hours=5), "serp"),
    (NOW - timedelta(days=7), NOW, "serp"),
    (NOW - timedelta(days=60), NOW - timedelta(days=30), "backlinks"),
]


def sql(
    conn: sqlite3.Connection, query: str, start: datetime, end: datetime, api: str | None
) -> list[Any]:
    """An independent query, with the window (and API) bound as ISO text."""
    where = "AND api = :api" if api else ""
    return conn.execute(
        query.replace("{where}", where),
        {"s": start.isoformat(), "e": end.isoformat(), "api": api},
    ).fetchall()


def micros(value: float) -> float:
    """A dollar amount to the millionth: finer than the cent, and safe from ties, since the
    costs have at most five decimals (so have their sums, up to float noise far below 1e-6)."""
    return round(value, 6)


@pytest.mark.parametrize(("start", "end", "api"), WINDOWS)
def test_the_figures_equal_independent_sql_to_the_millionth_of_a_dollar(
    big: Path, start: datetime, end: datetime, api: str | None
) -> None:
    """Per day, per function, per status and per error code, the report equals plain SELECTs."""
    with reading(big) as conn:
        report = build_report(conn, start, end, api)
        tasks = "FROM tasks WHERE datetime_posted >= :s AND datetime_posted < :e {where}"
        per_day = sql(
            conn,
            f"SELECT date(datetime_posted), count(*), sum(cost) {tasks} GROUP BY 1",
            start,
            end,
            api,
        )
        per_function = sql(
            conn,
            "SELECT function, count(*), sum(cost), sum(datetime_done IS NULL), "
            f"sum(datetime_done IS NOT NULL AND status != 'Ok.') {tasks} GROUP BY 1",
            start,
            end,
            api,
        )
        (total,) = sql(conn, f"SELECT count(*), total(cost) {tasks}", start, end, api)
        statuses = sql(
            conn,
            "SELECT CASE WHEN datetime_done IS NULL THEN 'queued' WHEN status = 'Ok.' THEN 'done' "
            f"ELSE 'failed' END, count(*) {tasks} GROUP BY 1",
            start,
            end,
            api,
        )
        errors = sql(
            conn,
            "SELECT function, error_code, sum(occurrences) FROM errors WHERE datetime >= :s "
            "AND datetime < :e {where} GROUP BY 1, 2",
            start,
            end,
            api,
        )
        all_costs = [row[0] for row in sql(conn, f"SELECT cost {tasks}", start, end, api)]
    assert report.tasks == total[0] > 0
    assert micros(report.spend) == micros(total[1])
    assert round(report.spend, 6) == round(math.fsum(all_costs), 6)
    days = {d.day.isoformat(): (d.tasks, micros(d.spend)) for d in report.days if d.tasks}
    assert days == {day: (n, micros(s)) for day, n, s in per_day}
    assert report.days[0].day == start.date()
    assert report.days[-1].day == (end - timedelta(microseconds=1)).date()
    assert len(report.days) == len({d.day for d in report.days})
    assert {
        (f.function, f.tasks, micros(f.spend), f.queued, f.failed) for f in report.functions
    } == {(f, n, micros(s), q, x) for f, n, s, q, x in per_function}
    assert attrs_of(report.statuses) == {"queued": 0, "done": 0, "failed": 0, **dict(statuses)}
    assert {(e.function, e.error_code, e.entries) for e in report.errors} == set(errors)
    # The JSON has the same figures.
    data = report_json(report)
    assert data["tasks"] == report.tasks
    assert micros(data["spend"]) == micros(total[1])
    assert [d["tasks"] for d in data["days"]] == [d.tasks for d in report.days]


def attrs_of(counts: Any) -> dict[str, int]:
    """A StatusCounts as a dict."""
    return {"queued": counts.queued, "done": counts.done, "failed": counts.failed}


def test_a_window_with_failures_and_queued_tasks_has_both(big: Path) -> None:
    """The generated data have queued and failed tasks and several functions: the test bites."""
    with reading(big) as conn:
        report = build_report(conn, NOW - timedelta(days=200), NOW)
    assert report.statuses.queued > 0
    assert report.statuses.failed > 0
    assert len(report.functions) >= 4
    assert len(report.errors) >= 4


@pytest.mark.parametrize(("start", "end", "api"), WINDOWS)
def test_every_line_fits_80_columns(
    big: Path, start: datetime, end: datetime, api: str | None
) -> None:
    """The rendered report, 150 days of bars included, has no line over 80 columns."""
    with reading(big) as conn:
        text = render_table(build_report(conn, start, end, api))
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    assert sum(1 for line in lines if line.endswith("#")) > 0


SMALL_TASKS = [
    # id, function url, posted, done, status, cost
    (
        "t1",
        "https://api.dataforseo.com/v3/backlinks/summary/live",
        "2026-11-01 10:00",
        "2026-11-01 10:01",
        "Ok.",
        0.02,
    ),
    (
        "t2",
        "https://api.dataforseo.com/v3/backlinks/summary/live",
        "2026-11-01 23:59",
        "2026-11-02 00:01",
        "Ok.",
        0.0225,
    ),
    (
        "t3",
        "https://api.dataforseo.com/v3/backlinks/backlinks/live",
        "2026-11-02 08:00",
        None,
        "Task In Queue.",
        0.0,
    ),
    (
        "t4",
        "https://api.dataforseo.com/v3/backlinks/backlinks/live",
        "2026-11-03 12:00",
        "2026-11-03 12:00",
        "Internal Error.",
        0.0,
    ),
    (
        "t5",
        "https://api.dataforseo.com/v3/backlinks/backlinks/live",
        "2026-11-03 13:00",
        "2026-11-03 13:05",
        "Ok.",
        0.1,
    ),
    (
        "t6",
        "https://api.dataforseo.com/v3/backlinks/summary/live",
        "2026-11-04 00:00",
        "2026-11-04 00:01",
        "Ok.",
        5.0,
    ),
]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Six tasks over four days (one outside the window) and three errors entries."""
    path = tmp_path / "small.sqlite"
    with Store(path) as store:
        store.write(
            "ids",
            [
                TaskId(
                    id=i,
                    url=u,
                    datetime_posted=at(p),
                    datetime_done=None if d is None else at(d),
                    status=s,
                    cost=c,
                )
                for i, u, p, d, s, c in SMALL_TASKS
            ],
            state("backlinks", "id_list"),
        )
        entry: dict[str, Any] = {
            "id": "e1",
            "function": "backlinks/live",
            "error_code": 50000,
            "error_message": "Internal Error.",
            "http_url": "u",
            "http_method": "POST",
            "http_code": 200,
            "http_time": 0.1,
            "http_response": "r",
        }
        store.write(
            "errors",
            [
                TaskError(**{**entry, "datetime": at("2026-11-01 11:00")}),
                TaskError(**{**entry, "datetime": at("2026-11-02 11:00")}),
                TaskError(**{**entry, "datetime": at("2026-11-02 12:00"), "error_code": 40501}),
            ],
            state("backlinks", "errors"),
        )
    return path


SMALL_TEXT = """\
Tasks posted 2026-11-01T00:00:00+00:00 to 2026-11-04T00:00:00+00:00
5 tasks, $0.1425: 1 still queued, 3 done, 1 failed

day         tasks    spend
2026-11-01      2  $0.0425  ######################
2026-11-02      1  $0.0000
2026-11-03      2  $0.1000  ####################################################

function                  tasks    spend  queued  failed
backlinks/backlinks/live      3  $0.1000       1       1
backlinks/summary/live        2  $0.0425       0       0

errors: function   code  entries
backlinks/live    50000        2
backlinks/live    40501        1
"""


def test_the_text_of_a_small_report_is_exact(small: Path) -> None:
    """Four days asked for, three with data: the whole text, bars and tables, is as written."""
    with reading(small) as conn:
        report = build_report(conn, at("2026-11-01 00:00"), at("2026-11-04 00:00"))
    text = render_table(report)
    assert text == SMALL_TEXT
    assert max(map(len, text.splitlines())) <= 80


def test_the_json_of_a_small_report_is_exact(small: Path) -> None:
    """The JSON holds the table's figures, spend to the millionth."""
    with reading(small) as conn:
        report = build_report(conn, at("2026-11-01 00:00"), at("2026-11-04 00:00"))
    assert report_json(report) == {
        "from": "2026-11-01T00:00:00+00:00",
        "to": "2026-11-04T00:00:00+00:00",
        "api": None,
        "tasks": 5,
        "spend": 0.1425,
        "statuses": {"queued": 1, "done": 3, "failed": 1},
        "days": [
            {"day": "2026-11-01", "tasks": 2, "spend": 0.0425},
            {"day": "2026-11-02", "tasks": 1, "spend": 0.0},
            {"day": "2026-11-03", "tasks": 2, "spend": 0.1},
        ],
        "functions": [
            {
                "function": "backlinks/backlinks/live",
                "tasks": 3,
                "spend": 0.1,
                "queued": 1,
                "failed": 1,
            },
            {
                "function": "backlinks/summary/live",
                "tasks": 2,
                "spend": 0.0425,
                "queued": 0,
                "failed": 0,
            },
        ],
        "errors": [
            {"function": "backlinks/live", "error_code": 50000, "entries": 2},
            {"function": "backlinks/live", "error_code": 40501, "entries": 1},
        ],
    }


def test_an_api_with_nothing_says_so(small: Path) -> None:
    """A window or API with no rows renders the empty days and says there is nothing."""
    with reading(small) as conn:
        report = build_report(conn, at("2026-11-01 00:00"), at("2026-11-02 00:00"), "serp")
    assert render_table(report) == (
        "Tasks posted 2026-11-01T00:00:00+00:00 to 2026-11-02T00:00:00+00:00, API serp\n"
        "0 tasks, $0.0000: 0 still queued, 0 done, 0 failed\n"
        "\n"
        "day         tasks    spend\n"
        "2026-11-01      0  $0.0000\n"
        "\n"
        "no tasks in this window\n"
        "\n"
        "no errors entries in this window\n"
    )
    assert report.days[0].day == date(2026, 11, 1)


def test_the_rich_table_fits_80_columns_and_holds_the_figures(small: Path) -> None:
    """On a terminal with rich, the report is drawn by rich: within 80 columns, same figures."""
    pytest.importorskip("rich", reason="rich comes with the cli extra")
    import io

    from dfs_async.cli.report import print_rich

    with reading(small) as conn:
        report = build_report(conn, at("2026-11-01 00:00"), at("2026-11-04 00:00"))
    out = io.StringIO()
    assert print_rich(report, out) is True
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= 80
    assert lines[1] == "5 tasks, $0.1425: 1 still queued, 3 done, 1 failed"
    days = [line.split()[:3] for line in lines if line.startswith("2026-11-")]
    assert days == [
        ["2026-11-01", "2", "$0.0425"],
        ["2026-11-02", "1", "$0.0000"],
        ["2026-11-03", "2", "$0.1000"],
    ]
    functions = [line.split() for line in lines if line.startswith("backlinks/b")]
    assert functions == [["backlinks/backlinks/live", "3", "$0.1000", "1", "1"]]
    errors = [line.split() for line in lines if line.startswith("backlinks/live")]
    assert errors == [["backlinks/live", "50000", "2"], ["backlinks/live", "40501", "1"]]
