"""The client end to end, over real HTTP against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

import dfs_async
from dfs_async._convert import parse_datetime
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "user@example.com"
PASSWORD = "s3cret-Pa55word"
ID_LIST = "/v3/backlinks/id_list"
ERRORS = "/v3/backlinks/errors"


YESTERDAY = datetime.now(UTC) - timedelta(days=1)


def since(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, n_errors=300, seed=7) as emu:
        yield emu


def client_for(emu: Emulator, **kwargs: Any) -> dfs_async.Client:
    kwargs.setdefault("retry", dfs_async.Retry(initial=0.01, maximum=0.05))
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, **kwargs)


def task_ids(items: Any) -> list[str]:
    return [item["id"] if isinstance(item, dict) else item.id for item in items]


def calls_to(emu: Emulator, path: str) -> list[Any]:
    return [r for r in emu.requests if r.path == path]


async def test_streams_2500_tasks_in_order_with_3_calls(emulator: Emulator) -> None:
    """2,500 tasks come exactly once, in the server's order, for exactly 3 calls."""
    start = since(170)
    async with client_for(emulator) as client:
        got = [task async for task in client.backlinks.id_list(start)]
    window_end = emulator.requests[0].body[0]["datetime_to"]
    expected = emulator.expected_id_list(start, parse_datetime(window_end))
    assert len(expected) == 2500
    assert task_ids(got) == task_ids(expected)
    assert [(r.body[0]["offset"], r.body[0]["limit"]) for r in emulator.requests] == [
        (0, 1000),
        (1000, 1000),
        (2000, 1000),
    ]
    assert client.stats.calls == 3


async def test_records_are_typed_and_match_the_wire_data(emulator: Emulator) -> None:
    """Every field decodes to its type; values equal what the emulator served."""
    start = since(170)
    async with client_for(emulator) as client:
        got = [task async for task in client.backlinks.id_list(start, max_items=300)]
    served = {item["id"]: item for item in emulator.tasks}
    for task in got:
        raw = served[task.id]
        assert task.url == raw["url"]
        assert task.datetime_posted == parse_datetime(raw["datetime_posted"])
        assert task.datetime_posted.tzinfo is UTC
        expected_done = raw["datetime_done"]
        assert task.datetime_done == (expected_done and parse_datetime(expected_done))
        assert task.status == raw["status"]
        assert task.cost == float(raw["cost"])
        assert task.metadata is None


async def test_request_body_is_exactly_the_documented_fields(emulator: Emulator) -> None:
    """One task per call, API datetime form, unset fields omitted, window fixed."""
    start = since(100).replace(microsecond=0)
    async with client_for(emulator) as client:
        pager = client.backlinks.id_list(start, sort="desc", include_metadata=False, max_items=5)
        [task async for task in pager]
    (request,) = emulator.requests
    (task,) = request.body
    assert set(task) == {"datetime_from", "datetime_to", "sort", "limit", "offset"}
    assert task["datetime_from"] == start.strftime("%Y-%m-%d %H:%M:%S +00:00")
    assert task["sort"] == "desc"
    assert (task["limit"], task["offset"]) == (5, 0)
    assert pager.state.params["datetime_to"] == task["datetime_to"]


async def test_desc_with_metadata_matches_the_emulator(emulator: Emulator) -> None:
    """sort='desc' and include_metadata=True give the server's order and metadata dicts."""
    start = since(25)
    async with client_for(emulator) as client:
        got = [t async for t in client.backlinks.id_list(start, sort="desc", include_metadata=True)]
    end = parse_datetime(emulator.requests[0].body[0]["datetime_to"])
    expected = emulator.expected_id_list(start, end, sort="desc", include_metadata=True)
    assert expected
    assert task_ids(got) == task_ids(expected)
    assert [t.metadata for t in got] == [e["metadata"] for e in expected]


async def test_errors_stream_with_filter(emulator: Emulator) -> None:
    """errors(filtered_function=...) yields exactly the emulator's entries for it."""
    async with client_for(emulator) as client:
        every = [e async for e in client.backlinks.errors(page_size=100)]
        live = [e async for e in client.backlinks.errors("backlinks/live")]
    assert len(every) == 300
    assert [(e.id, e.datetime) for e in every] == [
        (x["id"], parse_datetime(x["datetime"])) for x in emulator.expected_errors()
    ]
    expected_live = emulator.expected_errors(filtered_function="backlinks/live")
    assert expected_live
    assert task_ids(live) == task_ids(expected_live)
    assert {e.function for e in live} == {"backlinks/live"}
    assert len(calls_to(emulator, ERRORS)) == 4 + 1


async def test_repeated_error_ids_are_all_yielded(emulator: Emulator) -> None:
    """Entries sharing a task id are distinct records: none is dropped."""
    ids = task_ids(emulator.errors)
    assert len(set(ids)) < len(ids)
    async with client_for(emulator) as client:
        got = [e async for e in client.backlinks.errors()]
    assert len(got) == len(emulator.errors)


async def test_max_items_stops_early_and_asks_only_for_the_rest(emulator: Emulator) -> None:
    """max_items=1500 makes two calls, the second for 500, and yields 1500."""
    async with client_for(emulator) as client:
        got = [t async for t in client.backlinks.id_list(since(170), max_items=1500)]
    assert len(got) == 1500
    assert [r.body[0]["limit"] for r in emulator.requests] == [1000, 500]


async def test_pages_view(emulator: Emulator) -> None:
    """pages() yields Page objects with offsets, counts and the task's fields."""
    async with client_for(emulator) as client:
        pages = [p async for p in client.backlinks.id_list(since(170), page_size=1000).pages()]
    assert [(p.offset, p.limit, p.received, len(p.records), p.duplicates) for p in pages] == [
        (0, 1000, 1000, 1000, 0),
        (1000, 1000, 1000, 1000, 0),
        (2000, 1000, 500, 500, 0),
    ]
    assert all(p.cost == 0.0 and p.task_id for p in pages)


async def test_empty_window_costs_one_call(emulator: Emulator) -> None:
    """A window with no tasks yields nothing after one call."""
    async with client_for(emulator) as client:
        got = [t async for t in client.backlinks.id_list(since(0.0001))]
    assert got == []
    assert len(emulator.requests) == 1


async def test_other_apis_use_their_own_paths(emulator: Emulator) -> None:
    """client.api('serp') calls /v3/serp/... and has its own limiter."""
    async with client_for(emulator) as client:
        got = [t async for t in client.api("serp").id_list(since(170), max_items=10)]
        assert client.api("serp") is client.api("serp")
    assert len(got) == 10
    assert [r.path for r in emulator.requests] == ["/v3/serp/id_list"]


@pytest.mark.looptime
async def test_25_pages_under_the_real_limit_end_at_the_optimum() -> None:
    """25 calls at 10/60 s: no rejection, never 11 in a window, the 21st call at 120 s."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2450, rate_limit=(10, 60.0)) as emu,
        client_for(emu, rate_limit=dfs_async.RateLimit(calls=10, period=60.0)) as client,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        got = [t async for t in client.backlinks.id_list(since(170), page_size=100)]
        elapsed = loop.time() - started
    assert len(got) == 2450
    assert len(emu.requests) == 25
    assert [r.status_code for r in emu.requests] == [20000] * 25
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10
    times = [r.time - started for r in emu.requests]
    assert times[20] == pytest.approx(120.0, abs=0.5)
    assert times[10] == pytest.approx(60.0, abs=0.5)
    assert elapsed == pytest.approx(120.0, abs=0.5)
    assert client.stats.rate_limited == 0


@pytest.mark.looptime
async def test_two_streams_share_one_endpoint_limit() -> None:
    """Two pagers on one client together stay at 10 per minute, with 0 rejections."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=1500) as emu,
        client_for(emu) as client,
    ):

        async def drain() -> int:
            return len([t async for t in client.backlinks.id_list(since(170), page_size=100)])

        counts = await asyncio.gather(drain(), drain())
    assert list(counts) == [1500, 1500]
    assert len(emu.requests) == 32
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10


@pytest.mark.looptime
async def test_rate_limit_reply_pauses_and_asks_the_same_page_again() -> None:
    """A 40202 pauses the endpoint a full period, then the same page is asked: no loss."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2500) as emu,
        client_for(emu) as client,
    ):
        emu.inject(2, Fault.rate_limited())
        loop = asyncio.get_running_loop()
        started = loop.time()
        got = [t async for t in client.backlinks.id_list(since(170))]
    assert len({t.id for t in got}) == len(got) == 2500
    assert [(r.body[0]["offset"], r.status_code) for r in emu.requests] == [
        (0, 20000),
        (1000, 40202),
        (1000, 20000),
        (2000, 20000),
    ]
    assert emu.requests[2].time - started == pytest.approx(60.0, abs=0.5)
    assert client.stats.rate_limited == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.backlinks.id_list(datetime(2026, 11, 1)),
            "datetime_from must be timezone-aware",
        ),
        (
            lambda c: c.backlinks.id_list(since(2), since(1).replace(tzinfo=None)),
            "datetime_to must be timezone-aware",
        ),
        (lambda c: c.backlinks.id_list(since(1), since(2)), "must be before datetime_to"),
        (lambda c, t=YESTERDAY: c.backlinks.id_list(t, t), "must be before datetime_to"),
        (lambda c: c.backlinks.id_list(since(1), since(-1)), "datetime_to .* is in the future"),
        (lambda c: c.backlinks.id_list(since(200)), "more than six months ago"),
        (
            lambda c: c.backlinks.id_list(since(40), include_metadata=True),
            "more than one month \\(the limit with include_metadata=True\\) ago",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), page_size=0),
            "page_size must be a whole number from 1 to 1000, got 0",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), page_size=1001),
            "page_size must be a whole number from 1 to 1000, got 1001",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), page_size=True),
            "page_size must be a whole number",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), max_items=0),
            "max_items must be a whole number of at least 1, got 0",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), sort="up"),
            "sort must be 'asc' or 'desc', got 'up'",
        ),
        (
            lambda c: c.backlinks.id_list(since(1), include_metadata="yes"),
            "include_metadata must be True or False",
        ),
        (lambda c: c.backlinks.id_list(), "id_list needs datetime_from"),
        (lambda c: c.backlinks.id_list("2026-11-01"), "datetime_from must be a datetime, got str"),
        (lambda c: c.backlinks.errors(datetime_from=since(8)), "more than 7 days ago"),
        (lambda c: c.backlinks.errors(datetime_to=since(-1)), "is in the future"),
        (
            lambda c: c.backlinks.errors(filtered_function=""),
            "filtered_function must be a function name",
        ),
        (
            lambda c: c.backlinks.errors(max_items=-5),
            "max_items must be a whole number of at least 1",
        ),
        (
            lambda c: c.api("content_analysis").errors(),
            "the content_analysis API has no errors endpoint",
        ),
        (lambda c: c.api("nope"), "unknown API 'nope'"),
    ],
)
async def test_invalid_arguments_raise_before_any_call(
    emulator: Emulator, call: Any, message: str
) -> None:
    """Each bad argument raises InvalidArgumentError (a ValueError) and sends nothing."""
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.InvalidArgumentError, match=message) as info:
            call(client)
    assert isinstance(info.value, ValueError)
    assert emulator.requests == []


def test_missing_credentials_fail_when_the_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """No login/password and no environment variables: a clear error at construction."""
    monkeypatch.delenv("DATAFORSEO_LOGIN", raising=False)
    monkeypatch.delenv("DATAFORSEO_PASSWORD", raising=False)
    with pytest.raises(
        dfs_async.InvalidArgumentError, match="DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD"
    ):
        dfs_async.Client()


async def test_credentials_come_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATAFORSEO_LOGIN / DATAFORSEO_PASSWORD authenticate when no arguments are given."""
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    async with dfs_async.Client(base_url=emulator.url) as client:
        got = [t async for t in client.backlinks.id_list(since(170), max_items=3)]
    assert len(got) == 3


async def test_wrong_password_is_an_authentication_error_without_retry(emulator: Emulator) -> None:
    """HTTP 401 / 40100 raises AuthenticationError after exactly one call."""
    async with dfs_async.Client(LOGIN, "wrong", base_url=emulator.url) as client:
        with pytest.raises(dfs_async.AuthenticationError) as info:
            [t async for t in client.backlinks.id_list(since(170))]
    assert (info.value.status_code, info.value.http_status) == (40100, 401)
    assert info.value.endpoint == ID_LIST
    assert len(emulator.requests) == 1
    assert "wrong" not in str(info.value)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://api.dataforseo.com", "must use https://"),
        ("ftp://api.dataforseo.com", "must be an https:// URL"),
        ("https://user:pw@api.dataforseo.com", "must not carry credentials"),
        ("https://api.dataforseo.com?x=1", "must not have a query"),
    ],
)
def test_unsafe_base_urls_are_refused(base_url: str, message: str) -> None:
    """Plain http to a remote host, URL credentials and odd URLs are refused."""
    with pytest.raises(dfs_async.InvalidArgumentError, match=message):
        dfs_async.Client(LOGIN, PASSWORD, base_url=base_url)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", dfs_async.SANDBOX_BASE_URL],
)
async def test_loopback_http_and_the_sandbox_are_accepted(base_url: str) -> None:
    """http:// is fine on loopback (tests, the emulator); the sandbox URL is accepted."""
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=base_url) as client:
        assert client.base_url == base_url


async def test_secret_never_in_repr_or_str() -> None:
    """repr/str of the client and its pieces show the login, never the password."""
    async with dfs_async.Client(LOGIN, PASSWORD) as client:
        texts = [repr(client), str(client), repr(client.__dict__), repr(client.backlinks)]
    assert all(PASSWORD not in text for text in texts)
    assert LOGIN in repr(client)


async def test_aclose_is_idempotent_and_closes_the_session(emulator: Emulator) -> None:
    """aclose() twice is fine; the client's own session is closed; later use raises."""
    client = client_for(emulator)
    [t async for t in client.backlinks.id_list(since(170), max_items=1)]
    session = client._session
    await client.aclose()
    await client.aclose()
    assert session is not None
    assert session.closed
    with pytest.raises(dfs_async.ClientClosedError, match="the client is closed"):
        [t async for t in client.backlinks.id_list(since(170))]


async def test_user_session_is_used_and_left_open(emulator: Emulator) -> None:
    """A session passed in carries the calls and is not closed by the client."""
    async with aiohttp.ClientSession() as session:
        async with client_for(emulator, session=session) as client:
            got = [t async for t in client.backlinks.id_list(since(170), max_items=2)]
        assert not session.closed
    assert len(got) == 2


def test_unclosed_client_warns_when_collected() -> None:
    """An open client that is garbage-collected emits a ResourceWarning."""
    client = dfs_async.Client(LOGIN, PASSWORD)

    def drop() -> None:
        nonlocal client
        del client
        gc.collect()

    with pytest.warns(ResourceWarning, match="was never closed"):
        drop()


def test_using_a_client_from_a_second_loop_is_a_clear_error() -> None:
    """A client bound to one event loop refuses another instead of hanging."""

    async def main() -> dfs_async.Client:
        async with Emulator(LOGIN, PASSWORD, n_tasks=10) as emu:
            client = client_for(emu)
            [t async for t in client.backlinks.id_list(since(170))]
            assert client._session is not None
            await client._session.close()  # what would leak when the first loop ends
            return client

    client = asyncio.run(main())

    async def again() -> None:
        try:
            with pytest.raises(dfs_async.ClientClosedError, match="another event loop"):
                [t async for t in client.backlinks.id_list(since(170))]
        finally:
            client._closed = True  # its session died with the first loop

    asyncio.run(again())


async def test_break_and_aclosing_release_the_prefetch(emulator: Emulator) -> None:
    """Leaving a stream early with aclosing cancels the prefetched call: no leak, no warning."""
    async with client_for(emulator) as client:
        async with contextlib.aclosing(client.backlinks.id_list(since(170))) as tasks:
            async for _ in tasks:
                break
        assert all(task.done() for task in client._tasks)
    assert len(emulator.requests) <= 2


async def test_pager_is_single_use(emulator: Emulator) -> None:
    """Reading a pager a second way raises a clear error."""
    async with client_for(emulator) as client:
        pager = client.backlinks.id_list(since(170), max_items=1)
        [t async for t in pager]
        with pytest.raises(RuntimeError, match="single-use"):
            pager.pages()


async def test_debug_logs_carry_no_secret(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Logging at DEBUG through a stream never shows the password or its base64 form."""
    import base64

    caplog.set_level(logging.DEBUG)
    async with client_for(emulator) as client:
        [t async for t in client.backlinks.id_list(since(170))]
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "offset=0 limit=1000: 1000 records" in text
    assert PASSWORD not in text
    assert token not in text


async def test_next_call_leaves_before_the_page_is_handed_over(emulator: Emulator) -> None:
    """Without max_items, call 2 is under way when the consumer gets page 1's first record."""
    async with client_for(emulator) as client:
        async with client.backlinks.id_list(since(170)) as tasks:
            await tasks.__anext__()
            assert client.stats.calls == 2
        got_with_cap = client.backlinks.id_list(since(170), max_items=2500)
        async with got_with_cap:
            await got_with_cap.__anext__()
            # With max_items the next call waits for the page's records (their count decides it).
            assert client.stats.calls == 3


#: (now, the earliest id_list start, the earliest with include_metadata): month ends, a leap
#: day and the last second of a year, where "N months" and "N * 30 days" part ways.
CALENDAR_EDGES = [
    ("2027-03-31 12:00:00", "2026-09-30 12:00:00", "2027-02-28 12:00:00"),
    ("2028-02-29 12:00:00", "2027-08-29 12:00:00", "2028-01-29 12:00:00"),
    ("2028-03-31 00:00:00", "2027-09-30 00:00:00", "2028-02-29 00:00:00"),
    ("2026-12-31 23:59:59", "2026-06-30 23:59:59", "2026-11-30 23:59:59"),
    ("2027-03-01 00:00:01", "2026-09-01 00:00:01", "2027-02-01 00:00:01"),
]


@pytest.mark.parametrize(("now", "six", "one"), CALENDAR_EDGES)
async def test_window_limits_hold_to_the_second_on_both_sides_at_calendar_edges(
    now: str, six: str, one: str
) -> None:
    """At a pinned now the earliest start is served; a second earlier is refused before a call."""
    pinned = parse_datetime(now)
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2000, now=lambda: pinned, rate_limit=None) as emu,
        client_for(emu, now=lambda: pinned) as client,
    ):
        seven = pinned - timedelta(days=7)
        for earliest, open_window in (
            (parse_datetime(six), lambda start: client.backlinks.id_list(start, max_items=1)),
            (
                parse_datetime(one),
                lambda start: client.backlinks.id_list(start, include_metadata=True, max_items=1),
            ),
            (seven, lambda start: client.backlinks.errors(datetime_from=start, max_items=1)),
        ):
            calls = len(emu.requests)
            assert len([r async for r in open_window(earliest)]) == 1
            assert len(emu.requests) == calls + 1
            with pytest.raises(dfs_async.InvalidArgumentError, match="ago; the earliest"):
                open_window(earliest - timedelta(seconds=1))
            assert len(emu.requests) == calls + 1
