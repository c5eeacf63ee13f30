"""One retry policy, full jitter, for the client and the Redis backend alike."""

from __future__ import annotations

import ast
import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import dfs_async
from dfs_async import RateLimit, RedisBackend, RedisUnavailableError
from dfs_async._redis import _connection
from dfs_async._retry import full_jitter

PACKAGE = Path(dfs_async.__file__).resolve().parent
KEY = "worker@example.com:/v3/backlinks/id_list"


# -- the policy, pure ----------------------------------------------------------------------------


def test_full_jitter_is_a_share_of_a_capped_exponential_bound() -> None:
    """The wait is draw * min(maximum, initial * multiplier ** (attempt - 1)), in [0, maximum]."""
    settings = {"initial": 1.0, "multiplier": 2.0, "maximum": 60.0}
    assert [full_jitter(n, 0.5, **settings) for n in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]
    assert full_jitter(3, 0.0, **settings) == 0.0
    assert full_jitter(3, 0.999, **settings) == pytest.approx(3.996)
    # No overflow, however long a caller keeps trying.
    assert full_jitter(100_000, 0.25, **settings) == 15.0
    assert full_jitter(5, 0.5, initial=0.0, multiplier=2.0, maximum=60.0) == 0.0


def test_the_clients_retry_waits_are_full_jitter_with_its_settings() -> None:
    """Retry.backoff is full_jitter with the Retry's initial, multiplier and maximum."""
    retry = dfs_async.Retry(initial=0.5, multiplier=3.0, maximum=10.0)
    draws = random.Random(3)
    for attempt in range(1, 12):
        draw = draws.random()
        assert retry.backoff(attempt, draw) == full_jitter(
            attempt, draw, initial=0.5, multiplier=3.0, maximum=10.0
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be a whole number of at least 1, got 0"),
        ({"attempts": 2.0}, "attempts must be a whole number of at least 1, got 2.0"),
        ({"deadline": -1}, "deadline must be a number of seconds, at least 0, got -1"),
        ({"initial": float("nan")}, "initial must be a number of seconds, at least 0, got nan"),
        ({"maximum": "60"}, "maximum must be a number of seconds, at least 0, got '60'"),
        ({"multiplier": 0.5}, "multiplier must be a number of at least 1, got 0.5"),
        ({"multiplier": True}, "multiplier must be a number of at least 1, got True"),
    ],
)
def test_retry_rejects_nonsense_saying_what_to_pass(kwargs: dict[str, Any], message: str) -> None:
    """A Retry that cannot work is an InvalidArgumentError naming the field and the fix."""
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        dfs_async.Retry(**kwargs)
    assert str(caught.value) == message


# -- no second copy ------------------------------------------------------------------------------


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _calls(function: ast.AST, name: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
        for node in ast.walk(function)
    )


def test_every_backoff_in_the_package_is_the_one_policy() -> None:
    """Each function named for a backoff or jitter outside _retry.py calls full_jitter, and no
    module raises a number to the power of an attempt (a second formula)."""
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for function in _functions(path):
            named = "backoff" in function.name or "jitter" in function.name
            if named and where != "_retry.py":
                assert _calls(function, "full_jitter"), f"{where}: {function.name} has its own"
                found.append(f"{where}:{function.name}")
        powers = [
            node
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Pow)
            and "attempt" in ast.unparse(node.right)
        ]
        assert powers == [], f"{where} computes a backoff of its own"
    # Beside Retry.backoff (the client's), only the Redis connection's, which calls it too.
    assert found == ["_redis/_connection.py:backoff"]


# -- the Redis backend losing Redis --------------------------------------------------------------


class DroppingRedis:
    """A TCP server on 127.0.0.1 that accepts and at once closes every connection, as a Redis
    going down does; it notes when (loop time) each connection came."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        loop = asyncio.get_running_loop()

        async def drop(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.times.append(loop.time())
            writer.close()

        self._server = await asyncio.start_server(drop, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def tries(self, started: float) -> list[float]:
        """When each try began, from `started` (redis-py reconnects once within a try, and the
        acquire's clean-up connects at its last try's moment: one moment per try)."""
        return sorted({time - started for time in self.times})


@pytest.fixture
async def dropping() -> AsyncIterator[list[DroppingRedis]]:
    servers = [DroppingRedis(), DroppingRedis()]
    try:
        yield servers
    finally:
        for server in servers:
            await server.close()


def expected_waits(seed: int, count: int) -> list[float]:
    """The first `count` waits the policy draws from a `random.Random(seed)`."""
    draws = random.Random(seed)
    return [
        full_jitter(
            attempt,
            draws.random(),
            initial=_connection.BACKOFF_INITIAL,
            multiplier=_connection.BACKOFF_MULTIPLIER,
            maximum=_connection.BACKOFF_MAXIMUM,
        )
        for attempt in range(1, count + 1)
    ]


@pytest.mark.looptime
async def test_backends_that_lose_redis_together_do_not_retry_together(
    dropping: list[DroppingRedis],
) -> None:
    """Two workers losing Redis at the same moment wait different, jittered times between
    tries, each within [0, min(1 s, 50 ms * 2**(n-1))], drawn by the one policy from their rng;
    both give up exactly at retry_for."""
    loop = asyncio.get_running_loop()
    urls = [await server.start() for server in dropping]
    backends = [
        RedisBackend(url, retry_for=5.0, rng=random.Random(seed))
        for url, seed in zip(urls, (1, 2), strict=True)
    ]
    try:
        started = loop.time()
        outcomes = await asyncio.gather(
            *(backend.limiter(KEY, RateLimit()).acquire() for backend in backends),
            return_exceptions=True,
        )
        ended = loop.time()
    finally:
        for backend in backends:
            await backend.aclose()
    assert [type(outcome) for outcome in outcomes] == [RedisUnavailableError] * 2
    assert ended - started == pytest.approx(5.0, abs=1e-6)
    sequences = []
    for server, seed in zip(dropping, (1, 2), strict=True):
        tries = server.tries(started)
        assert tries[0] == 0.0
        assert tries[-1] == pytest.approx(5.0, abs=1e-6)
        waits = [b - a for a, b in itertools.pairwise(tries)]
        for attempt, wait in enumerate(waits, start=1):
            assert 0.0 <= wait <= min(1.0, 0.05 * 2 ** (attempt - 1)) + 1e-9
        # Every wait is the policy's draw; the last is cut to what was left of retry_for.
        policy = expected_waits(seed, len(waits))
        assert waits[:-1] == pytest.approx(policy[:-1], abs=1e-6)
        assert waits[-1] <= policy[-1] + 1e-6
        sequences.append(waits)
    first, second = sequences
    assert all(a != pytest.approx(b, abs=1e-6) for a, b in zip(first, second, strict=False))


def test_a_backend_takes_only_a_random_generator_for_its_jitter() -> None:
    """rng must be a random.Random (or None for one seeded by the OS)."""
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        RedisBackend("redis://localhost/0", rng=42)  # type: ignore[arg-type]
    assert str(caught.value) == "rng must be a random.Random or None, got 42"
