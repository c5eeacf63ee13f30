"""This process's own record of a key's calls, and the per-process limit while Redis is away.

A `RedisLimiter` tells its `Fallback` of every permit it hands out and every release. While
Redis answers, that record only seeds a fallback. Once Redis is given up on (``fallback=True``),
the fallback limits the key in this process alone: a `LocalLimiter` that starts from this
process's calls of the last period and those still in flight, so giving up on Redis never
adds a burst on top of calls just made. When Redis is back, the calls made meanwhile are
carried over into the shared history (finished ones with their age, those in flight with a
fresh lease), so the other workers count them too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import warnings
from collections import deque

from dfs_async._ratelimit import LocalLimiter, Permit, RateLimit

__all__ = ["LOCAL", "Fallback"]

logger = logging.getLogger("dfs_async")

#: Tokens of permits handed out by the fallback LocalLimiter start with this.
LOCAL = "local:"


class Fallback:
    """One key's calls as this process saw them, and its limit while Redis is away."""

    def __init__(self, rate: RateLimit, *, name: str, url: str, reconnect_after: float) -> None:
        self.rate = rate
        self._name = name
        self._url = url
        self._reconnect_after = reconnect_after
        # Every permit handed out and not yet released, with the fallback limiters that count
        # it as in flight (and must hear of its release).
        self._in_flight: dict[str, list[LocalLimiter]] = {}
        # Reply stamps (loop time) of this process's latest calls, to seed a fallback limiter.
        self._recent: deque[float] = deque(maxlen=rate.calls)
        # The fallback's finished calls (token -> reply stamp) not yet carried over to Redis,
        # and its calls in flight that were: their release must reach Redis.
        self._local_done: dict[str, float] = {}
        self._carried: set[str] = set()
        #: The per-process limiter, made anew each time Redis is given up on.
        self.local: LocalLimiter | None = None
        #: Whether the key is limited in this process alone for now.
        self.active = False
        #: While active, when (loop time) to try Redis again.
        self.retry_at = -math.inf

    def granted(self, token: str) -> None:
        """Redis granted the permit `token`: it is in flight."""
        self._in_flight[token] = []

    async def released(self, permit: Permit, now: float) -> bool:
        """The call holding `permit` got its reply at `now`; whether Redis must hear of it."""
        token = permit.token
        assert token is not None  # checked by the limiter
        self._recent.append(now)
        for local in self._in_flight.pop(token, []):
            await local.release(permit)
        if token.startswith(LOCAL):
            self._local_done[token] = now
            if self.active and token not in self._carried:
                # Redis never heard of this call: the next carry-over tells it.
                return False
        # Always sent for a call carried over as in flight, even if the carry's reply has not
        # come yet: without it, that entry would hold a slot for a lease and a period.
        self._carried.discard(token)
        return True

    def begin(self, cause: BaseException | None) -> None:
        """Redis was given up on: limit the key in this process until `retry_at`."""
        loop = asyncio.get_running_loop()
        self.retry_at = loop.time() + self._reconnect_after
        if self.active:
            logger.debug("%s: Redis is still unreachable (%r)", self._name, cause)
            return
        self.active = True
        # Not an empty window: this process's calls of the last period still count, and so do
        # those in flight (each tells this limiter of its release).
        local = LocalLimiter(RateLimit(calls=self.rate.calls, period=self.rate.period))
        now = loop.time()
        for stamp in self._recent:  # oldest first, as the window keeps them
            if stamp > now - self.rate.period:
                local.window.start()
                local.window.finish(stamp)
        for counting in self._in_flight.values():
            local.window.start()
            counting.append(local)
        self.local = local
        message = (
            f"Redis at {self._url} is unreachable ({type(cause).__name__}); the rate "
            f"limit of {self._name} now counts this process's calls only, until Redis is back "
            f"(tried again every {self._reconnect_after:g} s)"
        )
        logger.warning("%s", message)
        # 3: past this method and RedisLimiter.acquire, to the code that asked for a slot.
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def end(self) -> None:
        """Redis answered again: the limit is shared again."""
        if self.active:
            self.active = False
            logger.warning(
                "%s: Redis at %s is back; the rate limit is shared again", self._name, self._url
            )

    async def acquire(self, started: float) -> Permit:
        """A slot from the per-process limiter (`begin` made it); `started`: when asked."""
        local = self.local
        assert local is not None  # set by begin() before any use
        await local.acquire()
        token = LOCAL + secrets.token_hex(8)
        self._in_flight[token] = [local]
        return Permit(waited=asyncio.get_running_loop().time() - started, token=token)

    def carry_over(self) -> tuple[list[str], list[str]]:
        """The fallback's calls as (token, age in µs, or -1 if in flight) for the acquire
        script, and the finished ones among them (for `carried`)."""
        if not self.active:
            return [], []
        now = asyncio.get_running_loop().time()
        entries: list[str] = []
        done: list[str] = []
        for token, stamp in list(self._local_done.items()):
            if stamp <= now - self.rate.period:
                del self._local_done[token]  # out of every window by now
            else:
                entries += [token, str(max(0, int((now - stamp) * 1e6)))]
                done.append(token)
        for token in self._in_flight:
            if token.startswith(LOCAL):
                entries += [token, "-1"]
                # From now on, Redis may hold it in flight: its release must go there.
                self._carried.add(token)
        return entries, done

    def carried(self, done: list[str]) -> None:
        """The script has the finished calls `done` now (NX there keeps a stamp their release
        wrote meanwhile)."""
        for token in done:
            self._local_done.pop(token, None)
