"""The backend's connection to Redis: its settings, redis-py's client, and trying again.

`Connection` holds what every limiter of a backend shares: the redis-py client and its two
registered scripts, what counts as "unreachable for now" and what as a refusal for good, and
`retrying`, the one loop that tries a command again, with the package's retry policy
(`dfs_async._retry.full_jitter`), until a budget of seconds is spent. `RedisBackend` is a
`Connection` that also hands out limiters.

redis-py is imported when a connection is made, so importing this module never needs it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dfs_async._checks import flag, seconds
from dfs_async._errors import ClientClosedError, InvalidArgumentError, RedisBackendError
from dfs_async._retry import full_jitter

from ._scripts import ACQUIRE_LUA, RELEASE_LUA

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["Connection", "Unreachable", "redact_url"]

logger = logging.getLogger("dfs_async")

# The waits between tries of an unreachable Redis: full jitter under a bound of 50 ms,
# 100 ms, 200 ms ... at most 1 s. Short, since a restart or a failover takes seconds and
# every acquire of the key is held meanwhile; jittered, so workers that lost Redis together
# come back one by one instead of all in the same millisecond.
BACKOFF_INITIAL = 0.05
BACKOFF_MULTIPLIER = 2.0
BACKOFF_MAXIMUM = 1.0

# The shortest time one try of a Redis command gets, even when less of the budget is left.
MIN_TRY = 0.05

# Redis's error replies that mean "not now" rather than "never": a replica promoted or still
# loading, a cluster slot moving.
_TRANSIENT_REPLIES = ("LOADING", "READONLY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")

# A query parameter named password, up to the next parameter: '#' and '@' included, since an
# unencoded password may contain them.
_QUERY_PASSWORD = re.compile(r"(^|&)(password=)[^&]*")


def redact_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (in the user part and in the query).

    Edited as text, not parsed: a password with an unencoded '/', '?', '#' or '@' would
    mislead a parser about where it ends. Everything between ``://`` and the *last* '@' is
    the user part; of it, only a user name before a ':' is shown.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    user_part, at, host_part = rest.rpartition("@")
    # ('unix:///path?...@...': an '@' after a path is no user part.)
    if at and not user_part.startswith("/"):
        user, colon, _ = user_part.partition(":")
        rest = f"{user}:***@{host_part}" if colon else f"***@{host_part}"
    path, question, query = rest.partition("?")
    return head + sep + path + question + _QUERY_PASSWORD.sub(r"\1\2***", query)


class Unreachable(Exception):
    """Redis failed for the whole retry budget; `__cause__` is the last error."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        #: How long it was tried.
        self.seconds = seconds


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


class Connection:
    """One Redis (`url`, `prefix`) and the settings of every limiter that uses it.

    The arguments are `RedisBackend`'s (see there); `rng` draws the jitter of the waits
    between tries (pass a seeded `random.Random` for repeatable tests).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        fallback: bool,
        lease: float,
        retry_for: float,
        reconnect_after: float,
        socket_timeout: float,
        rng: random.Random | None,
    ) -> None:
        self._closed = True  # until fully built, so __del__ of a failed init stays quiet
        try:
            # Imported here so that dfs_async (and this module) import without redis-py.
            from redis import exceptions
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise ImportError(
                "dfs_async.RedisBackend needs redis-py: pip install 'dfs-async[redis]'"
            ) from exc
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise InvalidArgumentError(
                f"prefix must be a non-empty string without braces, got {prefix!r}"
            )
        if rng is not None and not isinstance(rng, random.Random):
            raise InvalidArgumentError(f"rng must be a random.Random or None, got {rng!r}")
        if not isinstance(url, str):
            raise InvalidArgumentError(
                f"url must be a string such as 'redis://host:6379/0', got {type(url).__name__}"
            )
        self.url = redact_url(url)
        self.prefix = prefix
        self.fallback = flag("fallback", fallback)
        self.lease = seconds("lease", lease)
        self.retry_for = seconds("retry_for", retry_for, zero=True)
        self.reconnect_after = seconds("reconnect_after", reconnect_after)
        self.socket_timeout = seconds("socket_timeout", socket_timeout)
        # Each backend draws its own jitter: seeded by the OS, so no two processes agree.
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidArgumentError(
                f"not a usable Redis URL: {self.url} (it must start with redis://, rediss:// "
                "or unix://)"
            )
        try:
            self._redis: Redis = Redis.from_url(
                url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                # One immediate retry replaces a pooled connection that a restart broke; any
                # longer wait is ours to decide (retry_for), not redis-py's.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError:
            # Not redis-py's reason: it may quote the part of a password it mistook for a
            # port or a database number.
            raise InvalidArgumentError(
                f"not a usable Redis URL: {self.url} (check the host, port and database; "
                "characters such as '@', ':', '/', '?' or '#' in a user name or password must "
                "be percent-encoded, e.g. with urllib.parse.quote(password, safe=''))"
            ) from None
        #: redis-py's errors: those `transient` does not accept mean Redis refused for good.
        self.redis_errors: tuple[type[BaseException], ...] = (exceptions.RedisError, OSError)
        # What "unreachable for now" looks like; OSError includes asyncio's TimeoutError (one
        # try ran out of time).
        self._transient: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError,  # BusyLoadingError (LOADING) among them
            exceptions.TimeoutError,
            exceptions.ReadOnlyError,
            exceptions.TryAgainError,
            exceptions.ClusterDownError,  # MasterDownError among them
            OSError,
        )
        # ... except these ConnectionErrors, which no retry fixes.
        self._refusals: tuple[type[BaseException], ...] = (
            exceptions.AuthenticationError,
            exceptions.AuthorizationError,
            exceptions.ExternalAuthProviderError,
        )
        self._response_error = exceptions.ResponseError
        self.acquire_script: AsyncScript = self._redis.register_script(ACQUIRE_LUA)
        self.release_script: AsyncScript = self._redis.register_script(RELEASE_LUA)
        # Sleeping acquires, woken at once by aclose().
        self._sleepers: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def redis(self) -> Redis:
        """The redis-py client (for tests and diagnostics)."""
        return self._redis

    @property
    def closed(self) -> bool:
        return self._closed

    def transient(self, exc: BaseException) -> bool:
        """Whether `exc` means Redis is unreachable for now (so worth trying again)."""
        if isinstance(exc, self._refusals):
            return False
        if isinstance(exc, self._transient):
            return True
        return isinstance(exc, self._response_error) and str(exc).startswith(_TRANSIENT_REPLIES)

    def check_open(self) -> None:
        """Raise `ClientClosedError` once closed."""
        if self._closed:
            raise ClientClosedError("the RedisBackend is closed")

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt`: the package's one retry policy."""
        return full_jitter(
            attempt,
            self.rng.random(),
            initial=BACKOFF_INITIAL,
            multiplier=BACKOFF_MULTIPLIER,
            maximum=BACKOFF_MAXIMUM,
        )

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep`, cut short by `aclose` (check `closed` after it)."""
        loop = asyncio.get_running_loop()
        waker: asyncio.Future[None] = loop.create_future()
        self._sleepers.add(waker)
        timer = loop.call_later(seconds, _wake, waker)
        try:
            await waker
        finally:
            timer.cancel()
            self._sleepers.discard(waker)

    async def retrying(
        self, budget: float, command: Callable[[], Awaitable[Any]], *, name: str
    ) -> Any:
        """Run `command()` until it succeeds or `budget` seconds have passed since the first try.

        Each try is bounded by what is left of the budget; a budget of 0 (a quick check while
        falling back) is one try, bounded by the socket timeout. Between tries it waits
        `backoff`, cut to what is left. Errors that retrying cannot fix raise
        `RedisBackendError` at once; a spent budget raises `Unreachable`. `name` (the
        limiter's endpoint) is for the log.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + budget
        attempt = 0
        while True:
            self.check_open()
            limit = max(deadline - loop.time(), MIN_TRY) if budget else self.socket_timeout
            try:
                return await _shielded(asyncio.wait_for(command(), limit))
            except Exception as exc:
                if self._closed:
                    raise ClientClosedError("the RedisBackend is closed") from exc
                if not self.transient(exc):
                    if not isinstance(exc, self.redis_errors):
                        raise
                    raise RedisBackendError(
                        f"Redis at {self.url} refused the rate limit's command "
                        f"({type(exc).__name__}: {exc})",
                        url=self.url,
                    ) from exc
                now = loop.time()
                left = deadline - now
                if left <= 0:
                    raise Unreachable(now - started) from exc
                attempt += 1
                wait = min(self.backoff(attempt), left)
                logger.debug("%s: Redis failed (%r); trying again in %.3f s", name, exc, wait)
                await self.sleep(wait)

    async def aclose(self) -> None:
        """Close the connections to Redis; waiting acquires raise `ClientClosedError`."""
        if self._closed:
            return
        self._closed = True
        for waker in list(self._sleepers):
            _wake(waker)
        await self._redis.aclose()


async def _shielded(awaitable: Awaitable[Any]) -> Any:
    """Await a Redis command; if cancelled meanwhile, let it finish before cancelling.

    The caller's clean-up must see what the command did (a script may have granted a slot),
    and a command cut in the middle would leave redis-py's connection in an unknown state.
    """
    inner = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait([inner])
        if not inner.cancelled():
            inner.exception()  # retrieved, so asyncio does not log it as never retrieved
        raise
