"""One account and endpoint's limiter, shared through Redis: acquire, release, pause.

The arithmetic is in the scripts (acquire.lua, release.lua); this module drives them: asks for
a slot and sleeps as long as the script says, keeps its place in the queue while it waits,
leaves the queue if cancelled, stamps each reply, and spreads a 40202 to every worker. The
connection's `retrying` rides out a Redis restart; past `retry_for`, the `Fallback` takes
over (``fallback=True``) or the acquire raises `RedisUnavailableError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import secrets

import aiolimiter

from dfs_async._errors import RedisBackendError, RedisUnavailableError
from dfs_async._ratelimit import Permit, RateLimit

from ._connection import MIN_TRY, Connection, Unreachable
from ._fallback import Fallback
from ._scripts import GRACE, Verdict, limiter_keys, parse_decision

__all__ = ["RedisLimiter"]

logger = logging.getLogger("dfs_async")

# The longest a cancelled acquire spends leaving the queue before giving that job to the
# ticket's deadline.
_FORGET_TIMEOUT = 1.0


def _microseconds(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


class RedisLimiter:
    """One account and endpoint's limiter, shared through Redis (see `dfs_async._redis`)."""

    def __init__(self, connection: Connection, key: str, rate: RateLimit) -> None:
        self.rate = rate
        self.keys = limiter_keys(connection.prefix, key)
        self._connection = connection
        #: For messages: the endpoint, never the login.
        self.name = key.partition(":")[2] or self.keys.done.rpartition(":")[0]
        self._period_us = _microseconds(rate.period)
        self._lease_us = _microseconds(connection.lease)
        self._grace_us = _microseconds(GRACE)
        # How long idle keys are kept: a lease, then its stamp's period, then a ticket's grace.
        self._keep_ms = math.ceil((rate.period + connection.lease + GRACE) * 1000)
        # The history this limiter last saw in Redis ('' before its first call), and the most
        # writes it saw in it: a history with fewer lost some.
        self._epoch = ""
        self._writes = 0
        self._fallback = Fallback(
            rate, name=self.name, url=connection.url, reconnect_after=connection.reconnect_after
        )
        burst = rate.burst if rate.burst is not None else rate.calls
        # As in LocalLimiter: smoothing only spreads bursts (here per process); the shared
        # sliding log remains the guarantee.
        self._smoothing = (
            aiolimiter.AsyncLimiter(burst, burst * rate.period / rate.calls)
            if burst < rate.calls
            else None
        )

    @property
    def falling_back(self) -> bool:
        """Whether this key is limited in this process alone for now (Redis unreachable)."""
        return self._fallback.active

    async def acquire(self) -> Permit:
        connection = self._connection
        connection.check_open()
        fallback = self._fallback
        loop = asyncio.get_running_loop()
        started = loop.time()
        smoothed = False
        if self._smoothing is not None:
            smoothed = not self._smoothing.has_capacity()
            await self._smoothing.acquire()
        if fallback.active and loop.time() < fallback.retry_at:
            return await fallback.acquire(started)
        # Falling back, one quick try says whether Redis is back; otherwise ride out a restart.
        budget = 0.0 if fallback.active else connection.retry_for
        try:
            token, slept = await self._acquire_shared(budget)
        except Unreachable as exc:
            cause = exc.__cause__
            if not connection.fallback:
                raise RedisUnavailableError(
                    f"Redis at {connection.url} is unreachable "
                    f"({type(cause).__name__}, tried for {round(exc.seconds, 1):g} s); pass "
                    "fallback=True to RedisBackend to fall back to a per-process rate limit",
                    url=connection.url,
                ) from cause
            fallback.begin(cause)
            return await fallback.acquire(started)
        fallback.granted(token)
        # A slot granted at once did not wait for the rate limit, whatever the round trip took.
        waited = loop.time() - started if slept or smoothed else 0.0
        return Permit(waited=waited, token=token)

    async def release(self, permit: Permit) -> None:
        token = permit.token
        if token is None:
            raise RuntimeError("release() of a permit this limiter did not hand out")
        fallback = self._fallback
        if not await fallback.released(permit, asyncio.get_running_loop().time()):
            return
        connection = self._connection
        budget = 0.0 if fallback.active else connection.retry_for
        try:
            reply = await connection.retrying(
                budget,
                lambda: connection.release_script(
                    keys=self.keys.release,
                    args=[token, self._keep_ms, self._epoch, self._writes, secrets.token_hex(8)],
                ),
                name=self.name,
            )
        except Unreachable as exc:
            # Not raised: the call already happened. Its lease stamps it later, which is safe.
            logger.warning(
                "%s: could not stamp a call in Redis at %s (%s); it holds its slot until its "
                "lease ends (%g s)",
                self.name,
                connection.url,
                exc.__cause__,
                connection.lease,
            )
        except RedisBackendError as exc:
            logger.error("%s: could not stamp a call: %s", self.name, exc)
        else:
            epoch, writes = reply
            # Another epoch: the next acquire sends the old one, and so pauses the key.
            if epoch.decode() == self._epoch:
                self._writes = max(self._writes, int(writes))

    async def pause(self) -> None:
        if self._fallback.local is not None:
            await self._fallback.local.pause()
        connection = self._connection
        try:
            # A new pause always ends last (now + period), so a plain SET is the maximum.
            await connection.retrying(
                0.0,
                lambda: connection.redis.set(
                    self.keys.pause, b"1", px=math.ceil(self.rate.period * 1000)
                ),
                name=self.name,
            )
        except (Unreachable, RedisBackendError) as exc:
            logger.warning(
                "%s: could not pause the other workers through Redis at %s (%s)",
                self.name,
                connection.url,
                exc.__cause__ or exc,
            )

    def acquire_args(self, ticket: str, order: str, token: str, carry: list[str]) -> list[str]:
        """The acquire script's ARGV (see acquire.lua)."""
        return [
            str(self.rate.calls),
            str(self._period_us),
            str(self._lease_us),
            str(self._keep_ms),
            ticket,
            order,
            token,
            self._epoch,
            str(self._writes),
            secrets.token_hex(8),
            str(self._grace_us),
            *carry,
        ]

    async def _acquire_shared(self, budget: float) -> tuple[str, bool]:
        """Wait for a slot in Redis; its token, and whether it slept. `Unreachable` if not."""
        connection = self._connection
        fallback = self._fallback
        ticket = secrets.token_hex(8)
        token = secrets.token_hex(8)
        order = ""
        carry, carried_done = fallback.carry_over()
        slept = False
        granted = False
        try:
            while True:
                args = self.acquire_args(ticket, order, token, carry)
                reply = await connection.retrying(
                    budget,
                    functools.partial(connection.acquire_script, self.keys.acquire, args),
                    name=self.name,
                )
                decision = parse_decision(reply)
                fallback.carried(carried_done)  # in Redis now
                carry, carried_done = [], []
                fallback.end()
                if decision.lost:
                    logger.warning(
                        "%s: Redis at %s lost the rate limit's history (restarted without "
                        "persistence or from an older snapshot, flushed, failed over, or keys "
                        "evicted); calls wait until %g s after the loss",
                        self.name,
                        connection.url,
                        max(self.rate.period, connection.lease),
                    )
                if decision.epoch != self._epoch:
                    self._epoch, self._writes = decision.epoch, decision.writes
                else:
                    self._writes = max(self._writes, decision.writes)
                order = str(decision.order)
                if decision.kind is Verdict.GO:
                    granted = True
                    return token, slept
                slept = True
                # Never a busy loop, even if the clocks round a wait down to nothing.
                await connection.sleep(max(decision.wait, 0.001))
                connection.check_open()
        except BaseException as exc:
            # Cancelled, failed or given up while queued: leave the queue, and give back a slot
            # the script may have granted in a reply we never read. (A closed backend cannot:
            # using its client again would open a new connection.)
            if not granted and not connection.closed:
                # Given up on Redis, this try is a courtesy: keep it short.
                unreachable = isinstance(exc, Unreachable)
                await self._forget(ticket, token, MIN_TRY if unreachable else _FORGET_TIMEOUT)
            raise

    async def _forget(self, ticket: str, token: str, limit: float) -> None:
        """Leave the queue, and give back a slot granted to this acquire but never used."""
        connection = self._connection
        # redis_errors has OSError, and so asyncio's TimeoutError (wait_for ran out).
        failures: tuple[type[BaseException], ...] = connection.redis_errors
        try:
            async with connection.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.queue, ticket)
                pipe.zrem(self.keys.alive, ticket)
                # Only an unused grant can be here: the call never went out, so no stamp.
                pipe.zrem(self.keys.flight, token)
                # Bounded: a clean-up must not hold up a cancellation (or a give-up) for long.
                await asyncio.wait_for(pipe.execute(), min(limit, connection.socket_timeout))
        except failures as exc:
            # The ticket's deadline and the slot's lease clean up after us.
            logger.debug("%s: could not leave the queue (%r)", self.name, exc)
