"""The emulator of id_list and errors, checked over real HTTP with a plain aiohttp session."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import looptime
import pytest

from dfs_async._calendar import months_before
from dfs_async.testing import (
    Emulator,
    Fault,
    LoggedRequest,
    TaskSequence,
    generate_errors,
    generate_tasks,
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
LOGIN = "login"
PASSWORD = "s3cret-pw"
AUTH = {"Authorization": aiohttp.encode_basic_auth(LOGIN, PASSWORD)}
ID_LIST = "/v3/backlinks/id_list"
ERRORS = "/v3/backlinks/errors"
ITEM_KEYS = ["id", "url", "datetime_posted", "datetime_done", "status", "cost"]
ROOT = Path(__file__).resolve().parents[1]


def fixed_now() -> datetime:
    return NOW


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S +00:00")


def parse(text: str) -> datetime:
    if text.endswith("+00:00"):
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def task(ident: str, posted: datetime, *, done: bool = True) -> dict[str, Any]:
    return {
        "id": ident,
        "url": "https://api.dataforseo.com/v3/backlinks/summary/live",
        "datetime_posted": stamp(posted),
        "datetime_done": stamp(posted + timedelta(seconds=5)) if done else None,
        "status": "Ok." if done else "Task In Queue.",
        "cost": 0.02,
        "metadata": {"api": "backlinks", "function": "summary", "target": f"{ident}.example"},
    }


# Given out of order; t-3 and t-2 share a second and keep this relative order.
SMALL_TASKS = [
    task("t-4", NOW - timedelta(days=1)),
    task("t-3", NOW - timedelta(days=2)),
    task("t-1", NOW - timedelta(days=3)),
    task("t-2", NOW - timedelta(days=2)),
    task("t-5", NOW - timedelta(hours=1), done=False),
]


def error(ident: str, moment: datetime, function: str, code: int) -> dict[str, Any]:
    return {
        "id": ident,
        "datetime": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "function": function,
        "error_code": code,
        "error_message": "Internal Error.",
        "http_url": f"https://api.dataforseo.com/v3/{function}",
        "http_method": "POST",
        "http_code": 200,
        "http_time": 0.1,
        "http_response": "Internal Error.",
    }


SMALL_ERRORS = [
    error("e-1", NOW - timedelta(hours=1), "backlinks/live", 50000),
    error("e-2", NOW - timedelta(hours=2), "backlinks/summary", 40501),
    error("e-1", NOW - timedelta(hours=3), "backlinks/live", 40506),
    error("e-3", NOW - timedelta(days=2), "backlinks/live", 50000),
    error("e-4", NOW - timedelta(days=5), "backlinks/summary", 50000),
]


def window(days: float = 30) -> dict[str, Any]:
    return {"datetime_from": stamp(NOW - timedelta(days=days)), "datetime_to": stamp(NOW)}


async def call(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with session.post(url, data=data, headers=AUTH if headers is None else headers) as resp:
        assert resp.content_type == "application/json"
        document: dict[str, Any] = await resp.json()
        return resp.status, document


def result_ids(document: dict[str, Any]) -> list[str]:
    return [item["id"] for item in document["tasks"][0]["result"]]


@contextlib.contextmanager
def virtual_clock() -> Iterator[None]:
    """Make sure the running loop is on looptime's virtual clock for the block.

    `@pytest.mark.looptime` normally does it; this also covers a hook that hides the test's loop
    from looptime's plugin (then the marker alone would silently run in real time).
    """
    loop = asyncio.get_running_loop()
    assert isinstance(loop, looptime.LoopTimeEventLoop)
    if loop.looptime_on:
        yield
        return
    loop.setup_looptime()
    with loop.looptime_enabled():
        yield


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(
        LOGIN, PASSWORD, tasks=SMALL_TASKS, errors=SMALL_ERRORS, now=fixed_now, rate_limit=None
    ) as emulator:
        yield emulator


@pytest.fixture
async def generated() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, now=fixed_now, rate_limit=None) as emulator:
        yield emulator


# -- authentication and routing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": aiohttp.encode_basic_auth(LOGIN, "wrong")},
        {"Authorization": aiohttp.encode_basic_auth("other", PASSWORD)},
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Bearer " + base64.b64encode(b"login:s3cret-pw").decode()},
    ],
)
async def test_bad_credentials_get_401_and_40100(
    emu: Emulator, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """Missing or wrong credentials answer HTTP 401 with envelope 40100 and null tasks."""
    status, document = await call(session, emu.url + ID_LIST, [window()], headers=headers)
    assert status == 401
    assert document["status_code"] == 40100
    assert document["status_message"] == "You are not authorized to access this resource."
    assert document["tasks"] is None
    assert document["tasks_count"] == 0
    [logged] = emu.requests
    assert logged.authorization_ok is False
    assert logged.accepted is False
    assert (logged.status_code, logged.http_status) == (40100, 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v3/backlinks/live"),
        ("POST", "/v3/content_analysis/errors"),
        ("POST", "/v2/backlinks/id_list"),
        ("POST", "/v3/backlinks/id_list/extra"),
        ("GET", ID_LIST),
    ],
)
async def test_unknown_routes_get_404_and_40400(
    emu: Emulator, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Paths and methods outside the two endpoints answer HTTP 404 with envelope 40400."""
    async with session.request(method, emu.url + path, headers=AUTH, json=[window()]) as resp:
        assert resp.status == 404
        document = await resp.json()
    assert document["status_code"] == 40400
    assert document["status_message"] == "Not Found."
    assert document["tasks"] is None
    assert emu.requests[0].accepted is False


@pytest.mark.parametrize(
    ("api", "function"),
    [("serp", "id_list"), ("content_analysis", "id_list"), ("merchant", "errors")],
)
async def test_every_api_serves_the_shared_data_sets(
    emu: Emulator, session: aiohttp.ClientSession, api: str, function: str
) -> None:
    """Each documented API answers id_list/errors from the same data with its own path."""
    body = [window()] if function == "id_list" else [{}]
    status, document = await call(session, f"{emu.url}/v3/{api}/{function}", body)
    assert status == 200
    task_ = document["tasks"][0]
    assert task_["path"] == ["v3", api, function]
    assert task_["data"] == {"api": api, "function": function, **body[0]}
    if function == "id_list":
        assert result_ids(document) == ["t-1", "t-3", "t-2", "t-4", "t-5"]
    else:
        assert result_ids(document) == ["e-1", "e-2", "e-1", "e-3", "e-4"]


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"", 40502, "POST Data Is Empty."),
        (b"  \n", 40502, "POST Data Is Empty."),
        (b"[]", 40502, "POST Data Is Empty."),
        (b"[{", 40503, "Invalid POST data."),
        (b'{"limit": 1}', 40503, "Invalid POST data."),
        (b"[1]", 40503, "Invalid POST data."),
        (b'[{"limit": 1}, 2]', 40503, "Invalid POST data."),
        (b'[{"limit": 1}, {"limit": 2}]', 40000, "You can set only one task at a time."),
    ],
)
async def test_bad_bodies_fail_at_the_envelope(
    emu: Emulator, session: aiohttp.ClientSession, body: bytes, code: int, message: str
) -> None:
    """Empty, malformed and multi-task bodies answer HTTP 200 with the code at the envelope."""
    status, document = await call(session, emu.url + ID_LIST, body)
    assert status == 200
    assert (document["status_code"], document["status_message"]) == (code, message)
    assert document["tasks"] is None
    assert document["tasks_count"] == 0
    assert emu.requests[0].status_code == code


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"foo": 1}, 40506, "Unknown Fields in POST Data: foo."),
        ({"foo": 1, "bar": 2}, 40506, "Unknown Fields in POST Data: foo, bar."),
        ({"datetime_from": None}, 40501, "Invalid Field: 'datetime_from'."),
        ({"datetime_to": None}, 40501, "Invalid Field: 'datetime_to'."),
        ({"datetime_from": "2024-05-20T00:00:00Z"}, 40501, "Invalid Field: 'datetime_from'."),
        ({"datetime_from": "2024-05-20 00:00:00"}, 40501, "Invalid Field: 'datetime_from'."),
        ({"datetime_to": "2024-05-32 00:00:00 +00:00"}, 40501, "Invalid Field: 'datetime_to'."),
        ({"datetime_to": 1717243200}, 40501, "Invalid Field: 'datetime_to'."),
        ({"limit": 0}, 40501, "Invalid Field: 'limit'."),
        ({"limit": 1001}, 40501, "Invalid Field: 'limit'."),
        ({"limit": "10"}, 40501, "Invalid Field: 'limit'."),
        ({"limit": 10.0}, 40501, "Invalid Field: 'limit'."),
        ({"limit": True}, 40501, "Invalid Field: 'limit'."),
        ({"offset": -1}, 40501, "Invalid Field: 'offset'."),
        ({"offset": "0"}, 40501, "Invalid Field: 'offset'."),
        ({"sort": "up"}, 40501, "Invalid Field: 'sort'."),
        ({"include_metadata": "true"}, 40501, "Invalid Field: 'include_metadata'."),
        ({"include_metadata": 1}, 40501, "Invalid Field: 'include_metadata'."),
        ({"tag": 5}, 40501, "Invalid Field: 'tag'."),
        (
            {"datetime_to": stamp(NOW + timedelta(seconds=1))},
            40501,
            "Invalid Field: 'datetime_to'.",
        ),
        (
            {"datetime_from": stamp(NOW - timedelta(days=183, seconds=1))},
            40501,
            "Invalid Field: 'datetime_from'.",
        ),
        (
            {"datetime_from": stamp(NOW - timedelta(days=31, seconds=1)), "include_metadata": True},
            40501,
            "Invalid Field: 'datetime_from'.",
        ),
        ({"datetime_from": stamp(NOW)}, 40501, "Invalid Field: 'datetime_from'."),
        (
            {"datetime_from": "2024-06-01 14:00:00 +02:00", "datetime_to": stamp(NOW)},
            40501,
            "Invalid Field: 'datetime_from'.",
        ),
    ],
)
async def test_invalid_id_list_tasks_fail_at_the_task(
    emu: Emulator,
    session: aiohttp.ClientSession,
    changes: dict[str, Any],
    code: int,
    message: str,
) -> None:
    """An invalid id_list task gives envelope 20000, tasks_error 1 and the task's code."""
    sent = {**window(), **changes}
    sent = {name: value for name, value in sent.items() if value is not None}
    status, document = await call(session, emu.url + ID_LIST, [sent])
    assert status == 200
    assert (document["status_code"], document["tasks_count"], document["tasks_error"]) == (
        20000,
        1,
        1,
    )
    task_ = document["tasks"][0]
    assert (task_["status_code"], task_["status_message"]) == (code, message)
    assert task_["result"] is None
    assert task_["result_count"] == 0
    assert task_["data"] == {"api": "backlinks", "function": "id_list", **sent}
    assert emu.requests[0].status_code == 20000
    assert emu.requests[0].accepted is True


@pytest.mark.parametrize(
    "sent",
    [
        {"datetime_from": stamp(NOW - timedelta(days=183)), "datetime_to": stamp(NOW)},
        {
            "datetime_from": stamp(NOW - timedelta(days=31)),
            "datetime_to": "2024-06-01 14:00:00 +02:00",
            "include_metadata": True,
            "limit": 1000,
            "offset": 0,
            "sort": "desc",
            "tag": "mine",
        },
    ],
)
async def test_id_list_accepts_the_limits_of_its_range(
    emu: Emulator, session: aiohttp.ClientSession, sent: dict[str, Any]
) -> None:
    """Six months back (one with metadata) up to now, in any offset, is a valid range."""
    _, document = await call(session, emu.url + ID_LIST, [sent])
    assert document["tasks"][0]["status_code"] == 20000
    assert document["tasks_error"] == 0
    assert document["tasks"][0]["result_count"] == 5


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"datetime": stamp(NOW)}, 40506, "Unknown Fields in POST Data: datetime."),
        ({"tag": "x"}, 40506, "Unknown Fields in POST Data: tag."),
        ({"limit": 0}, 40501, "Invalid Field: 'limit'."),
        ({"offset": -5}, 40501, "Invalid Field: 'offset'."),
        ({"filtered_function": 3}, 40501, "Invalid Field: 'filtered_function'."),
        ({"datetime_from": "yesterday"}, 40501, "Invalid Field: 'datetime_from'."),
        (
            {"datetime_from": stamp(NOW - timedelta(days=7, seconds=1))},
            40501,
            "Invalid Field: 'datetime_from'.",
        ),
        (
            {"datetime_to": stamp(NOW + timedelta(seconds=1))},
            40501,
            "Invalid Field: 'datetime_to'.",
        ),
        (
            {"datetime_from": stamp(NOW - timedelta(hours=1)), "datetime_to": stamp(NOW)[:-1]},
            40501,
            "Invalid Field: 'datetime_to'.",
        ),
        (
            {"datetime_from": stamp(NOW), "datetime_to": stamp(NOW - timedelta(hours=1))},
            40501,
            "Invalid Field: 'datetime_from'.",
        ),
    ],
)
async def test_invalid_errors_tasks_fail_at_the_task(
    emu: Emulator,
    session: aiohttp.ClientSession,
    changes: dict[str, Any],
    code: int,
    message: str,
) -> None:
    """An invalid errors task gives envelope 20000, tasks_error 1 and the task's code."""
    _, document = await call(session, emu.url + ERRORS, [changes])
    assert document["tasks_error"] == 1
    task_ = document["tasks"][0]
    assert (task_["status_code"], task_["status_message"]) == (code, message)
    assert task_["result"] is None
    assert task_["path"] == ["v3", "backlinks", "errors"]


# -- id_list pages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "limit", "offset", "expected"),
    [
        ("asc", 2, 0, ["t-1", "t-3"]),
        ("asc", 2, 2, ["t-2", "t-4"]),
        ("asc", 2, 4, ["t-5"]),
        ("asc", 2, 5, []),
        ("asc", 1000, 0, ["t-1", "t-3", "t-2", "t-4", "t-5"]),
        ("desc", 2, 0, ["t-5", "t-4"]),
        ("desc", 2, 2, ["t-2", "t-3"]),
        ("desc", 3, 3, ["t-3", "t-1"]),
        ("desc", 1, 9, []),
    ],
)
async def test_id_list_pages_are_exact_slices(
    emu: Emulator,
    session: aiohttp.ClientSession,
    sort: str,
    limit: int,
    offset: int,
    expected: list[str],
) -> None:
    """Pages are [offset:offset+limit] of the window by datetime_posted; ties keep their order."""
    sent = {**window(), "sort": sort, "limit": limit, "offset": offset}
    _, document = await call(session, emu.url + ID_LIST, [sent])
    assert result_ids(document) == expected
    assert document["tasks"][0]["result_count"] == len(expected)


async def test_id_list_window_bounds_are_inclusive(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """Tasks posted exactly at datetime_from or datetime_to are inside the window."""
    sent = {
        "datetime_from": stamp(NOW - timedelta(days=2)),
        "datetime_to": stamp(NOW - timedelta(days=1)),
    }
    _, document = await call(session, emu.url + ID_LIST, [sent])
    assert result_ids(document) == ["t-3", "t-2", "t-4"]
    shifted = {
        "datetime_from": "2024-05-30 14:00:01 +02:00",
        "datetime_to": "2024-05-31 13:59:59 +02:00",
    }
    _, document = await call(session, emu.url + ID_LIST, [shifted])
    assert result_ids(document) == []


async def test_include_metadata_switches_the_metadata_field(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """Items carry exactly the documented fields, plus metadata only with include_metadata."""
    _, plain = await call(session, emu.url + ID_LIST, [{**window(), "limit": 1, "offset": 4}])
    [item] = plain["tasks"][0]["result"]
    assert item == {key: SMALL_TASKS[4][key] for key in ITEM_KEYS}
    assert list(item) == ITEM_KEYS
    assert item["datetime_done"] is None
    sent = {**window(), "limit": 1, "offset": 4, "include_metadata": True}
    _, rich = await call(session, emu.url + ID_LIST, [sent])
    [item] = rich["tasks"][0]["result"]
    assert list(item) == [*ITEM_KEYS, "metadata"]
    assert item == SMALL_TASKS[4]


async def test_envelope_has_every_documented_field(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """A successful answer has the documented envelope and task fields with their types."""
    sent = {**window(), "limit": 2}
    _, document = await call(session, emu.url + ID_LIST, [sent])
    assert list(document) == [
        "version",
        "status_code",
        "status_message",
        "time",
        "cost",
        "tasks_count",
        "tasks_error",
        "tasks",
    ]
    assert (document["status_code"], document["status_message"]) == (20000, "Ok.")
    assert (document["cost"], document["tasks_count"], document["tasks_error"]) == (0, 1, 0)
    assert re.fullmatch(r"\d+\.\d{4} sec\.", document["time"])
    task_ = document["tasks"][0]
    assert list(task_) == [
        "id",
        "status_code",
        "status_message",
        "time",
        "cost",
        "result_count",
        "path",
        "data",
        "result",
    ]
    assert re.fullmatch(r"\d{8}-\d{4}-\d{4}-[01]000-[0-9a-f]{12}", task_["id"])
    assert (task_["status_code"], task_["status_message"], task_["cost"]) == (20000, "Ok.", 0)
    assert task_["path"] == ["v3", "backlinks", "id_list"]
    assert task_["data"] == {"api": "backlinks", "function": "id_list", **sent}
    assert task_["result_count"] == 2


async def test_generated_pages_match_the_expected_lists(
    generated: Emulator, session: aiohttp.ClientSession
) -> None:
    """Paging the generated data returns expected_id_list, which is the filtered data set."""
    start, end = NOW - timedelta(days=20), NOW - timedelta(days=2)
    for sort, metadata in [("asc", False), ("desc", True)]:
        pages: list[dict[str, Any]] = []
        for offset in itertools.count(0, 100):
            sent = {
                "datetime_from": stamp(start),
                "datetime_to": stamp(end),
                "sort": sort,
                "include_metadata": metadata,
                "limit": 100,
                "offset": offset,
            }
            _, document = await call(session, generated.url + ID_LIST, [sent])
            page = document["tasks"][0]["result"]
            pages.extend(page)
            if len(page) < 100:
                break
        expected = generated.expected_id_list(start, end, sort=sort, include_metadata=metadata)
        assert pages == expected
        inside = [t for t in generated.tasks if start <= parse(t["datetime_posted"]) <= end]
        if sort == "desc":
            inside.reverse()
        assert [t["id"] for t in pages] == [t["id"] for t in inside]
        assert len(pages) == 300
    assert generated.expected_id_list(stamp(start), stamp(end)) == generated.expected_id_list(
        start, end
    )


# -- errors pages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({}, ["e-1", "e-2", "e-1", "e-3", "e-4"]),
        ({"limit": 2, "offset": 1}, ["e-2", "e-1"]),
        ({"offset": 5}, []),
        ({"filtered_function": "backlinks/live"}, ["e-1", "e-1", "e-3"]),
        ({"filtered_function": "backlinks/live", "limit": 1, "offset": 1}, ["e-1"]),
        ({"filtered_function": "backlinks/nothing"}, []),
        ({"datetime_from": stamp(NOW - timedelta(hours=3))}, ["e-1", "e-2", "e-1"]),
        ({"datetime_to": stamp(NOW - timedelta(hours=2))}, ["e-2", "e-1", "e-3", "e-4"]),
        (
            {
                "datetime_from": stamp(NOW - timedelta(days=3)),
                "datetime_to": stamp(NOW - timedelta(hours=2)),
                "filtered_function": "backlinks/live",
            },
            ["e-1", "e-3"],
        ),
    ],
)
async def test_errors_pages_filter_and_slice_newest_first(
    emu: Emulator, session: aiohttp.ClientSession, sent: dict[str, Any], expected: list[str]
) -> None:
    """errors pages are newest first, filtered by function and datetime, then sliced."""
    _, document = await call(session, emu.url + ERRORS, [sent])
    assert result_ids(document) == expected
    assert document["tasks"][0]["result_count"] == len(expected)
    everything = emu.expected_errors(
        sent.get("filtered_function"), sent.get("datetime_from"), sent.get("datetime_to")
    )
    offset = sent.get("offset", 0)
    assert document["tasks"][0]["result"] == everything[offset : offset + sent.get("limit", 1000)]


async def test_errors_entries_are_served_as_given(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """An errors entry comes back with every field exactly as stored."""
    _, document = await call(session, emu.url + ERRORS, [{"limit": 1, "offset": 2}])
    assert document["tasks"][0]["result"] == [SMALL_ERRORS[2]]
    assert emu.errors == SMALL_ERRORS


# -- synthetic data -----------------------------------------------------------------------------


def test_generated_tasks_are_realistic_and_deterministic() -> None:
    """generate_tasks gives unique DataForSEO-like ids, sorted times, ties and ~2% uncompleted."""
    tasks = generate_tasks(3000, seed=7, now=NOW)
    assert isinstance(tasks, list)
    assert tasks == generate_tasks(3000, seed=7, now=NOW)
    assert tasks != generate_tasks(3000, seed=8, now=NOW)
    assert len({t["id"] for t in tasks}) == 3000
    posted = [parse(t["datetime_posted"]) for t in tasks]
    assert posted == sorted(posted)
    assert NOW - timedelta(days=150, minutes=10) <= posted[0]
    assert posted[-1] <= NOW - timedelta(minutes=10)
    ties = sum(a == b for a, b in itertools.pairwise(posted))
    assert 100 <= ties <= 280
    uncompleted = [t for t in tasks if t["datetime_done"] is None]
    assert 25 <= len(uncompleted) <= 100
    assert {t["status"] for t in uncompleted} == {"Task In Queue."}
    statuses = {t["status"] for t in tasks}
    assert {"Ok.", "Internal Error."} <= statuses
    for t in tasks:
        assert list(t) == [*ITEM_KEYS, "metadata"]
        assert re.fullmatch(r"\d{8}-1535-\d{4}-[01]000-[0-9a-f]{12}", t["id"])
        assert t["id"][:8] == parse(t["datetime_posted"]).strftime("%m%d%H%M")
        assert re.fullmatch(r"https://api\.dataforseo\.com/v3/backlinks/[a-z_]+/live", t["url"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00", t["datetime_posted"])
        if t["datetime_done"] is not None:
            assert parse(t["datetime_done"]) > parse(t["datetime_posted"])
        assert isinstance(t["cost"], float)
        assert t["metadata"]["api"] == "backlinks"
        assert t["url"].endswith(f"/{t['metadata']['function']}/live")
        assert isinstance(t["metadata"]["limit"], int)


def test_large_task_sets_are_computed_on_demand() -> None:
    """Above 20,000 tasks generate_tasks returns a lazy sequence with list-like access."""
    assert isinstance(generate_tasks(20_000, seed=0, now=NOW), list)
    tasks = generate_tasks(1_000_000, seed=3, now=NOW)
    assert isinstance(tasks, TaskSequence)
    assert len(tasks) == 1_000_000
    assert tasks[-1] == tasks[999_999]
    assert tasks[10:14] == [tasks[10], tasks[11], tasks[12], tasks[13]]
    assert tasks[5:1:-2] == [tasks[5], tasks[3]]
    assert list(itertools.islice(tasks, 3)) == tasks[:3]
    assert tasks[123_456] == generate_tasks(1_000_000, seed=3, now=NOW)[123_456]
    sample = tasks[499_000:501_000]
    posted = [parse(t["datetime_posted"]) for t in sample]
    assert posted == sorted(posted)
    assert len({t["id"] for t in sample}) == 2000
    with pytest.raises(IndexError):
        tasks[1_000_000]


def test_generated_errors_are_realistic_and_repeat_task_ids() -> None:
    """generate_errors is newest first over six days and about 10% of entries repeat a task id."""
    errors = generate_errors(1000, seed=5, now=NOW)
    assert errors == generate_errors(1000, seed=5, now=NOW)
    moments = [parse(e["datetime"]) for e in errors]
    assert moments == sorted(moments, reverse=True)
    assert NOW - timedelta(days=6, minutes=10) <= moments[-1]
    assert moments[0] <= NOW
    last_seen: dict[str, dict[str, Any]] = {}
    repeats = 0
    for entry in reversed(errors):
        earlier = last_seen.get(entry["id"])
        if earlier is not None:
            repeats += 1
            assert parse(entry["datetime"]) > parse(earlier["datetime"])
            assert entry["error_code"] != earlier["error_code"]
        last_seen[entry["id"]] = entry
    assert 60 <= repeats <= 140
    for e in errors:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", e["datetime"])
        assert re.fullmatch(r"backlinks/[a-z_]+", e["function"])
        assert e["http_url"] == f"https://api.dataforseo.com/v3/{e['function']}"
        assert e["http_method"] == "POST"
        assert isinstance(e["error_code"], int)
        assert isinstance(e["http_code"], int)
        assert isinstance(e["http_time"], float)
        assert e["http_response"] == e["error_message"]
    assert {e["error_code"] for e in errors} == {50000, 40501, 40506, 40503}


async def test_emulator_serves_generated_data_around_now(generated: Emulator) -> None:
    """By default the emulator holds 2,500 tasks over 150 days and 300 errors over 6 days."""
    assert len(generated.tasks) == 2500
    assert len(generated.errors) == 300
    assert generated.tasks[0] == generate_tasks(2500, seed=0, now=NOW)[0]
    assert generated.errors == generate_errors(300, seed=0, now=NOW)
    assert parse(generated.errors[-1]["datetime"]) >= NOW - timedelta(days=6, minutes=10)


# -- rate limit ---------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_rolling_window_admits_ten_calls_per_sixty_seconds() -> None:
    """The 11th call within 60 s gets 40202; one at exactly first + 60 s is accepted."""
    with virtual_clock():
        loop = asyncio.get_running_loop()
        async with (
            Emulator(LOGIN, PASSWORD, tasks=SMALL_TASKS, now=fixed_now) as emu,
            aiohttp.ClientSession() as session,
        ):
            for _ in range(10):
                _, document = await call(session, emu.url + ID_LIST, [window()])
                assert document["status_code"] == 20000
            t0 = emu.requests[0].time
            assert {r.time for r in emu.requests} == {t0}

            _, document = await call(session, emu.url + ID_LIST, [window()])
            assert document["status_code"] == 40202
            assert document["status_message"].startswith("Rate limit per minute exceeded.")
            assert (document["tasks"], document["tasks_count"]) == (None, 0)
            assert emu.requests[-1].accepted is False

            _, document = await call(session, emu.url + ERRORS, [{}])
            assert document["status_code"] == 20000  # another path, another window

            await asyncio.sleep(t0 + 59.999 - loop.time())
            _, document = await call(session, emu.url + ID_LIST, [window()])
            assert document["status_code"] == 40202

            await asyncio.sleep(t0 + 60 - loop.time())
            _, document = await call(session, emu.url + ID_LIST, [window()])
            assert document["status_code"] == 20000
            assert round(emu.requests[-1].time - t0, 6) == 60.0

        accepted = [r.accepted for r in emu.requests if r.path == ID_LIST]
        assert accepted == [True] * 10 + [False, False, True]
        assert emu.max_calls_in_window(ID_LIST, 60.0) == 10
        assert emu.max_calls_in_window(ID_LIST, 60.001) == 11
        assert emu.max_calls_in_window(ERRORS, 60.0) == 1


@pytest.mark.looptime
async def test_concurrent_calls_beyond_the_limit_are_refused() -> None:
    """Of 25 simultaneous calls exactly `calls` are accepted, and the rest are not counted."""
    with virtual_clock():
        async with (
            Emulator(
                LOGIN, PASSWORD, tasks=SMALL_TASKS, now=fixed_now, rate_limit=(10, 60.0)
            ) as emu,
            aiohttp.ClientSession() as session,
        ):
            answers = await asyncio.gather(
                *(call(session, emu.url + ID_LIST, [window()]) for _ in range(25))
            )
            codes = sorted(document["status_code"] for _, document in answers)
            assert codes == [20000] * 10 + [40202] * 15
            await asyncio.sleep(60)
            _, document = await call(session, emu.url + ID_LIST, [window()])
            assert document["status_code"] == 20000
        assert sum(r.accepted for r in emu.requests) == 11


async def test_rate_limit_headers_count_down(session: aiohttp.ClientSession) -> None:
    """With rate_limit_headers, X-RateLimit-Limit/Remaining describe the window after the call."""
    remaining = []
    async with Emulator(
        LOGIN, PASSWORD, rate_limit=(3, 60.0), rate_limit_headers=True, now=fixed_now
    ) as emu:
        for _ in range(4):
            async with session.post(emu.url + ERRORS, json=[{}], headers=AUTH) as resp:
                assert resp.headers["X-RateLimit-Limit"] == "3"
                remaining.append(resp.headers["X-RateLimit-Remaining"])
                await resp.read()
    assert remaining == ["2", "1", "0", "0"]
    async with Emulator(LOGIN, PASSWORD, now=fixed_now) as emu:
        _, document = await call(session, emu.url + ERRORS, [{}])
        assert document["status_code"] == 20000
        async with session.post(emu.url + ERRORS, json=[{}], headers=AUTH) as resp:
            assert "X-RateLimit-Limit" not in resp.headers
            assert "X-RateLimit-Remaining" not in resp.headers
            await resp.read()


async def test_rate_limit_none_accepts_every_call(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """rate_limit=None never answers 40202."""
    for _ in range(15):
        _, document = await call(session, emu.url + ERRORS, [{}])
        assert document["status_code"] == 20000
    assert emu.max_calls_in_window(ERRORS, 60.0) == 15


async def test_requests_with_bad_fields_still_count(session: aiohttp.ClientSession) -> None:
    """Validation comes after the limit: an invalid task uses a call, an unauthorized one not."""
    async with Emulator(LOGIN, PASSWORD, rate_limit=(2, 60.0), now=fixed_now) as emu:
        await call(session, emu.url + ERRORS, [{}], headers={})
        await call(session, emu.url + ERRORS, b"")
        await call(session, emu.url + ERRORS, [{"limit": 0}])
        _, document = await call(session, emu.url + ERRORS, [{}])
    assert document["status_code"] == 40202
    assert [r.accepted for r in emu.requests] == [False, True, True, False]
    assert [r.status_code for r in emu.requests] == [40100, 40502, 20000, 40202]


# -- faults -------------------------------------------------------------------------------------


async def test_reset_before_headers_disconnects(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """reset_before_headers closes the connection: the client sees ServerDisconnectedError."""
    emu.inject(1, Fault.reset_before_headers())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, emu.url + ID_LIST, [window()])
    status, document = await call(session, emu.url + ID_LIST, [window()])
    assert (status, document["status_code"]) == (200, 20000)
    first = emu.requests[0]
    assert (first.fault, first.accepted, first.status_code, first.http_status) == (
        "reset_before_headers",
        True,
        None,
        None,
    )
    assert first.body == [window()]
    assert emu.requests[1].fault is None


async def test_reset_during_body_breaks_the_payload(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """reset_during_body sends headers and half the body: reading it raises ClientPayloadError."""
    emu.inject(1, Fault.reset_during_body())
    async with session.post(emu.url + ID_LIST, json=[window()], headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.content_length is not None
        assert resp.content_length > 500
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    logged = emu.requests[0]
    assert (logged.fault, logged.status_code, logged.http_status) == (
        "reset_during_body",
        None,
        200,
    )
    _, document = await call(session, emu.url + ID_LIST, [window()])
    assert document["status_code"] == 20000


@pytest.mark.looptime
async def test_delay_answers_late_on_the_loop_clock() -> None:
    """delay(30) answers normally 30 loop seconds later; a shorter client timeout fires first."""
    with virtual_clock():
        loop = asyncio.get_running_loop()
        async with (
            Emulator(LOGIN, PASSWORD, tasks=SMALL_TASKS, now=fixed_now, rate_limit=None) as emu,
            aiohttp.ClientSession() as session,
        ):
            emu.script({1: Fault.delay(30), 2: Fault.delay(30)})
            started = loop.time()
            _, document = await call(session, emu.url + ID_LIST, [window()])
            assert round(loop.time() - started, 6) == 30.0
            assert result_ids(document) == ["t-1", "t-3", "t-2", "t-4", "t-5"]
            assert emu.requests[0].fault == "delay"
            assert emu.requests[0].status_code == 20000

            started = loop.time()
            with pytest.raises(asyncio.TimeoutError):
                async with session.post(
                    emu.url + ID_LIST,
                    json=[window()],
                    headers=AUTH,
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as resp:
                    await resp.read()
            assert round(loop.time() - started, 6) == 5.0


@pytest.mark.parametrize("code", [500, 502, 503, 429])
async def test_http_status_fault_answers_that_status(
    emu: Emulator, session: aiohttp.ClientSession, code: int
) -> None:
    """http_status(code) answers that HTTP status with a short plain-text body."""
    emu.inject(1, Fault.http_status(code))
    async with session.post(emu.url + ID_LIST, json=[window()], headers=AUTH) as resp:
        assert resp.status == code
        assert resp.content_type == "text/plain"
        text = await resp.text()
    assert text == f"{code} {resp.reason}\n"
    assert (emu.requests[0].status_code, emu.requests[0].http_status) == (None, code)


async def test_truncated_json_is_a_complete_message_with_a_cut_body(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """truncated_json sends HTTP 200 whose JSON stops halfway; the connection stays usable."""
    emu.inject(1, Fault.truncated_json())
    async with session.post(emu.url + ID_LIST, json=[window()], headers=AUTH) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.read()
    assert body.startswith(b'{"version":')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    _, document = await call(session, emu.url + ID_LIST, [window()])
    assert len(body) == len(json.dumps(document, separators=(",", ":"))) // 2
    assert emu.requests[0].http_status == 200
    assert emu.requests[0].status_code is None


async def test_html_fault_looks_like_a_proxy_page(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """html() answers a text/html 502 Bad Gateway page; html(504) another status."""
    emu.script({1: Fault.html(), 2: Fault.html(504)})
    async with session.post(emu.url + ID_LIST, json=[window()], headers=AUTH) as resp:
        assert (resp.status, resp.content_type) == (502, "text/html")
        page = await resp.text()
        with pytest.raises(aiohttp.ContentTypeError):
            await resp.json()
    assert "<title>502 Bad Gateway</title>" in page
    async with session.post(emu.url + ID_LIST, json=[window()], headers=AUTH) as resp:
        assert resp.status == 504
        assert "504 Gateway Timeout" in await resp.text()


async def test_envelope_and_task_error_faults(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """envelope_error sets the envelope code with null tasks; task_error fails the only task."""
    emu.script(
        {
            1: Fault.envelope_error(50301, "Update in progress."),
            2: Fault.task_error(),
            3: Fault.envelope_error(),
        }
    )
    status, document = await call(session, emu.url + ID_LIST, [window()])
    assert status == 200
    assert (document["status_code"], document["status_message"]) == (50301, "Update in progress.")
    assert (document["tasks"], document["tasks_count"]) == (None, 0)

    _, document = await call(session, emu.url + ERRORS, [{"limit": 5}])
    assert (document["status_code"], document["tasks_error"]) == (20000, 1)
    task_ = document["tasks"][0]
    assert (task_["status_code"], task_["status_message"]) == (50000, "Internal Error.")
    assert (task_["result"], task_["result_count"]) == (None, 0)
    assert task_["data"] == {"api": "backlinks", "function": "errors", "limit": 5}

    _, document = await call(session, emu.url + ID_LIST, [window()])
    assert (document["status_code"], document["status_message"]) == (50000, "Internal Error.")
    assert [r.status_code for r in emu.requests] == [50301, 20000, 50000]


async def test_rate_limited_fault_ignores_the_window(session: aiohttp.ClientSession) -> None:
    """rate_limited answers 40202 with an empty window and takes no slot in it."""
    async with Emulator(LOGIN, PASSWORD, rate_limit=(1, 60.0), now=fixed_now) as emu:
        emu.inject(1, Fault.rate_limited())
        _, first = await call(session, emu.url + ERRORS, [{}])
        _, second = await call(session, emu.url + ERRORS, [{}])
    assert (first["status_code"], first["tasks"]) == (40202, None)
    assert second["status_code"] == 20000
    assert [(r.fault, r.accepted) for r in emu.requests] == [("rate_limited", False), (None, True)]


async def test_faults_take_a_slot_and_apply_to_any_path(session: aiohttp.ClientSession) -> None:
    """A fault counts as an accepted call even in a full window, whatever the path."""
    async with Emulator(LOGIN, PASSWORD, rate_limit=(1, 60.0), now=fixed_now) as emu:
        emu.script({2: Fault.http_status(500), 3: Fault.http_status(503)})
        await call(session, emu.url + ERRORS, [{}])
        async with session.post(emu.url + ERRORS, json=[{}], headers=AUTH) as resp:
            assert resp.status == 500
        async with session.post(emu.url + "/nowhere", json=[{}]) as resp:
            assert resp.status == 503
    assert [r.accepted for r in emu.requests] == [True, True, True]
    assert emu.max_calls_in_window(ERRORS, 60.0) == 2


async def test_insert_head_shifts_id_list_pages(
    generated: Emulator, session: aiohttp.ClientSession
) -> None:
    """insert_head(3) adds three newest tasks: the desc page moves down by three."""
    sent = {**window(), "sort": "desc", "limit": 10}
    _, before = await call(session, generated.url + ID_LIST, [sent])
    newest = max(parse(t["datetime_posted"]) for t in generated.tasks)
    generated.inject(2, Fault.insert_head(3))
    _, after = await call(session, generated.url + ID_LIST, [sent])
    ids = result_ids(after)
    assert ids[3:] == result_ids(before)[:7]
    assert len(generated.tasks) == 2503
    added = generated.tasks[-3:]
    assert sorted(t["id"] for t in added) == sorted(ids[:3])
    assert {parse(t["datetime_posted"]) for t in added} == {newest + timedelta(seconds=1)}
    assert len({t["id"] for t in generated.tasks}) == 2503
    assert (
        generated.expected_id_list(NOW - timedelta(days=30), NOW, sort="desc")[:10]
        == (after["tasks"][0]["result"])
    )


async def test_insert_head_on_explicit_tasks_and_errors(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """insert_head also works on given tasks, and on errors it adds the newest entries."""
    emu.script({1: Fault.insert_head(2), 2: Fault.insert_head(1)})
    _, tasks_page = await call(session, emu.url + ID_LIST, [{**window(), "sort": "desc"}])
    assert result_ids(tasks_page)[2:] == ["t-5", "t-4", "t-2", "t-3", "t-1"]
    assert len(emu.tasks) == 7
    _, errors_page = await call(session, emu.url + ERRORS, [{}])
    ids = result_ids(errors_page)
    assert ids[1:] == ["e-1", "e-2", "e-1", "e-3", "e-4"]
    assert ids[0] == emu.errors[0]["id"]
    assert parse(emu.errors[0]["datetime"]) == NOW - timedelta(hours=1) + timedelta(seconds=1)


async def test_faults_are_injected_only_for_future_requests(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """inject/script refuse request numbers already received and invalid fault arguments."""
    await call(session, emu.url + ERRORS, [{}])
    with pytest.raises(ValueError, match="start at 1"):
        emu.inject(0, Fault.truncated_json())
    with pytest.raises(ValueError, match="request 1 was already received"):
        emu.inject(1, Fault.truncated_json())
    with pytest.raises(ValueError, match="request 1 was already received"):
        emu.script({3: Fault.truncated_json(), 1: Fault.html()})
    emu.script({2: Fault.envelope_error(), 3: Fault.envelope_error(40209, "Too many.")})
    codes = [(await call(session, emu.url + ERRORS, [{}]))[1]["status_code"] for _ in range(3)]
    assert codes == [50000, 40209, 20000]
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1)
    with pytest.raises(ValueError, match="HTTP status"):
        Fault.http_status(99)
    with pytest.raises(ValueError, match="n must be"):
        Fault.insert_head(0)
    assert Fault.delay(2) == Fault(name="delay", seconds=2.0)


# -- log, lifecycle, process --------------------------------------------------------------------


async def test_log_records_every_request_without_secrets(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    """emu.requests holds every request in order, with parsed bodies and no credentials."""
    emu.inject(4, Fault.http_status(502))
    await call(session, emu.url + ID_LIST, [window()])
    await call(session, emu.url + ERRORS, b"not json", headers={})
    await call(session, emu.url + ERRORS, b"[{")
    async with session.post(emu.url + ERRORS, json=[{"limit": 3}], headers=AUTH) as resp:
        await resp.read()
    assert emu.requests == [
        LoggedRequest(
            number=1,
            time=emu.requests[0].time,
            path=ID_LIST,
            body=[window()],
            authorization_ok=True,
            accepted=True,
            status_code=20000,
            http_status=200,
            fault=None,
        ),
        LoggedRequest(
            number=2,
            time=emu.requests[1].time,
            path=ERRORS,
            body="not json",
            authorization_ok=False,
            accepted=False,
            status_code=40100,
            http_status=401,
            fault=None,
        ),
        LoggedRequest(
            number=3,
            time=emu.requests[2].time,
            path=ERRORS,
            body="[{",
            authorization_ok=True,
            accepted=True,
            status_code=40503,
            http_status=200,
            fault=None,
        ),
        LoggedRequest(
            number=4,
            time=emu.requests[3].time,
            path=ERRORS,
            body=[{"limit": 3}],
            authorization_ok=True,
            accepted=True,
            status_code=None,
            http_status=502,
            fault="http_status",
        ),
    ]
    times = [r.time for r in emu.requests]
    assert times == sorted(times)
    dumped = repr(emu.requests) + repr([attrs.asdict(r) for r in emu.requests])
    assert PASSWORD not in dumped
    assert AUTH["Authorization"].split()[1] not in dumped
    assert "Basic" not in dumped
    assert {field.name for field in attrs.fields(LoggedRequest)} == {
        "number",
        "time",
        "path",
        "body",
        "authorization_ok",
        "accepted",
        "status_code",
        "http_status",
        "fault",
    }


async def test_start_and_close_are_idempotent() -> None:
    """start() and close() may be called twice; url needs a started emulator."""
    emulator = Emulator(now=fixed_now)
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.url
    await emulator.start()
    url = emulator.url
    await emulator.start()
    assert emulator.url == url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    await emulator.close()
    await emulator.close()
    with pytest.raises(RuntimeError, match="closed"):
        await emulator.start()


async def test_module_runs_as_a_standalone_server() -> None:
    """`python -m dfs_async.testing` prints its URL, serves with its options and stops on TERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dfs_async.testing",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--tasks",
        "50",
        "--errors",
        "5",
        "--rate-limit",
        "2/60",
        "--login",
        LOGIN,
        "--password",
        PASSWORD,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.fullmatch(r"dfs-async emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match is not None
        url = match.group(1)
        async with aiohttp.ClientSession() as session:
            codes = [(await call(session, url + ERRORS, [{}]))[1]["status_code"] for _ in range(3)]
            _, document = await call(session, url + ID_LIST, [window(150)], headers={})
        assert codes == [20000, 20000, 40202]
        assert document["status_code"] == 40100
    finally:
        if process.returncode is None:
            process.terminate()
        rest = await asyncio.wait_for(process.stdout.read(), 30)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    assert rest == b""


async def test_module_serves_data_over_the_six_months_before_its_start() -> None:
    """`python -m dfs_async.testing` on the real clock: a record within days of six months back."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dfs_async.testing", "--port", "0", "--tasks", "500",
        "--rate-limit", "off", "--login", LOGIN, "--password", PASSWORD,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        url = line.rsplit(" ", 1)[1].strip()
        # A minute inside the six months, so the server's later clock still accepts it.
        now = datetime.now(timezone.utc)
        start = months_before(now + timedelta(minutes=1), 6)
        task = {"datetime_from": stamp(start), "datetime_to": stamp(now), "limit": 1}
        async with aiohttp.ClientSession() as session:
            _, document = await call(session, url + ID_LIST, [task])
        first = document["tasks"][0]["result"][0]["datetime_posted"]
        posted = datetime.strptime(first, "%Y-%m-%d %H:%M:%S %z")
        assert timedelta(0) <= posted - start < timedelta(days=1)  # 500 over 186 days
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 30)
