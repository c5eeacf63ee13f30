"""The shared limiter: one quota for many workers, through a real redis-server on 127.0.0.1."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import dfs_async
from dfs_async import RateLimit, RedisBackend, RedisBackendError, RedisUnavailableError
from dfs_async._redis._connection import redact_url
from dfs_async._redis._limiter import RedisLimiter
from dfs_async._redis._scripts import Decision, Verdict, limiter_keys, parse_decision
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "shared@example.com"
PASSWORD = "Pa55-w0rd-for-the-emulator"
PATH = "/v3/backlinks/id_list"
KEY = f"{LOGIN}:{PATH}"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "redis_workers.py"

#: These tests run on the real clock (Redis's TIME cannot be faked), so a sleeper may wake late
#: on a busy machine: CI has seen a quarter of a second. The exact claim of each timing test is
#: its lower bound; its upper bound allows this much lateness, and the periods are chosen so
#: that the wrong behaviour it guards against lies further off than that.
LATE = 0.5


# -- a real redis-server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def real_clock_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without libfaketime: the preload and its FAKETIME* settings.

    CI runs this suite under libfaketime at chosen dates (.ci/run), and every child inherits it;
    redis-server aborts under it (libfaketime's clock_gettime recursion check), so it runs on the
    real clock. The limiter reads only Redis's own TIME, and only as differences, so a server
    clock apart from ours is the case it is built for (hosts whose clocks disagree).
    """
    env = {name: value for name, value in environ.items() if not name.startswith("FAKETIME")}
    preload = [
        library
        for library in env.pop("LD_PRELOAD", "").replace(":", " ").split()
        if "libfaketime" not in library
    ]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    return env


class RedisServer:
    """One redis-server process on a fixed loopback port, without persistence."""

    def __init__(self, binary: str, port: int, directory: Path | None = None) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        if self.directory is not None:
            # Snapshots only on SAVE, into that directory; loaded again on start.
            command += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            env=real_clock_environment(os.environ),
        )
        deadline = time.monotonic() + 10.0
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last snapshot."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Makes (unstarted) redis-servers; stops them all at teardown."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; the shared-limiter tests need it in CI")
        pytest.skip("redis-server is not installed")
    servers: list[RedisServer] = []

    def make(port: int, directory: Path | None = None) -> RedisServer:
        server = RedisServer(binary, port, directory)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisServer]) -> RedisServer:
    server = redis_factory(free_port())
    server.start()
    return server


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=5, rate_limit=(10, 1.0)) as emu:
        yield emu


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redis_workers", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def windows(count: int, days: float = 30.0) -> list[tuple[datetime, datetime]]:
    """`count` consecutive windows of `days`, the newest ending a day ago."""
    end = datetime.now(UTC) - timedelta(days=1)
    return [
        (end - timedelta(days=days * (i + 1)), end - timedelta(days=days * i))
        for i in reversed(range(count))
    ]


def client(emu: Emulator, shared: RedisBackend, rate: RateLimit, **kwargs: Any) -> dfs_async.Client:
    return dfs_async.Client(
        LOGIN,
        PASSWORD,
        base_url=emu.url,
        rate_limit=rate,
        limiter=shared,
        retry=dfs_async.Retry(initial=0.01, maximum=0.05),
        **kwargs,
    )


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds, polling every millisecond (neither the emulator nor Redis
    has an event to wait on); fail after `timeout` seconds instead of hanging."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        holds = condition()
        if holds if isinstance(holds, bool) else await holds:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"still waiting after {timeout:g} s")
        await asyncio.sleep(0.001)


async def stream(
    client: dfs_async.Client, window: tuple[datetime, datetime], pages: int, page_size: int = 10
) -> int:
    """Stream `pages` pages of id_list over `window`; how many records came."""
    pager = client.backlinks.id_list(*window, page_size=page_size, max_items=pages * page_size)
    async with pager:
        return len([task async for task in pager])


# -- the contract across processes ---------------------------------------------------------------


async def test_four_worker_processes_share_one_quota_at_full_speed(
    redis_server: RedisServer, emulator: Emulator
) -> None:
    """4 processes on 10/1 s: never refused, never 11 in a second, none starved.

    How near the optimum they end is a speed, measured in benchmarks/quota.py.
    """
    example = load_example()
    env = {**os.environ, "DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
    results = await example.run_workers(
        redis_url=redis_server.url,
        base_url=emulator.url,
        env=env,
        windows=windows(4),
        rate=(10, 1.0),
        page_size=10,
        max_items=120,
    )

    assert [r["records"] for r in results] == [120] * 4
    most = emulator.max_calls_in_window(PATH, 1.0)
    span = emulator.requests[-1].time - emulator.requests[0].time
    optimum = example.optimum_span(48, 10, 1.0)
    # Each worker's requests carry its own datetime_from; no worker waits more than about a
    # period for its next call (FIFO tickets), whoever else is asking.
    by_worker: dict[str, list[float]] = {}
    for request in emulator.requests:
        by_worker.setdefault(request.body[0]["datetime_from"], []).append(request.time)
    longest = max(b - a for times in by_worker.values() for a, b in itertools.pairwise(times))
    refused = sum(1 for r in emulator.requests if r.status_code != 20000)
    # The tight figures are printed; the guarantees below hold exactly on a loaded machine.
    print(
        f"4 worker processes, 48 calls at 10/1 s: span {span:.3f} s, optimum {optimum:.3f} s "
        f"({span / optimum - 1:+.1%}), rejections {refused}, most in any 1 s window {most}, "
        f"longest wait between one worker's calls {longest:.3f} s, seconds waited per worker "
        f"{[r['seconds_waited'] for r in results]}"
    )
    assert refused == 0
    assert [r["rate_limited"] for r in results] == [0] * 4
    assert len(emulator.requests) == 48
    assert most <= 10
    assert span >= optimum
    # FIFO tickets: no worker waits much over a period (a starved one would wait seconds).
    assert longest <= 1.0 + 2 * LATE


async def test_stream_survives_a_redis_restart_without_going_over(
    redis_server: RedisServer, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis restarted (history lost) right after a full burst: no refusal, no 11 in a second."""
    rate = RateLimit(calls=10, period=1.0)
    spans = windows(3)

    # A lost history pauses the key for max(period, lease): a short lease (above the timeout).
    async with (
        RedisBackend(redis_server.url, lease=1.0) as one,
        RedisBackend(redis_server.url, lease=1.0) as two,
        client(emulator, one, rate, timeout=0.9) as first,
        client(emulator, two, rate, timeout=0.9) as second,
    ):
        streams = [
            asyncio.ensure_future(stream(first, spans[0], 12)),
            asyncio.ensure_future(stream(second, spans[1], 12)),
        ]
        await until(lambda: sum(1 for r in emulator.requests if r.accepted) >= 10)
        await asyncio.to_thread(redis_server.restart)
        # A stream starting now asks at once: the emptied history must not let it through.
        streams.append(asyncio.ensure_future(stream(first, spans[2], 4)))
        counts = await asyncio.gather(*streams)

    assert list(counts) == [120, 120, 40]
    assert [r.status_code for r in emulator.requests] == [20000] * 28
    assert emulator.max_calls_in_window(PATH, 1.0) <= 10
    assert "lost the rate limit's history" in caplog.text


async def test_a_killed_workers_slot_expires_with_its_lease(redis_server: RedisServer) -> None:
    """SIGKILL mid-call: its slot counts until its lease ends, then the others get it back."""
    # Real time (Redis's clock): a 1 s period keeps "two together" (gap ~0) and "one per
    # period" (gap ~1 s) far apart on a loaded machine.
    rate = RateLimit(calls=2, period=1.0)
    spans = windows(2)
    keys = limiter_keys("dfs-async", KEY)
    example = load_example()
    # The Redis URL goes in the environment: a command line is visible to every user (ps).
    env = {
        **os.environ,
        "DATAFORSEO_LOGIN": LOGIN,
        "DATAFORSEO_PASSWORD": PASSWORD,
        example.REDIS_URL_ENV: redis_server.url,
    }
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=5, rate_limit=(2, 1.0)) as emulator,
        RedisBackend(redis_server.url, lease=1.0) as shared,
    ):
        # The doomed worker's second call hangs, so it dies holding that call's slot.
        emulator.inject(2, Fault.delay(30.0))
        command = [
            *(sys.executable, str(EXAMPLE), "worker"),
            *("--base-url", emulator.url, "--rate", "2/1", "--page-size", "10"),
            *("--from", spans[0][0].isoformat(), "--to", spans[0][1].isoformat()),
            *("--lease", "1", "--timeout", "0.8"),
        ]
        doomed = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, env=env
        )
        try:
            await until(lambda: len(emulator.requests) >= 2)
            held = await shared.redis.zrange(keys.flight, 0, -1, withscores=True)
            doomed.send_signal(signal.SIGKILL)
        finally:
            await doomed.wait()
        assert len(held) == 1
        token = held[0][0]

        async with client(emulator, shared, rate) as other:
            assert await stream(other, spans[1], 6) == 60
        assert await shared.redis.zscore(keys.flight, token) is None

    others = [r for r in emulator.requests if r.number > 2]
    assert [r.status_code for r in others] == [20000] * 6
    assert emulator.max_calls_in_window(PATH, 1.0) <= 2
    # With the dead call's slot held for good, the others would get one call per period;
    # once its stamp (the lease end) has left the window, two calls go together again.
    gaps = [b.time - a.time for a, b in itertools.pairwise(others)]
    print(f"gaps between the other worker's calls: {[round(g, 3) for g in gaps]}")
    assert min(gaps) < 0.5


async def test_a_refusal_seen_by_one_worker_pauses_every_worker_for_a_period(
    redis_server: RedisServer, emulator: Emulator
) -> None:
    """A 40202 to one worker holds the others too: nothing arrives until a period after it."""
    rate = RateLimit(calls=10, period=1.0)
    spans = windows(2)
    emulator.inject(1, Fault.rate_limited())
    keys = limiter_keys("dfs-async", KEY)

    async def paused(backend: RedisBackend) -> bool:
        return bool(await backend.redis.exists(keys.pause))

    async with (
        RedisBackend(redis_server.url) as one,
        RedisBackend(redis_server.url) as two,
        client(emulator, one, rate) as refused,
        client(emulator, two, rate) as other,
    ):
        first = asyncio.ensure_future(stream(refused, spans[0], 3))
        await until(lambda: paused(two))
        # The other worker starts only now, so it can learn of the pause only through Redis.
        counts = await asyncio.gather(first, stream(other, spans[1], 3))
        assert (refused.stats.rate_limited, other.stats.rate_limited) == (1, 0)

    assert list(counts) == [30, 30]
    assert [r.status_code for r in emulator.requests] == [40202] + [20000] * 6
    refusal = emulator.requests[0].time
    gaps = [r.time - refusal for r in emulator.requests[1:]]
    print(f"after the refusal, calls came {min(gaps):.4f} s later at the earliest")
    assert min(gaps) >= 0.995


# -- Redis unreachable -------------------------------------------------------------------------


async def test_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    """An unreachable Redis is a RedisUnavailableError naming the URL, never its password."""
    port = free_port()
    async with (
        RedisBackend(f"redis://:hunter2@127.0.0.1:{port}/0", retry_for=0.2) as shared,
        dfs_async.Client(LOGIN, PASSWORD, base_url="http://127.0.0.1:9", limiter=shared) as c,
    ):
        with pytest.raises(RedisUnavailableError) as caught:
            await stream(c, windows(1)[0], 1)
    assert str(caught.value) == (
        f"Redis at redis://:***@127.0.0.1:{port}/0 is unreachable (ConnectionError, tried for "
        "0.2 s); pass fallback=True to RedisBackend to fall back to a per-process rate limit"
    )
    assert isinstance(caught.value, dfs_async.DataForSEOError)
    assert caught.value.url == f"redis://:***@127.0.0.1:{port}/0"
    assert "hunter2" not in repr(caught.value) + repr(shared)
    assert c.stats.calls == 0


async def test_fallback_warns_and_still_limits_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """fallback=True: a RuntimeWarning and a log line, then the in-process limit, never none."""
    port = free_port()
    loop = asyncio.get_running_loop()
    async with RedisBackend(
        f"redis://127.0.0.1:{port}/0", fallback=True, retry_for=0.05, reconnect_after=60.0
    ) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=2, period=2.0))
        message = (
            f"Redis at redis://127.0.0.1:{port}/0 is unreachable (ConnectionError); the rate "
            f"limit of {PATH} now counts this process's calls only, until Redis is back "
            "(tried again every 60 s)"
        )
        with pytest.warns(RuntimeWarning) as warned:
            permit = await limiter.acquire()
        assert [str(w.message) for w in warned] == [message]
        assert message in caplog.text
        assert limiter.falling_back
        sends = [loop.time()]
        await limiter.release(permit)
        for _ in range(2):
            permit = await limiter.acquire()
            sends.append(loop.time())
            await limiter.release(permit)
    assert sends[1] - sends[0] < LATE
    assert sends[2] - sends[0] >= 2.0


async def test_fallback_goes_back_to_redis_and_carries_its_calls_over(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """After reconnect_after, a reachable Redis is used again and learns the fallback's calls."""
    server = redis_factory(free_port())
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(
        server.url, fallback=True, retry_for=0.05, reconnect_after=0.2
    ) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=3, period=5.0))
        with pytest.warns(RuntimeWarning):
            done = await limiter.acquire()
        out = await limiter.acquire()
        await limiter.release(done)
        await asyncio.to_thread(server.start)
        await asyncio.sleep(0.2)
        shared_permit = await limiter.acquire()
        assert not limiter.falling_back
        assert shared_permit.token is not None
        assert not shared_permit.token.startswith("local:")
        assert out.token is not None
        assert await shared.redis.zcard(keys.done) == 1
        assert await shared.redis.zrange(keys.flight, 0, -1) == sorted(
            [out.token.encode(), shared_permit.token.encode()]
        )
        # The quota of 3 is used up by the carried-over calls and this one.
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.1)
        assert not waiter.done()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await limiter.release(out)
        await limiter.release(shared_permit)
        assert await shared.redis.zcard(keys.flight) == 0
        assert await shared.redis.zcard(keys.done) == 3


# -- the scripts, one worker at a time -----------------------------------------------------------


async def stamp_of(shared: RedisBackend, token: str | None) -> float:
    """A finished call's stamp (its reply), in seconds on Redis's clock."""
    score = await shared.redis.zscore(limiter_keys("dfs-async", KEY).done, token or "")
    assert score is not None
    return float(score) / 1e6


async def grant_of(shared: RedisBackend, token: str | None) -> float:
    """When a call in flight was granted, in seconds on Redis's clock (its entry ends a lease
    later). Redis's clock, not ours: a bound between two of its stamps is exact, where one
    between our reads of the loop's clock would carry the round trips' lateness."""
    score = await shared.redis.zscore(limiter_keys("dfs-async", KEY).flight, token or "")
    assert score is not None
    return float(score) / 1e6 - shared.lease


async def test_a_full_burst_after_idle_then_a_wait_for_the_oldest_stamp(
    redis_server: RedisServer,
) -> None:
    """3 calls go at once (no wait counted); the 4th starts a period after the 1st's stamp."""
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=3, period=0.4))
        permits, granted, stamps = [], [], []
        for _ in range(4):
            permit = await limiter.acquire()
            granted.append(await grant_of(shared, permit.token))
            await limiter.release(permit)
            stamps.append(await stamp_of(shared, permit.token))  # gone once out of the window
            permits.append(permit)
    assert [p.waited for p in permits[:3]] == [0.0, 0.0, 0.0]
    # The 4th was granted once the first stamp was a period old, and it says it waited.
    assert granted[3] - stamps[0] >= 0.4
    assert 0.0 < permits[3].waited <= 0.4 + LATE


async def test_a_smaller_burst_spreads_calls_in_each_process(redis_server: RedisServer) -> None:
    """burst=1 of 4 per 2 s: the shared log allows 4 at once, smoothing sends one per 0.5 s."""
    # Real time (Redis's clock cannot be faked), so the spacing is wide enough that a loaded
    # machine's scheduling noise (tens of ms) cannot be mistaken for it or hide it.
    loop = asyncio.get_running_loop()
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=4, period=2.0, burst=1))
        sends = []
        for _ in range(3):
            permit = await limiter.acquire()
            sends.append(loop.time())
            await limiter.release(permit)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert len(gaps) == 2
    assert all(0.45 <= gap <= 0.5 + LATE for gap in gaps), gaps


async def test_a_call_in_flight_holds_its_slot_until_a_period_after_its_reply(
    redis_server: RedisServer,
) -> None:
    """With every slot in flight, the next call starts a period after the reply, not the send."""
    loop = asyncio.get_running_loop()
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=1, period=0.3))
        permit = await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.2)
        await limiter.release(permit)
        replied = loop.time()
        reply = await stamp_of(shared, permit.token)  # gone once out of the window
        second = await waiter
        started = loop.time()
        granted = await grant_of(shared, second.token)
        await limiter.release(second)
    # Exact on Redis's clock: a period after the reply (the send was 0.2 s before it).
    assert granted - reply >= 0.3
    assert started - replied <= 0.3 + LATE


async def test_a_dead_calls_lease_ends_as_a_stamp_at_the_lease_end(
    redis_server: RedisServer,
) -> None:
    """A never-released call holds its slot until its lease ends, then counts as replied then."""
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(redis_server.url, lease=0.2) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=1, period=0.3))
        lost = await limiter.acquire()  # its worker "dies": never released
        raw: Any = await shared.redis.zrange(keys.flight, 0, -1, withscores=True)
        held = [(bytes(token), float(score)) for token, score in raw]
        assert [token for token, _ in held] == [(lost.token or "").encode()]
        token, lease_end = held[0]
        # A waiter asks at once (the slot is in flight: it sleeps a period, asks again after the
        # lease ended, and is told to wait for the stamp at the lease end to leave the window).
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.4)
        assert await shared.redis.zscore(keys.flight, token) is None
        assert await shared.redis.zscore(keys.done, token) == lease_end
        assert not waiter.done()
        permit = await waiter
        seconds, micros = await shared.redis.time()
        assert seconds * 1_000_000 + micros >= lease_end + 300_000
        await limiter.release(permit)


async def test_cancelled_while_waiting_holds_no_slot_and_leaves_the_queue(
    redis_server: RedisServer,
) -> None:
    """A waiter cancelled mid-wait leaves no ticket and no slot behind."""
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=1, period=0.2))
        await limiter.release(await limiter.acquire())
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        assert await shared.redis.zcard(keys.queue) == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await shared.redis.zcard(keys.queue) == 0
        assert await shared.redis.zcard(keys.alive) == 0
        assert await shared.redis.zcard(keys.flight) == 0
        await limiter.release(await limiter.acquire())


async def test_waiters_are_served_first_come_first_served(redis_server: RedisServer) -> None:
    """Waiters from separate workers get slots in the order they asked."""
    rate = RateLimit(calls=1, period=0.1)
    backends = [RedisBackend(redis_server.url) for _ in range(4)]
    try:
        limiters = [b.limiter(KEY, rate) for b in backends]
        holder = await limiters[0].acquire()
        served: list[int] = []

        async def wait_turn(number: int) -> None:
            permit = await limiters[number].acquire()
            served.append(number)
            await limiters[number].release(permit)

        waiters = []
        for number in (3, 1, 2, 0):
            waiters.append(asyncio.ensure_future(wait_turn(number)))
            await asyncio.sleep(0.02)  # each asks only once the one before is queued
        await limiters[0].release(holder)
        await asyncio.gather(*waiters)
    finally:
        for backend in backends:
            await backend.aclose()
    assert served == [3, 1, 2, 0]


async def test_four_competing_workers_get_equal_shares(redis_server: RedisServer) -> None:
    """4 workers asking as fast as they can each get a quarter of the calls, give or take one."""
    rate = RateLimit(calls=4, period=0.2)
    backends = [RedisBackend(redis_server.url) for _ in range(4)]
    counts = [0, 0, 0, 0]
    loop = asyncio.get_running_loop()
    stop = loop.time() + 1.0

    async def work(number: int) -> None:
        limiter = backends[number].limiter(KEY, rate)
        while loop.time() < stop:
            permit = await limiter.acquire()
            counts[number] += 1
            await limiter.release(permit)

    try:
        await asyncio.gather(*(work(number) for number in range(4)))
    finally:
        for backend in backends:
            await backend.aclose()
    print(f"calls per worker in 1 s at 4 per 0.2 s: {counts}")
    assert max(counts) - min(counts) <= 1
    assert sum(counts) >= 20


# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:hunter2@[::1]:6380/2", "rediss://app:***@[::1]:6380/2"),
        ("redis://app@cache/0", "redis://***@cache/0"),
        ("redis://:pa/ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://:pa?ss@cache/0", "redis://:***@cache/0"),
        ("redis://:pa#ss@cache/0", "redis://:***@cache/0"),
        ("redis://:p@ss@cache/0", "redis://:***@cache/0"),
        ("redis://app:pw@cache/0?password=x#frag", "redis://app:***@cache/0?password=***"),
        ("redis://:pw@cache/0?password", "redis://:***@cache/0?password"),
        (
            "unix:///run/redis.sock?db=1&password=hunter2",
            "unix:///run/redis.sock?db=1&password=***",
        ),
        ("redis://localhost", "redis://localhost"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    """The user part (but a user name before ':') and query passwords become ***, even with
    unencoded '/', '?', '#' or '@' in them; the rest stays readable."""
    assert redact_url(url) == shown


def test_keys_hide_the_login_and_share_one_hash_tag() -> None:
    """The login never appears in a key; every key of a limiter has the same cluster hash tag."""
    keys = limiter_keys("app", "someone@example.com:/v3/backlinks/id_list")
    names = keys.acquire
    assert all("someone" not in name and name.startswith("app:{") for name in names)
    assert len({name.split("}")[0] for name in names}) == 1
    assert keys == limiter_keys("app", "someone@example.com:/v3/backlinks/id_list")
    assert keys != limiter_keys("app", "someone@example.com:/v3/backlinks/errors")


def test_decision_parses_the_script_reply_and_refuses_anything_else() -> None:
    """[kind, µs, order, epoch, lost] becomes a Decision in seconds; other shapes are a bug."""
    assert parse_decision([1, 250_000, 17, b"ab", 0, 9]) == Decision(
        kind=Verdict.STAMP, wait=0.25, order=17, epoch="ab", lost=False, writes=9
    )
    with pytest.raises(TypeError, match="unexpected reply from the acquire script"):
        parse_decision([1, 2, 3])
    with pytest.raises(TypeError, match="unexpected reply from the acquire script"):
        parse_decision([7, 250_000, 17, b"ab", 0, 9])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": ""}, "prefix must be a non-empty string without braces, got ''"),
        ({"prefix": "a{b}"}, "prefix must be a non-empty string without braces, got 'a{b}'"),
        ({"lease": 0}, "lease must be a positive number of seconds, got 0"),
        ({"retry_for": -1}, "retry_for must be a number of seconds, at least 0, got -1"),
        (
            {"reconnect_after": float("nan")},
            "reconnect_after must be a positive number of seconds, got nan",
        ),
        (
            {"socket_timeout": float("inf")},
            "socket_timeout must be a positive number of seconds, got inf",
        ),
        ({"fallback": "no"}, "fallback must be True or False, got 'no'"),
        ({"fallback": 1}, "fallback must be True or False, got 1"),
        (
            {"url": b"redis://localhost/0"},
            "url must be a string such as 'redis://host:6379/0', got bytes",
        ),
    ],
)
def test_backend_rejects_nonsense(kwargs: dict[str, Any], message: str) -> None:
    """Settings that cannot work are an InvalidArgumentError saying what to pass instead."""
    kwargs.setdefault("url", "redis://localhost/0")
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        RedisBackend(**kwargs)
    assert str(caught.value) == message


def test_a_bad_url_is_refused_without_its_password() -> None:
    """A URL redis-py cannot use is an InvalidArgumentError that shows it redacted."""
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        RedisBackend("http://:hunter2@cache/0")
    assert str(caught.value) == (
        "not a usable Redis URL: http://:***@cache/0 (it must start with redis://, rediss:// "
        "or unix://)"
    )
    # An unencoded '/' makes redis-py read part of the password as the database number; its
    # reason would quote it, so it is not repeated.
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        RedisBackend("redis://:hun/ter2@cache:6379/0")
    assert str(caught.value) == (
        "not a usable Redis URL: redis://:***@cache:6379/0 (check the host, port and database; "
        "characters such as '@', ':', '/', '?' or '#' in a user name or password must be "
        "percent-encoded, e.g. with urllib.parse.quote(password, safe=''))"
    )
    assert "ter2" not in repr(caught.value)


def test_importing_the_module_does_not_need_redis() -> None:
    """dfs_async (and every room of the backend) import without loading redis-py."""
    rooms = ", ".join(f"dfs_async._redis.{room}" for room in ROOMS)
    code = f"import sys, dfs_async, {rooms}; print('redis' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"


ROOMS = ("_backend", "_connection", "_fallback", "_limiter", "_scripts")
PACKAGE = Path(dfs_async.__file__).resolve().parent


def _imports(path: Path, package: str) -> set[str]:
    """The dfs_async modules `path` imports, TYPE_CHECKING blocks included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package if node.level <= 1 else package.rpartition(".")[0]
            module = node.module or ""
            target = f"{base}.{module}".rstrip(".") if node.level else module
            for alias in node.names:
                inner = f"{target}.{alias.name}"
                found.add(inner if _module_path(inner) else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("dfs_async") and _module_path(name)}


def _module_path(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / relative / "__init__.py", PACKAGE / f"{relative}.py"):
        if candidate.is_file():
            return candidate
    return None


def test_the_backends_rooms_import_no_circle_and_stay_small() -> None:
    """From dfs_async._redis, no module imports back into one that imports it (TYPE_CHECKING
    included), no client module is reached, and no room is over 500 lines."""
    graph: dict[str, set[str]] = {}
    todo = ["dfs_async._redis"]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        path = _module_path(name)
        assert path is not None
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(path, package) - {name}
        todo.extend(graph[name])
    assert set(graph) == {
        "dfs_async._redis",
        *(f"dfs_async._redis.{room}" for room in ROOMS),
        "dfs_async._checks",
        "dfs_async._errors",
        "dfs_async._ratelimit",
        "dfs_async._retry",
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            step == goal or (step not in seen and reaches(step, goal, seen | {step}))
            for step in graph[start]
        )

    assert [name for name in graph if reaches(name, name, set())] == []
    sizes = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in (PACKAGE / "_redis").iterdir()
        if path.suffix in (".py", ".lua")
    }
    assert max(sizes.values()) <= 500, sizes


async def test_one_limiter_per_key_and_none_once_closed() -> None:
    """One limiter per key; another rate for it is refused; closed, nothing is handed out."""
    async with RedisBackend("redis://localhost/0") as shared:
        first = shared.limiter(KEY, RateLimit())
        assert shared.limiter(KEY, RateLimit()) is first
        assert isinstance(first, RedisLimiter)
        with pytest.raises(dfs_async.InvalidArgumentError) as caught:
            shared.limiter(KEY, RateLimit(calls=20))
        assert str(caught.value) == (
            f"{PATH} is already limited at RateLimit(calls=10, period=60.0, burst=None) through "
            "this RedisBackend, not RateLimit(calls=20, period=60.0, burst=None): every client "
            "and worker sharing an account must use the same RateLimit"
        )
    with pytest.raises(dfs_async.ClientClosedError, match="the RedisBackend is closed"):
        shared.limiter(KEY, RateLimit())
    with pytest.raises(dfs_async.ClientClosedError, match="the RedisBackend is closed"):
        await first.acquire()


# -- lost history, races, refusals (each failed before its fix) ----------------------------------


async def test_a_lost_history_pauses_until_every_call_in_flight_has_replied(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """History lost with a call in flight: the pause lasts max(period, lease), not a period."""
    rate = RateLimit(calls=1, period=0.2)
    loop = asyncio.get_running_loop()
    async with (
        RedisBackend(redis_server.url, lease=0.8) as one,
        RedisBackend(redis_server.url, lease=0.8) as two,
    ):
        slow, other = one.limiter(KEY, rate), two.limiter(KEY, rate)
        await other.release(await other.acquire())  # `other` knows the history
        await asyncio.sleep(0.25)
        in_flight = await slow.acquire()  # a slow call: its reply may come up to a lease later
        await asyncio.to_thread(redis_server.restart)
        lost = loop.time()
        permit = await other.acquire()
        waited = loop.time() - lost
        await slow.release(in_flight)
        await other.release(permit)
    assert "lost the rate limit's history" in caplog.text
    assert 0.75 <= waited <= 0.8 + LATE


async def test_a_history_restored_from_an_older_snapshot_is_noticed(
    redis_factory: Callable[..., RedisServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart from a snapshot missing recent stamps (same epoch) pauses like a lost one."""
    server = redis_factory(free_port(), tmp_path)
    server.start()
    loop = asyncio.get_running_loop()
    async with RedisBackend(server.url, lease=0.5) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=3, period=1.0))
        await limiter.release(await limiter.acquire())
        await shared.redis.save()  # the snapshot has the epoch and one stamp
        for _ in range(2):
            await limiter.release(await limiter.acquire())
        await asyncio.to_thread(server.crash)
        await asyncio.to_thread(server.start)
        restored = loop.time()
        # The snapshot's window has room for 2: without noticing, these would go at once.
        permit = await limiter.acquire()
        waited = loop.time() - restored
        await limiter.release(permit)
    assert "lost the rate limit's history" in caplog.text
    assert 0.95 <= waited <= 1.0 + LATE


async def test_fallback_starts_from_this_processs_recent_calls(redis_server: RedisServer) -> None:
    """Falling back right after a full quota (2 replied, 1 in flight), the in-process limit
    still counts those calls: the next one waits."""
    async with RedisBackend(redis_server.url, fallback=True, retry_for=0.05) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=3, period=5.0))
        for _ in range(2):
            await limiter.release(await limiter.acquire())
        in_flight = await limiter.acquire()
        await asyncio.to_thread(redis_server.stop)
        waiter = asyncio.ensure_future(limiter.acquire())
        with pytest.warns(RuntimeWarning):
            await asyncio.sleep(0.3)
        assert limiter.falling_back
        assert not waiter.done()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await limiter.release(in_flight)


async def test_a_call_released_while_it_is_carried_over_holds_no_slot(
    redis_factory: Callable[..., RedisServer],
) -> None:
    """Released while the carry-over naming it is on its way: Redis still gets its release."""
    server = redis_factory(free_port())
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(
        server.url, fallback=True, retry_for=0.05, reconnect_after=0.2
    ) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=3, period=5.0))
        with pytest.warns(RuntimeWarning):
            out = await limiter.acquire()
        await asyncio.to_thread(server.start)
        await asyncio.sleep(0.2)
        async with RedisBackend(server.url) as control:
            # Redis holds every command for 0.3 s, so the release is sent while the acquire
            # that carries the call over waits for its reply.
            await control.redis.client_pause(300)
            carrying = asyncio.ensure_future(limiter.acquire())
            await asyncio.sleep(0.05)
            await limiter.release(out)
            permit = await carrying
            assert out.token is not None
            assert await control.redis.zscore(keys.flight, out.token) is None
            assert await control.redis.zscore(keys.done, out.token) is not None
            await limiter.release(permit)


async def test_retry_for_bounds_the_whole_acquire_from_its_first_try() -> None:
    """A Redis that accepts but never answers: the error comes after retry_for, not timeouts."""
    accepted: list[asyncio.StreamWriter] = []

    async def hang(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with RedisBackend(
            f"redis://127.0.0.1:{port}/0", retry_for=0.3, socket_timeout=5.0
        ) as shared:
            started = loop.time()
            with pytest.raises(RedisUnavailableError) as caught:
                await shared.limiter(KEY, RateLimit()).acquire()
            took = loop.time() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert str(caught.value) == (
        f"Redis at redis://127.0.0.1:{port}/0 is unreachable (TimeoutError, tried for 0.3 s); "
        "pass fallback=True to RedisBackend to fall back to a per-process rate limit"
    )
    assert 0.3 <= took <= 0.3 + LATE


async def test_an_error_retrying_cannot_fix_is_raised_at_once_even_with_fallback(
    redis_server: RedisServer,
) -> None:
    """WRONGTYPE (or a bad password) is a RedisBackendError at once: no retries, no fallback."""
    keys = limiter_keys("dfs-async", KEY)
    loop = asyncio.get_running_loop()
    async with RedisBackend(redis_server.url, fallback=True, retry_for=5.0) as shared:
        await shared.redis.set(keys.done, b"not a sorted set")
        started = loop.time()
        with pytest.raises(RedisBackendError) as caught:
            await shared.limiter(KEY, RateLimit()).acquire()
        assert loop.time() - started < 1.0
    assert type(caught.value) is RedisBackendError
    assert str(caught.value).startswith(
        f"Redis at {redis_server.url} refused the rate limit's command (ResponseError: "
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    )
    wrong = redis_server.url.replace("redis://", "redis://:hunter2@")
    async with RedisBackend(wrong, fallback=True, retry_for=5.0) as shared:
        with pytest.raises(RedisBackendError) as caught:
            await shared.limiter(KEY, RateLimit()).acquire()
    assert type(caught.value) is RedisBackendError
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith(
        f"Redis at redis://:***@127.0.0.1:{redis_server.port}/0 refused the rate limit's command"
    )


async def test_closing_the_backend_ends_a_waiting_acquire(redis_server: RedisServer) -> None:
    """aclose() while an acquire sleeps: it raises ClientClosedError at once, reconnecting never."""
    loop = asyncio.get_running_loop()
    shared = RedisBackend(redis_server.url)
    limiter = shared.limiter(KEY, RateLimit(calls=1, period=2.0))
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.1)
    await shared.aclose()
    closed = loop.time()
    with pytest.raises(dfs_async.ClientClosedError, match="the RedisBackend is closed"):
        await waiter
    assert loop.time() - closed < LATE
    async with RedisBackend(redis_server.url) as control:
        clients = await control.redis.client_list()
    assert len(clients) == 1  # the control connection alone


async def test_a_slot_granted_in_a_cancelled_reply_is_given_back(
    redis_server: RedisServer,
) -> None:
    """Cancelled while the script's grant is on its way: the slot and the ticket are released."""
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(redis_server.url) as shared, RedisBackend(redis_server.url) as control:
        limiter = shared.limiter(KEY, RateLimit(calls=1, period=0.2))
        await control.redis.ping()
        # Redis holds the acquire's script until after the cancellation, then grants the slot.
        await control.redis.client_pause(300)
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await control.redis.zcard(keys.flight) == 0
        assert await control.redis.zcard(keys.queue) == 0
        assert await control.redis.zcard(keys.alive) == 0


async def test_acquire_is_idempotent_by_token_even_across_a_pause(
    redis_server: RedisServer,
) -> None:
    """The same token asking twice (a lost reply) holds one slot, and keeps it through a pause."""
    keys = limiter_keys("dfs-async", KEY)
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=5, period=1.0))
        args = limiter.acquire_args("ticket", "", "token", [])
        first = parse_decision(await shared.acquire_script(keys.acquire, args))
        await shared.redis.set(keys.pause, b"1", px=1000)
        args = limiter.acquire_args("ticket", str(first.order), "token", [])
        again = parse_decision(await shared.acquire_script(keys.acquire, args))
        assert (first.kind, again.kind) == (Verdict.GO, Verdict.GO)
        assert await shared.redis.zrange(keys.flight, 0, -1) == [b"token"]


async def test_waited_counts_the_smoothing_wait(redis_server: RedisServer) -> None:
    """burst=1 of 4 per 2 s: the second permit says it waited the 0.5 s smoothing took."""
    async with RedisBackend(redis_server.url) as shared:
        limiter = shared.limiter(KEY, RateLimit(calls=4, period=2.0, burst=1))
        first = await limiter.acquire()
        await limiter.release(first)
        second = await limiter.acquire()
        await limiter.release(second)
    assert first.waited == 0.0
    assert 0.4 <= second.waited <= 0.5 + LATE


def test_redis_server_is_started_outside_libfaketime() -> None:
    """redis-server's environment drops libfaketime and keeps every other preload."""
    environ = {
        "PATH": "/usr/bin",
        "FAKETIME": "+7697987",
        "FAKETIME_SHARED": "/faketime_sem_1 /faketime_shm_1",
        "LD_PRELOAD": "/usr/$LIB/faketime/libfaketime.so.1:/opt/other.so",
    }
    assert real_clock_environment(environ) == {"PATH": "/usr/bin", "LD_PRELOAD": "/opt/other.so"}
    assert real_clock_environment({"LD_PRELOAD": "/usr/lib/faketime/libfaketimeMT.so.1"}) == {}
