"""Faults, retries, exactly-once streaming, resume, cancellation and secrets, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import random
import traceback
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web

import dfs_async
from dfs_async._convert import parse_datetime
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "worker@example.com"
PASSWORD = "Pa55-w0rd-that-must-never-leak"
ID_LIST = "/v3/backlinks/id_list"
ERRORS = "/v3/backlinks/errors"
FAST_RETRY = dfs_async.Retry(attempts=4, initial=1.0, maximum=8.0)


def since(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def client_for(emu: Emulator, **kwargs: Any) -> dfs_async.Client:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("rng", random.Random(1))
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, **kwargs)


def window_end(emu: Emulator) -> datetime:
    return parse_datetime(emu.requests[0].body[0]["datetime_to"])


async def stream_ids(client: dfs_async.Client, **kwargs: Any) -> list[str]:
    return [task.id async for task in client.backlinks.id_list(since(170), **kwargs)]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, n_errors=2500, seed=3) as emulator:
        yield emulator


TRANSIENT_FAULTS = [
    Fault.reset_before_headers(),
    Fault.reset_during_body(),
    Fault.delay(200.0),
    Fault.http_status(500),
    Fault.http_status(502),
    Fault.http_status(503),
    Fault.http_status(429),
    Fault.truncated_json(),
    Fault.html(502),
    Fault.html(200),
    Fault.envelope_error(50000),
    Fault.envelope_error(50303, "Update in progress."),
    Fault.task_error(50000),
    Fault.task_error(40209, "Too many simultaneous queries."),
]


@pytest.mark.looptime
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=lambda f: f"{f.name}-{f.status or f.code}")
async def test_transient_fault_is_retried_without_loss_or_duplicate(
    emu: Emulator, fault: Fault
) -> None:
    """Each transient fault on page 2 costs one extra call; the records are exactly the set."""
    emu.inject(2, fault)
    async with client_for(emu, timeout=30.0) as client:
        got = await stream_ids(client)
    expected = [t["id"] for t in emu.expected_id_list(since(170), window_end(emu))]
    assert got == expected
    assert len(got) == 2500
    assert [r.body[0]["offset"] for r in emu.requests] == [0, 1000, 1000, 2000]
    assert client.stats.calls == 4
    assert client.stats.retries == 1


@pytest.mark.looptime
async def test_burst_of_rate_limit_replies_waits_and_loses_nothing(emu: Emulator) -> None:
    """Three 40202 in a row: each pauses a period; the stream completes exactly."""
    emu.script({2: Fault.rate_limited(), 3: Fault.rate_limited(), 4: Fault.rate_limited()})
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client_for(emu) as client:
        got = await stream_ids(client)
    assert len(set(got)) == len(got) == 2500
    assert [r.status_code for r in emu.requests] == [20000, 40202, 40202, 40202, 20000, 20000]
    assert emu.requests[4].time - started == pytest.approx(180.0, abs=1.0)
    assert client.stats.rate_limited == 3


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (
            Fault.envelope_error(40501, "Invalid Field: 'limit'."),
            dfs_async.InvalidRequestError,
            40501,
        ),
        (
            Fault.task_error(40506, "Unknown Fields in POST Data: x."),
            dfs_async.InvalidRequestError,
            40506,
        ),
        (Fault.envelope_error(40200, "Payment Required."), dfs_async.AuthenticationError, 40200),
        (
            Fault.task_error(40207, "Access denied. Your IP is not whitelisted."),
            dfs_async.AuthenticationError,
            40207,
        ),
        (Fault.http_status(404), dfs_async.InvalidRequestError, None),
    ],
)
async def test_permanent_error_raises_at_once_with_code_and_message(
    emu: Emulator, fault: Fault, error: type[dfs_async.APIError], code: int | None
) -> None:
    """Authentication and invalid-request errors are not retried: one call, code kept."""
    emu.inject(2, fault)
    got: list[str] = []

    async def consume(client: dfs_async.Client) -> None:
        async for task in client.backlinks.id_list(since(170)):
            got.append(task.id)

    async with client_for(emu) as client:
        with pytest.raises(error) as info:
            await consume(client)
    assert info.value.status_code == code
    if code is not None:
        assert info.value.status_message == fault.message
    assert len(emu.requests) == 2
    assert len(got) == 1000
    assert client.stats.retries == 0


@pytest.mark.looptime
async def test_retries_are_bounded_by_attempts(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Four 500s with attempts=4: ServerError after exactly 4 calls, each retry logged."""
    emu.script({n: Fault.http_status(500) for n in range(1, 10)})
    caplog.set_level(logging.WARNING, logger="dfs_async")
    async with client_for(emu) as client:
        with pytest.raises(dfs_async.ServerError) as info:
            await stream_ids(client)
    assert info.value.http_status == 500
    assert len(emu.requests) == 4
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3
    assert retries[0].startswith(f"{ID_LIST} offset=0: ServerError HTTP 500; retry 1/3 in ")
    assert "giving up after 4 attempts: ServerError HTTP 500" in caplog.text


@pytest.mark.looptime
async def test_retries_are_bounded_by_the_deadline(emu: Emulator) -> None:
    """With a 5 s deadline, slow failures stop long before the attempts run out."""
    emu.script({n: Fault.delay(3.0) for n in range(1, 10)})
    retry = dfs_async.Retry(attempts=10, deadline=5.0, initial=1.0, maximum=1.0)
    async with client_for(emu, retry=retry, timeout=2.0) as client:
        with pytest.raises(dfs_async.RequestTimeoutError, match="no reply within 2 s"):
            await stream_ids(client)
    # The first try times out at 2 s; a call with no reply may still be counted by the server
    # later, so the endpoint pauses a period; the second try (at 62 s) times out too and the
    # deadline, which counts that wait, has passed.
    assert len(emu.requests) == 2
    assert emu.requests[1].time == pytest.approx(62.0)


@pytest.mark.looptime
async def test_backoff_is_exponential_with_full_jitter(emu: Emulator) -> None:
    """Waits between tries stay within initial * 2**(n-1), capped, and are jittered."""
    emu.script({n: Fault.http_status(503) for n in range(1, 4)})
    retry = dfs_async.Retry(attempts=5, initial=10.0, maximum=25.0)
    async with client_for(emu, retry=retry) as client:
        await stream_ids(client, max_items=5)
    times = [r.time for r in emu.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3
    for gap, bound in zip(gaps, [10.0, 20.0, 25.0], strict=True):
        assert 0.0 <= gap <= bound
    assert len(set(gaps)) == 3
    assert client.stats.seconds_waited == pytest.approx(sum(gaps), abs=0.01)


@pytest.mark.looptime
async def test_head_inserts_in_errors_are_dropped_as_overlap(emu: Emulator) -> None:
    """Errors newest first: 37 new entries land between pages; every original comes once."""
    expected = emu.expected_errors()
    emu.script({2: Fault.insert_head(37), 3: Fault.insert_head(5)})
    pages = []
    async with client_for(emu) as client:
        async for page in client.backlinks.errors().pages():
            pages.append(page)
    got = [record for page in pages for record in page.records]
    assert [(e.id, e.datetime, e.error_code) for e in got] == [
        (x["id"], parse_datetime(x["datetime"]), x["error_code"]) for x in expected
    ]
    assert [p.duplicates for p in pages] == [0, 37, 5]
    assert [p.received for p in pages] == [1000, 1000, 542]


@pytest.mark.looptime
async def test_head_inserts_in_a_desc_id_list_are_dropped(emu: Emulator) -> None:
    """A desc id_list growing at the head between pages still yields each task once."""
    async with client_for(emu) as client:
        pager = client.backlinks.id_list(since(170), sort="desc")
        first = await pager.__anext__()
        emu.inject(2, Fault.insert_head(12))
        got = [first.id] + [t.id async for t in pager]
    expected = emu.expected_id_list(since(170), window_end(emu), sort="desc")
    new_ids = {t["id"] for t in expected[:12]}
    assert len(got) == len(set(got))
    assert [i for i in got if i not in new_ids] == [t["id"] for t in expected[12:]]


@pytest.mark.looptime
@pytest.mark.parametrize("cut", [0, 1, 999, 1000, 1001, 1777, 2499])
async def test_resume_after_a_stop_yields_the_rest_exactly_once(emu: Emulator, cut: int) -> None:
    """Stop after `cut` records, save the state as JSON, resume in a new client: each once."""
    async with client_for(emu) as client:
        pager = client.backlinks.id_list(since(170), sort="desc")
        first: list[str] = []
        async with pager:
            while len(first) < cut:
                first.append((await pager.__anext__()).id)
        saved = json.dumps(pager.state.to_json())
    state = dfs_async.PagerState.from_json(json.loads(saved))
    async with client_for(emu) as client:
        rest = [t.id async for t in client.backlinks.id_list(resume=state)]
    expected = [t["id"] for t in emu.expected_id_list(since(170), window_end(emu), sort="desc")]
    assert first + rest == expected


@pytest.mark.looptime
async def test_resume_with_different_arguments_is_refused(emu: Emulator) -> None:
    """Arguments given with resume= must describe the same request."""
    start = since(100)
    async with client_for(emu) as client:
        pager = client.backlinks.id_list(start, max_items=10)
        [t async for t in pager]
        state = pager.state
        with pytest.raises(
            dfs_async.InvalidArgumentError, match="sort is 'asc' there, 'desc' here"
        ):
            client.backlinks.id_list(start, sort="desc", max_items=10, resume=state)
        with pytest.raises(dfs_async.InvalidArgumentError, match="is for /v3/backlinks/id_list"):
            client.backlinks.errors(resume=state)
        again = [t async for t in client.backlinks.id_list(start, max_items=10, resume=state)]
    assert again == []
    assert len(emu.requests) == 1


@pytest.mark.looptime
async def test_cancelling_the_consumer_mid_request_releases_everything(emu: Emulator) -> None:
    """Cancel while a reply is pending: CancelledError, no stuck slot, client still usable."""
    emu.inject(1, Fault.delay(30.0))
    async with client_for(emu) as client:
        consumer = asyncio.create_task(stream_ids(client))
        await asyncio.sleep(5.0)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        limiter = client._limiter(ID_LIST)
        assert limiter.window.in_flight == 0  # type: ignore[attr-defined]
        assert len(await stream_ids(client, max_items=3)) == 3


@pytest.mark.looptime
@pytest.mark.parametrize("prefetch", [0, 1])
async def test_closing_the_client_stops_running_pagers_clearly(
    emu: Emulator, prefetch: int
) -> None:
    """aclose() while a page is in flight: the pager fails with ClientClosedError, no leak."""
    emu.inject(2, Fault.delay(30.0))
    client = client_for(emu, prefetch=prefetch)
    consumer = asyncio.create_task(stream_ids(client))
    await asyncio.sleep(5.0)
    await client.aclose()
    with pytest.raises(dfs_async.ClientClosedError):
        await consumer


@pytest.mark.looptime
async def test_hundred_concurrent_pagers_on_one_client(emu: Emulator) -> None:
    """100 pagers in one loop share the limit: all complete, 10 per window, 0 rejections."""
    async with client_for(emu) as client:
        counts = await asyncio.gather(*(stream_ids(client, max_items=7) for _ in range(100)))
    assert [len(c) for c in counts] == [7] * 100
    assert len(emu.requests) == 100
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10


@pytest.mark.looptime
async def test_no_secret_in_any_log_line_exception_or_traceback(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream through every fault, logged at DEBUG: the password appears nowhere."""
    caplog.set_level(logging.DEBUG)
    emu.script(dict(enumerate(TRANSIENT_FAULTS[:3], start=2)))
    for number in range(20, 30):
        emu.inject(number, Fault.http_status(500))
    texts: list[str] = []
    async with client_for(emu, timeout=30.0) as client:
        texts.append(repr(client))
        with pytest.raises(dfs_async.ServerError) as info:
            async for _ in client.backlinks.errors(page_size=100):
                pass
        texts.extend(
            [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
        )
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(str(record.args) for record in caplog.records)
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    blob = "\n".join(texts)
    assert "retry" in blob
    assert PASSWORD not in blob
    assert token not in blob
    assert all(PASSWORD not in json.dumps(r.body) for r in emu.requests)


async def test_redirects_are_not_followed_so_credentials_stay_home() -> None:
    """A 307 to another host raises; the other host never sees the Authorization header."""
    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{other_port}/steal")

    other = web.Application()
    other.router.add_post("/steal", elsewhere)
    home = web.Application()
    home.router.add_post("/v3/backlinks/id_list", redirect)
    runners = [web.AppRunner(app) for app in (other, home)]
    try:
        ports = []
        for runner in runners:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.append(runner.addresses[0][1])
        other_port, home_port = ports
        async with dfs_async.Client(LOGIN, PASSWORD, base_url=f"http://127.0.0.1:{home_port}") as c:
            with pytest.raises(dfs_async.InvalidRequestError) as info:
                [t async for t in c.backlinks.id_list(since(10))]
    finally:
        for runner in runners:
            await runner.cleanup()
    assert info.value.http_status == 307
    assert seen == []


@pytest.mark.looptime
async def test_aclose_stops_a_stream_waiting_for_the_limiter_at_once(emu: Emulator) -> None:
    """A stream waiting for its slot stops with ClientClosedError when the client closes."""
    client = client_for(emu, rate_limit=dfs_async.RateLimit(calls=1, period=60.0))
    first = await stream_ids(client, max_items=1)
    consumer = asyncio.create_task(stream_ids(client))
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await client.aclose()
    with pytest.raises(dfs_async.ClientClosedError):
        await consumer
    assert loop.time() - closed_at < 1.0
    assert len(first) == 1
    assert len(emu.requests) == 1
    assert client.stats.calls == 1


class ReleaseFails:
    """A limiter backend whose release always fails, as a broken shared store would."""

    def limiter(self, key: str, rate: dfs_async.RateLimit) -> ReleaseFails:
        return self

    async def acquire(self) -> dfs_async.Permit:
        return dfs_async.Permit(waited=0.0)

    async def release(self, permit: dfs_async.Permit) -> None:
        raise ConnectionError("the limiter's store went away")

    async def pause(self) -> None:
        """Nothing to pause."""


async def test_a_failing_limiter_release_does_not_cost_the_page(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The page already read is kept; the limiter's trouble is logged."""
    async with client_for(emu, limiter=ReleaseFails()) as client:
        got = await stream_ids(client)
    assert len(got) == 2500
    assert "rate limiter could not record a call: ConnectionError" in caplog.text


async def test_token_is_not_in_a_traceback_with_local_variables(emu: Emulator) -> None:
    """Formatting a failure with locals (as error trackers do) shows no token."""
    emu.inject(1, Fault.http_status(404))
    async with client_for(emu) as client:
        with pytest.raises(dfs_async.InvalidRequestError) as info:
            await stream_ids(client)
    text = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    assert "in _fetch" in text  # the client's frames, with their locals, are in the text
    assert token not in text
    assert PASSWORD not in text


def test_bad_base_url_with_credentials_does_not_echo_them() -> None:
    """A URL carrying a password is refused without repeating it."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, base_url="ftp://user:hunter2@example.com")
    assert "hunter2" not in str(info.value)


async def test_errors_window_is_fixed_when_iteration_starts(emu: Emulator) -> None:
    """errors() sends a datetime_to fixed at the start, the same on every page."""
    async with client_for(emu) as client:
        pager = client.backlinks.errors(page_size=1000)
        got = [e async for e in pager]
    ends = {r.body[0]["datetime_to"] for r in emu.requests}
    assert len(ends) == 1
    assert pager.state.params["datetime_to"] in ends
    assert len(got) == 2500


async def test_resume_checks_only_the_arguments_passed(emu: Emulator) -> None:
    """errors(resume=s) alone is fine; a passed argument that differs is refused."""
    async with client_for(emu) as client:
        pager = client.backlinks.errors("backlinks/live", max_items=3)
        [e async for e in pager]
        state = pager.state
        assert [e async for e in client.backlinks.errors(resume=state)] == []
        with pytest.raises(dfs_async.InvalidArgumentError, match="max_items is 3 there, 4 here"):
            client.backlinks.errors(max_items=4, resume=state)
        with pytest.raises(dfs_async.InvalidArgumentError, match="filtered_function"):
            client.backlinks.errors("backlinks/summary", resume=state)


async def test_a_closed_user_session_is_a_clear_error(emu: Emulator) -> None:
    """A session closed by its owner gives ClientClosedError, not aiohttp's RuntimeError."""
    import aiohttp

    session = aiohttp.ClientSession()
    await session.close()
    async with client_for(emu, session=session) as client:
        with pytest.raises(
            dfs_async.ClientClosedError, match="session given to the client is closed"
        ):
            await stream_ids(client)


async def test_resume_does_not_recheck_the_window_against_a_later_clock(emu: Emulator) -> None:
    """A window valid when the stream started stays resumable when the clock has moved on."""
    start = since(170)
    async with client_for(emu) as client:
        pager = client.backlinks.id_list(start, max_items=3)
        [t async for t in pager]
    later = datetime.now(UTC) + timedelta(days=60)
    async with client_for(emu, now=lambda: later) as client:
        with pytest.raises(dfs_async.InvalidArgumentError, match="more than six months ago"):
            client.backlinks.id_list(start)
        resumed = client.backlinks.id_list(start, resume=pager.state)
        assert resumed.state == pager.state
