"""The limiter: never more than `calls` per rolling `period`, full use of the quota, fair."""

from __future__ import annotations

import asyncio

import aiolimiter
import pytest

import dfs_async
from dfs_async import RateLimit
from dfs_async._ratelimit import LocalBackend, LocalLimiter, SlidingWindow


def max_in_window(stamps: list[float], period: float) -> int:
    """The most stamps in any half-open window [t, t + period)."""
    ordered = sorted(stamps)
    return max(
        (sum(1 for s in ordered if t <= s < t + period) for t in ordered),
        default=0,
    )


def test_window_allows_a_full_burst_then_waits_for_the_oldest_stamp() -> None:
    """Ten calls go at once; the eleventh waits until the first stamp is a period old."""
    window = SlidingWindow(10, 60.0)
    for _ in range(10):
        assert window.delay(0.0) == 0.0
        window.start()
        window.finish(0.5)
    assert window.delay(1.0) == pytest.approx(59.5)
    assert window.delay(60.5) == 0.0


def test_calls_in_flight_hold_slots_until_they_finish() -> None:
    """With every slot held by a call in flight, the delay is unknown (None)."""
    window = SlidingWindow(2, 60.0)
    window.start()
    window.start()
    assert window.delay(0.0) is None
    window.finish(3.0)
    assert window.delay(3.0) == pytest.approx(60.0)
    assert window.in_flight == 1


def test_stamp_is_the_reply_time_not_the_send_time() -> None:
    """A slow reply pushes the next window: the stamp is when the reply arrived."""
    window = SlidingWindow(1, 60.0)
    window.start()
    window.finish(10.0)
    assert window.delay(60.0) == pytest.approx(10.0)
    assert window.delay(70.0) == 0.0


def test_pause_blocks_a_whole_period_from_now() -> None:
    """A 40202 pauses the endpoint a full period, whatever the local count says."""
    window = SlidingWindow(10, 60.0)
    window.pause(5.0)
    assert window.delay(5.0) == pytest.approx(60.0)
    assert window.delay(64.9) == pytest.approx(0.1)
    assert window.delay(65.0) == 0.0


def test_finish_without_start_is_a_bug() -> None:
    """Releasing a slot never taken raises instead of corrupting the count."""
    with pytest.raises(RuntimeError, match="finish"):
        SlidingWindow(1, 1.0).finish(0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"calls": 0}, "calls must be a whole number of at least 1, got 0"),
        ({"calls": 1.5}, "calls must be a whole number of at least 1, got 1.5"),
        ({"period": 0}, "period must be a positive number of seconds, got 0"),
        ({"period": float("inf")}, "period must be a positive number of seconds, got inf"),
        ({"burst": 11}, "burst must be at most calls (10), got 11"),
        ({"burst": 0}, "burst must be a whole number of at least 1, got 0"),
        ({"burst": True}, "burst must be a whole number of at least 1, got True"),
        ({"period": "60"}, "period must be a positive number of seconds, got '60'"),
    ],
)
def test_rate_limit_rejects_nonsense(kwargs: dict[str, float], message: str) -> None:
    """A RateLimit that cannot work is an InvalidArgumentError saying what to pass instead."""
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        RateLimit(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


async def run_calls(limiter: LocalLimiter, count: int, latency: float) -> list[tuple[float, float]]:
    """Make `count` sequential calls of `latency` seconds; returns (send, reply) times."""
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(count):
        permit = await limiter.acquire()
        sent = loop.time()
        await asyncio.sleep(latency)
        await limiter.release(permit)
        times.append((sent, loop.time()))
    return times


@pytest.mark.looptime
async def test_25_calls_finish_at_the_optimum() -> None:
    """25 calls under 10/60 s: 10 at 0 s, 10 at 60 s, 5 at 120 s; never 11 in a window."""
    limiter = LocalLimiter(RateLimit(calls=10, period=60.0))
    times = await run_calls(limiter, 25, latency=0.0)
    sends = [sent for sent, _ in times]
    assert sends == [0.0] * 10 + [60.0] * 10 + [120.0] * 5
    assert max_in_window(sends, 60.0) == 10


@pytest.mark.looptime
async def test_latency_cannot_push_an_eleventh_call_into_a_server_window() -> None:
    """With 2 s replies, any server stamp between send and reply keeps 10 per window."""
    limiter = LocalLimiter(RateLimit(calls=10, period=60.0))
    times = await run_calls(limiter, 30, latency=2.0)
    # The worst case for us: the server stamps early calls late and late calls early.
    for split in range(len(times)):
        stamps = [reply for _, reply in times[:split]] + [sent for sent, _ in times[split:]]
        assert max_in_window(stamps, 60.0) <= 10
    # ... and the quota is still fully used: call 11 goes as soon as call 1's stamp expires.
    assert times[10][0] == pytest.approx(times[0][1] + 60.0)


@pytest.mark.looptime
async def test_aiolimiter_alone_breaks_the_contract() -> None:
    """Why the sliding log exists: AsyncLimiter(10, 60) admits 19 calls in the first minute."""
    bucket = aiolimiter.AsyncLimiter(10, 60)
    loop = asyncio.get_running_loop()
    sends = []
    for _ in range(25):
        await bucket.acquire()
        sends.append(loop.time())
    assert sum(1 for s in sends if s < 60.0) == 19
    assert max_in_window(sends, 60.0) == 19


@pytest.mark.looptime
async def test_concurrent_callers_share_one_limit_in_arrival_order() -> None:
    """30 tasks on one limiter: FIFO order, 10 per window, each released slot reused."""
    limiter = LocalLimiter(RateLimit(calls=10, period=60.0))
    loop = asyncio.get_running_loop()
    order: list[int] = []
    sends: list[float] = []

    async def call(number: int) -> None:
        permit = await limiter.acquire()
        order.append(number)
        sends.append(loop.time())
        await asyncio.sleep(1.0)
        await limiter.release(permit)

    await asyncio.gather(*(call(n) for n in range(30)))
    assert order == list(range(30))
    assert sends == [0.0] * 10 + [61.0] * 10 + [122.0] * 10
    assert max_in_window(sends, 60.0) == 10


@pytest.mark.looptime
async def test_cancelled_waiter_takes_no_slot() -> None:
    """Cancelling a caller while it waits leaves the count untouched and the queue moving."""
    limiter = LocalLimiter(RateLimit(calls=1, period=60.0))
    await limiter.release(await limiter.acquire())
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(10.0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.window.in_flight == 0
    permit = await limiter.acquire()
    assert permit.waited == pytest.approx(50.0)
    await limiter.release(permit)


@pytest.mark.looptime
async def test_pause_holds_every_waiter_for_a_period() -> None:
    """After pause(), the next call waits the whole period even with slots free."""
    limiter = LocalLimiter(RateLimit(calls=10, period=60.0))
    await asyncio.sleep(5.0)
    await limiter.pause()
    permit = await limiter.acquire()
    assert permit.waited == pytest.approx(60.0)
    await limiter.release(permit)


@pytest.mark.looptime
async def test_burst_smooths_with_aiolimiter_under_the_same_cap() -> None:
    """burst=2 lets 2 go at once, then one every 6 s, never over 10 per minute."""
    limiter = LocalLimiter(RateLimit(calls=10, period=60.0, burst=2))
    times = await run_calls(limiter, 12, latency=0.0)
    sends = [sent for sent, _ in times]
    assert sends[:2] == [0.0, 0.0]
    assert sends[2:5] == pytest.approx([6.0, 12.0, 18.0], abs=0.01)
    assert max_in_window(sends, 60.0) <= 10


async def test_local_backend_gives_one_limiter_per_key() -> None:
    """The same key and rate get the same limiter; another key another one; another rate for
    a key in use is refused (tests/test_quota_sharing.py has the rest)."""
    backend = LocalBackend()
    rate = RateLimit()
    first = backend.limiter("a:/v3/backlinks/id_list", rate)
    assert backend.limiter("a:/v3/backlinks/id_list", rate) is first
    assert backend.limiter("a:/v3/backlinks/errors", rate) is not first
    assert backend.limiter("b:/v3/backlinks/id_list", rate) is not first
    with pytest.raises(dfs_async.InvalidArgumentError, match="already limited at"):
        backend.limiter("a:/v3/backlinks/id_list", RateLimit(calls=5))


async def test_clients_of_one_account_share_the_default_limiter() -> None:
    """Two clients with one login in one process share a limiter: 10 a minute together."""
    async with (
        dfs_async.Client("same@example.com", "pw") as one,
        dfs_async.Client("same@example.com", "pw") as two,
        dfs_async.Client("other@example.com", "pw") as three,
    ):
        path = "/v3/backlinks/id_list"
        assert one._limiter(path) is two._limiter(path)
        assert one._limiter(path) is not three._limiter(path)
