"""One account, one quota: clients of one login in one process never split its rate limit."""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import dfs_async
from dfs_async import RateLimit
from dfs_async._ratelimit import LocalBackend, SlidingWindow
from dfs_async.testing import Emulator

UTC = timezone.utc
LOGIN = "quota@example.com"
PASSWORD = "Quota-Pa55word"
ID_LIST = "/v3/backlinks/id_list"
KEY = f"{LOGIN}:{ID_LIST}"
BURST_5 = RateLimit(burst=5)

REFUSAL = (
    "/v3/backlinks/id_list is already limited at RateLimit(calls=10, period=60.0, burst=None) "
    "by another client of this account in this process, not RateLimit(calls=10, period=60.0, "
    "burst=5): every client of one account must use the same RateLimit (or close the other "
    "client first)"
)


def since(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def client_for(emu: Emulator, **kwargs: Any) -> dfs_async.Client:
    kwargs.setdefault("retry", dfs_async.Retry(initial=0.01, maximum=0.05))
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, **kwargs)


async def drain(client: dfs_async.Client, pages: int) -> int:
    """Stream `pages` pages of 100 records; how many records came."""
    pager = client.backlinks.id_list(since(170), page_size=100, max_items=pages * 100)
    async with pager:
        return len([task async for task in pager])


# -- over HTTP, on the virtual clock -------------------------------------------------------------


@pytest.mark.looptime
async def test_a_second_rate_limit_for_one_account_is_refused_before_any_call() -> None:
    """A burst=5 client beside a default one: InvalidArgumentError, no call; the account
    stays at 10 calls per 60 s with no refusal from the server."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2500, rate_limit=(10, 60.0)) as emu,
        client_for(emu) as one,
        client_for(emu, rate_limit=BURST_5) as two,
    ):
        pager = one.backlinks.id_list(since(170), page_size=100, max_items=1500)
        async with pager:
            first = [await anext(pager)]
            with pytest.raises(dfs_async.InvalidArgumentError) as caught:
                await drain(two, 15)
            assert len(emu.requests) == 1  # the refused client sent nothing
            rest = [task async for task in pager]
    assert str(caught.value) == REFUSAL
    assert len(first) + len(rest) == 1500
    assert len(emu.requests) == 15
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10
    assert one.stats.rate_limited == 0


@pytest.mark.looptime
async def test_a_closed_clients_calls_still_count_under_the_next_rate_limit() -> None:
    """Closed after 10 calls, a default client no longer blocks a burst=5 one, whose first call
    waits until the first of those 10 has left the window: 0 refusals, 10 per 60 s."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, rate_limit=(10, 60.0)) as emu:
        loop = asyncio.get_running_loop()
        async with client_for(emu) as one:
            assert await drain(one, 10) == 1000
        closed_at = loop.time()
        async with client_for(emu, rate_limit=BURST_5) as two:
            assert await drain(two, 5) == 500
    assert len(emu.requests) == 15
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10
    assert emu.requests[10].time - emu.requests[0].time >= 60.0
    assert closed_at - emu.requests[0].time < 1.0
    assert two.stats.rate_limited == 0
    assert one.closed  # still referenced, but closed: it holds no limiter any more


@pytest.mark.looptime
async def test_two_clients_with_one_rate_limit_share_it() -> None:
    """Two clients of one login, same RateLimit, streaming at once: 10 per 60 s, 0 refusals."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2500, rate_limit=(10, 60.0)) as emu,
        client_for(emu) as one,
        client_for(emu) as two,
    ):
        counts = await asyncio.gather(drain(one, 12), drain(two, 12))
    assert list(counts) == [1200, 1200]
    assert len(emu.requests) == 24
    assert {r.status_code for r in emu.requests} == {20000}
    assert emu.max_calls_in_window(ID_LIST, 60.0) == 10


# -- the backend's registry ----------------------------------------------------------------------


@pytest.mark.looptime
async def test_the_refusal_lasts_only_while_the_other_limiter_is_held() -> None:
    """Another RateLimit is refused while a limiter with the first is alive; once nobody holds
    it, the new setting gets a limiter that starts from the old one's stamps and pause."""
    backend = LocalBackend()
    held = backend.limiter(KEY, RateLimit())
    assert backend.limiter(KEY, RateLimit()) is held
    permit = await held.acquire()
    await held.release(permit)
    await held.pause()
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        backend.limiter(KEY, BURST_5)
    assert str(caught.value) == REFUSAL
    # Another endpoint or another login is another quota.
    assert backend.limiter(f"{LOGIN}:/v3/backlinks/errors", BURST_5) is not held
    assert backend.limiter(f"other@example.com:{ID_LIST}", BURST_5) is not held
    stamps = held.window.stamps(asyncio.get_running_loop().time())
    del held, permit
    gc.collect()
    successor = backend.limiter(KEY, BURST_5)
    now = asyncio.get_running_loop().time()
    assert successor.rate == BURST_5
    assert successor.window.stamps(now) == stamps
    assert successor.window.delay(now) == 60.0


def test_a_handover_keeps_the_stamps_within_the_new_period_and_the_pause() -> None:
    """A window handed to another setting keeps the stamps still inside the new period and
    the pause, and nothing in flight (nobody holds the old limiter, so none can be)."""
    window = SlidingWindow(10, 60.0)
    for stamp in (1.0, 25.0, 45.0):
        window.start()
        window.finish(stamp)
    window.pause(45.0)
    shorter = window.handover(calls=2, period=30.0, now=50.0)
    assert (shorter.calls, shorter.period) == (2, 30.0)
    assert shorter.stamps(50.0) == [25.0, 45.0]
    assert shorter.in_flight == 0
    assert shorter.delay(50.0) == pytest.approx(55.0)  # the pause: 45 + 60
    assert shorter.delay(105.0) == 0.0
