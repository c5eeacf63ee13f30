"""`RedisBackend`: the public face of the shared rate limit, which hands out its limiters."""

from __future__ import annotations

import random
import warnings
from typing import TYPE_CHECKING

from dfs_async._errors import InvalidArgumentError
from dfs_async._ratelimit import RateLimit

from ._connection import Connection, redact_url
from ._limiter import RedisLimiter

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["RedisBackend"]


class RedisBackend(Connection):
    """Rate limiters shared by every process using the same Redis `url` and `prefix`.

    ``async with RedisBackend(url) as shared, Client(limiter=shared) as client:``; the client
    never closes it. Every worker sharing an account must use the same `RateLimit` (asking
    one backend for a key's limiter with another `RateLimit` is an `InvalidArgumentError`).

    - `lease`: how long a call in flight holds its slot if its worker dies; keep it above the
      client's `timeout` (120 s by default). A lost history also pauses the key this long.
    - `retry_for`: how long an acquire (or a release) keeps trying an unreachable Redis before
      giving up, to ride out a restart or a failover. The waits between tries follow the
      client's retry policy, full jitter (up to 50 ms, 100 ms, ... at most 1 s), so workers
      that lost Redis together do not come back together.
    - `fallback`: on giving up, raise `RedisUnavailableError` (False), or warn and limit that
      key in this process alone (True), trying Redis again every `reconnect_after` seconds.
    - `socket_timeout`: the longest one Redis command (or connection attempt) may take.
    - `rng`: draws that jitter (a seeded `random.Random` makes tests repeatable).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "dfs-async",
        fallback: bool = False,
        lease: float = 180.0,
        retry_for: float = 10.0,
        reconnect_after: float = 30.0,
        socket_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self._limiters: dict[str, RedisLimiter] = {}
        super().__init__(
            url,
            prefix=prefix,
            fallback=fallback,
            lease=lease,
            retry_for=retry_for,
            reconnect_after=reconnect_after,
            socket_timeout=socket_timeout,
            rng=rng,
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<dfs_async.RedisBackend {self.url} prefix={self.prefix!r} {state}>"

    @staticmethod
    def redacted(url: str) -> str:
        """`url` as a backend shows it: any password replaced by ``***``."""
        return redact_url(url)

    def limiter(self, key: str, rate: RateLimit) -> RedisLimiter:
        """The limiter for `key` (``login:path``), shared with every process on this Redis."""
        self.check_open()
        found = self._limiters.get(key)
        if found is None:
            found = self._limiters[key] = RedisLimiter(self, key, rate)
        elif found.rate != rate:
            # Two rates on one shared quota cannot both hold; say so rather than pick one.
            raise InvalidArgumentError(
                f"{found.name} is already limited at {found.rate!r} through this RedisBackend, "
                f"not {rate!r}: every client and worker sharing an account must use the same "
                "RateLimit"
            )
        return found

    async def __aenter__(self) -> RedisBackend:
        self.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self!r} was never closed; "
                "use 'async with RedisBackend(...)' or 'await backend.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )
