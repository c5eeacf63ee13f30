"""The library's promises for a follow: faults, cancellation, aclose, secrets, the shared quota."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from test_follow import ERRORS, ID_LIST, SETTLE, START, entry_of, version
from test_redis import RedisServer, free_port, load_example
from test_secrets import FORBIDDEN

import dfs_async
from dfs_async import FollowState
from dfs_async.testing import Emulator, Fault, Live

LOGIN = "worker@example.com"
PASSWORD = "Pa55-w0rd-that-must-never-leak"
UTC = timezone.utc

#: Every transient fault a poll can meet; each is retried by the client, inside the poll.
TRANSIENT = [
    Fault.reset_before_headers(),
    Fault.reset_during_body(),
    Fault.malformed_status_line(),
    Fault.http_status(500),
    Fault.http_status(503),
    Fault.http_status(429),
    Fault.rate_limited(),
    Fault.truncated_json(),
    Fault.html(502),
    Fault.envelope_error(50000),
    Fault.task_error(50000),
    Fault.delay(45.0),
]


def client_for(emu: Emulator, live: Live, **kwargs: Any) -> dfs_async.Client:
    settings: dict[str, Any] = {
        "retry": dfs_async.Retry(initial=0.5, maximum=5.0),
        "timeout": 30.0,
        **kwargs,
    }
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, now=live.now, **settings)


async def consume(
    follower: Any, log: list[Any], saved: list[dict[str, Any] | None], kind: str
) -> None:
    """Append each record to `log` and save the state in the same step (as run_follow)."""
    async with follower:
        async for record in follower:
            log.append(version(record) if kind == "ids" else entry_of(record))
            saved[0] = follower.state.to_json()


def expected_errors(live: Live) -> list[Any]:
    return [(e["id"], e["datetime"], e["function"], e["http_time"]) for e in live.expected_errors()]


@pytest.mark.looptime
@pytest.mark.parametrize("window_on", ["posted", "done"])
async def test_transient_faults_in_polls_lose_and_repeat_nothing(window_on: str) -> None:
    """Resets, 5xx, 429, 40202, cut JSON, HTML, slow replies amid polls: both logs are exact."""
    live = Live(start=START, seed=7, window_on=window_on, until=2 * 3600.0)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        # Two of each fault, spread over the first two hours of requests of both follows.
        emu.script({7 + 9 * i: fault for i, fault in enumerate(TRANSIENT * 2)})
        ids: list[Any] = []
        errors: list[Any] = []
        async with client_for(emu, live) as client:
            since = START - timedelta(minutes=1)
            tasks = [
                asyncio.create_task(
                    consume(client.backlinks.follow_ids(since), ids, [None], "ids")
                ),
                asyncio.create_task(
                    consume(
                        client.backlinks.follow_errors(datetime_from=since), errors, [None], "e"
                    )
                ),
            ]
            await asyncio.sleep(2 * 3600 + SETTLE)
            for task in tasks:
                assert not task.done()  # no fault escaped a follow
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    played = [r.fault for r in emu.requests if r.fault is not None]
    assert sorted(played) == sorted(f.name for f in TRANSIENT * 2)
    assert len(ids) == len(set(ids))
    assert sorted(ids, key=repr) == sorted(live.history, key=repr)
    assert sorted(errors, key=repr) == sorted(expected_errors(live), key=repr)
    assert emu.max_calls_in_window(ID_LIST, 60.0) <= 10
    assert emu.max_calls_in_window(ERRORS, 60.0) <= 10


@pytest.mark.looptime
@pytest.mark.parametrize("window_on", ["posted", "done"])
async def test_an_error_that_ends_a_poll_is_resumed_from_the_state_exactly(window_on: str) -> None:
    """Retries exhausted mid-poll raise out of the follow; resumed from its state, nothing is
    lost or repeated."""
    live = Live(start=START, seed=8, window_on=window_on, until=2 * 3600.0)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        # Requests 30-32, 60-62, 90-92: each a run of three failures, more than two attempts.
        emu.script({n + k: Fault.http_status(500) for n in (30, 60, 90) for k in range(3)})
        log: list[Any] = []
        saved: list[dict[str, Any] | None] = [None]
        failures = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 2 * 3600 + SETTLE
        retry = dfs_async.Retry(attempts=2, initial=0.5, maximum=1.0)
        while loop.time() < end:
            resume = None if saved[0] is None else FollowState.from_json(saved[0])
            async with client_for(emu, live, retry=retry) as client:
                follower = client.backlinks.follow_ids(START - timedelta(minutes=1), resume=resume)
                task = asyncio.create_task(consume(follower, log, saved, "ids"))
                done, _ = await asyncio.wait({task}, timeout=end - loop.time())
                if task in done:
                    with pytest.raises(dfs_async.ServerError):
                        task.result()
                    failures += 1
                else:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    assert failures == 3
    assert len(log) == len(set(log))
    assert sorted(log, key=repr) == sorted(live.history, key=repr)


@pytest.mark.looptime
async def test_cancelled_while_waiting_for_the_next_poll_sends_nothing_more() -> None:
    """A consumer cancelled between polls: no call after it, and the state resumes exactly."""
    live = Live(start=START, seed=9)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(600)
        log: list[Any] = []
        saved: list[dict[str, Any] | None] = [None]
        async with client_for(emu, live) as client:
            follower = client.backlinks.follow_ids(START)
            task = asyncio.create_task(consume(follower, log, saved, "ids"))
            await asyncio.sleep(30)  # the first poll is done; it waits until 60 s
            assert follower.state.polls == 1
            sent = len(emu.requests)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(600)
            assert len(emu.requests) == sent
            # Saved after its last record: the finished poll is re-run, skipping what it gave.
            assert saved[0] is not None
            again = client.backlinks.follow_ids(resume=FollowState.from_json(saved[0]))
            more: list[Any] = []
            task = asyncio.create_task(consume(again, more, saved, "ids"))
            await asyncio.sleep(30)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert more
    assert set(more).isdisjoint(log)


@pytest.mark.looptime
@pytest.mark.parametrize("where", ["between polls", "in a call"])
async def test_aclose_from_another_task_ends_the_consumers_loop(where: str) -> None:
    """aclose() from a shutdown task: the consumer's `async for` simply ends, no call is left
    running, and nothing is sent afterwards."""
    live = Live(start=START, seed=9)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(600)
        if where == "in a call":
            emu.inject(2, Fault.delay(300.0))  # the second poll's call hangs
        log: list[Any] = []
        async with client_for(emu, live, timeout=600.0) as client:
            follower = client.backlinks.follow_ids(START)
            task = asyncio.create_task(consume(follower, log, [None], "ids"))
            await asyncio.sleep(90)  # past the second poll's start
            assert follower.state.polls == (1 if where == "in a call" else 2)
            sent = len(emu.requests)
            await follower.aclose()
            assert task.done()
            assert task.result() is None  # the loop ended; nothing raised
            await follower.aclose()  # idempotent
            with pytest.raises(StopAsyncIteration):
                await follower.__anext__()
            await asyncio.sleep(600)
            assert len(emu.requests) == sent
    assert log
    assert len(log) == len(set(log))


@pytest.mark.looptime
async def test_a_cancel_from_elsewhere_is_not_swallowed_after_aclose() -> None:
    """A consumer cancelled by its owner stays cancelled: aclose() only ends its own loop."""
    live = Live(start=START, seed=9)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(600)
        async with client_for(emu, live) as client:
            follower = client.backlinks.follow_ids(START)
            task = asyncio.create_task(consume(follower, [], [None], "ids"))
            await asyncio.sleep(30)
            task.cancel()
            await follower.aclose()
            with pytest.raises(asyncio.CancelledError):
                await task


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.backlinks.follow_ids(START, lookback=0.5),
            "lookback must be a number of seconds >= 1",
        ),
        (
            lambda c: c.backlinks.follow_ids(START, poll_interval=True),
            "poll_interval must be a number of seconds >= 1",
        ),
        (
            lambda c: c.backlinks.follow_ids(START, once=1),
            "once must be True or False",
        ),
        (
            lambda c: c.backlinks.follow_errors(once="yes"),
            "once must be True or False",
        ),
        (
            lambda c: c.backlinks.follow_ids(resume={"cursor": 1}),
            "resume must be a FollowState",
        ),
        (
            lambda c: c.backlinks.follow_ids(START - timedelta(days=400)),
            "datetime_from",
        ),
        (
            lambda c: c.backlinks.follow_errors(datetime_from=START - timedelta(days=30)),
            "datetime_from",
        ),
        (
            lambda c: c.backlinks.follow_errors(datetime_from=datetime(2026, 11, 1)),
            "timezone-aware",
        ),
        (
            lambda c: c.backlinks.follow_errors(
                "backlinks/live",
                resume=c.backlinks.follow_errors("backlinks/summary").state,
            ),
            "filtered_function is 'backlinks/summary' there, 'backlinks/live' here",
        ),
        (
            lambda c: c.backlinks.follow_ids(
                resume=c.backlinks.follow_errors().state, include_metadata=True
            ),
            "this follow state is for /v3/backlinks/errors, not /v3/backlinks/id_list",
        ),
    ],
)
@pytest.mark.looptime
async def test_more_bad_arguments_fail_before_any_call(call: Any, message: str) -> None:
    """Each bad argument raises InvalidArgumentError saying what to change; nothing is sent."""
    live = Live(start=START, seed=1)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(3600)
        async with client_for(emu, live) as client:
            with pytest.raises(dfs_async.InvalidArgumentError, match=message) as info:
                call(client)
    assert emu.requests == []
    assert all(secret not in str(info.value) for secret in (*FORBIDDEN, LOGIN))


@pytest.mark.looptime
async def test_no_secret_in_repr_state_or_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """The follower's repr, its saved state and every log line of a poll hold no credential."""
    live = Live(start=START, seed=3)
    caplog.set_level(logging.DEBUG, logger="dfs_async")
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(1800)
        emu.inject(2, Fault.http_status(500))  # a retry's log line too
        reprs = []
        async with client_for(emu, live) as client:
            for kind, follower in (
                ("ids", client.backlinks.follow_ids(START)),
                ("errors", client.backlinks.follow_errors(datetime_from=START)),
            ):
                task = asyncio.create_task(consume(follower, [], [None], kind))
                await asyncio.sleep(150)
                await follower.aclose()
                await task
                reprs.append(repr(follower))
                texts = [repr(follower), json.dumps(follower.state.to_json()), caplog.text]
                for secret in (*FORBIDDEN, LOGIN):
                    assert all(secret not in text for text in texts)
    assert reprs == [
        "<Follower /v3/backlinks/id_list polls=3>",
        "<Follower /v3/backlinks/errors polls=3>",
    ]
    assert "poll 2 took" in caplog.text


def export_bound(calls: int, rate: int = 10, period: float = 60.0) -> float:
    """The least time from the first to the last of `calls` calls on an idle quota."""
    return (-(-calls // rate) - 1) * period


@pytest.mark.looptime
@pytest.mark.parametrize("window_on", ["posted", "done"])
async def test_a_follow_beside_a_full_export_on_one_client_slows_it_by_its_own_calls(
    window_on: str,
) -> None:
    """An export of 48 h beside a follow: no rejection, at most 10 a minute, and the export ends
    no later than if the follow's calls in its span had been its own."""
    live = Live(start=START, seed=10, window_on=window_on)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(48 * 3600)
        loop = asyncio.get_running_loop()
        async with client_for(emu, live) as client:
            follower = client.backlinks.follow_ids(live.now() - timedelta(minutes=10))
            log: list[Any] = []
            following = asyncio.create_task(consume(follower, log, [None], "ids"))
            await asyncio.sleep(150)  # three polls: the follow is in its steady state
            end = live.now() - timedelta(hours=1)
            started = loop.time()
            exported = [task.id async for task in client.backlinks.id_list(START, end)]
            await asyncio.sleep(120)
            await follower.aclose()
            await following
    stamp = START.strftime("%Y-%m-%d %H:%M:%S +00:00")
    export = [r for r in emu.requests if r.path == ID_LIST and r.body[0]["datetime_from"] == stamp]
    others = [r for r in emu.requests if r not in export]
    first, last = export[0].time, export[-1].time
    beside = [r for r in others if first - 60.0 < r.time <= last]
    assert len(exported) == len(set(exported)) > 30_000
    assert len(export) == len(exported) // 1000 + 1
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) <= 10
    assert 0 < len(beside) < len(export)
    assert first - started < 1.0
    assert last - first <= export_bound(len(export) + len(beside))
    assert len(log) == len(set(log))


@pytest.mark.heavy
async def test_a_follow_and_an_export_in_another_process_share_one_quota_through_redis(
    tmp_path: Any,
) -> None:
    """A follow here, an export in a worker process, one RedisBackend: no rejection, never 11
    calls in a second, no call wasted, nothing repeated.

    Real time (a subprocess has no virtual clock), on the emulator's fast 10-a-second quota.
    How little the follow slows the export is a speed: the virtual-clock test above proves the
    bound exactly in one process, and benchmarks/quota.py measures it across processes.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, free_port())
    server.start()
    try:
        loop = asyncio.get_running_loop()
        # An hour of history already played (5 tasks a second), live from here on.
        now = datetime.now(UTC)
        live = Live(
            start=now - timedelta(hours=1),
            origin=loop.time() - 3600.0,
            post_every=(0.15, 0.25),
            queue=((1.0, 30.0, 1.0),),
            error_every=5.0,
        )
        example = load_example()
        env = {**os.environ, "DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
        rate = dfs_async.RateLimit(calls=10, period=1.0)
        async with (
            Emulator(LOGIN, PASSWORD, live=live, rate_limit=(10, 1.0)) as emu,
            dfs_async.RedisBackend(server.url) as shared,
            client_for(emu, live, rate_limit=rate, limiter=shared) as client,
        ):
            follower = client.backlinks.follow_ids(
                live.now() - timedelta(seconds=10), poll_interval=1.0, lookback=2.0
            )
            log: list[Any] = []
            following = asyncio.create_task(consume(follower, log, [None], "ids"))
            await asyncio.sleep(3.0)
            results = await example.run_workers(
                redis_url=server.url,
                base_url=emu.url,
                env=env,
                windows=[(now - timedelta(minutes=59), now - timedelta(minutes=1))],
                rate=(10, 1.0),
                page_size=1000,
                max_items=None,
            )
            await asyncio.sleep(2.0)
            await follower.aclose()
            await following
    finally:
        server.stop()
    stamp = (now - timedelta(minutes=59)).strftime("%Y-%m-%d %H:%M:%S +00:00")
    export = [r for r in emu.requests if r.body[0].get("datetime_from") == stamp]
    others = [r for r in emu.requests if r not in export]
    first, last = export[0].time, export[-1].time
    beside = [r for r in others if first - 1.0 < r.time <= last]
    assert results[0]["records"] > 15_000
    assert len(export) == results[0]["records"] // 1000 + 1
    assert {r.status_code for r in emu.requests} == {20000}
    assert results[0]["rate_limited"] == 0
    assert emu.max_calls_in_window(ID_LIST, 1.0) <= 10
    assert len(beside) > 0
    print(
        f"export: {len(export)} calls in {last - first:.3f} s beside {len(beside)} follow calls; "
        f"bound {export_bound(len(export) + len(beside), 10, 1.0):.3f} s"
    )
    assert len(log) == len(set(log))


@pytest.mark.looptime
async def test_a_client_closed_under_a_follower_ends_it_at_once() -> None:
    """Closing the client between polls: the waiting follower raises ClientClosedError in the
    same moment (not at its next poll, a minute later), and sends nothing more."""
    live = Live(start=START, seed=9)
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        await asyncio.sleep(600)
        loop = asyncio.get_running_loop()
        client = client_for(emu, live)
        follower = client.backlinks.follow_ids(START)
        task = asyncio.create_task(consume(follower, [], [None], "ids"))
        await asyncio.sleep(30)
        assert follower.next_poll is not None  # waiting between polls
        sent = len(emu.requests)
        closed = loop.time()
        await client.aclose()
        with pytest.raises(dfs_async.ClientClosedError) as caught:
            await task
        assert loop.time() == closed
        assert str(caught.value) == "the client was closed while a follower waited to poll"
        await asyncio.sleep(120)
        assert len(emu.requests) == sent
