"""The shared rate limit: one quota for every worker process on an account, kept in Redis.

``async with RedisBackend(url) as shared, Client(limiter=shared) as client:`` gives every
process (on any host) that uses the same Redis and prefix the contract of the in-process
limiter, across all of them: never more than `calls` calls in any rolling `period` per account
and endpoint, each call stamped when its reply arrived, calls in flight holding their slots, a
full burst after idle time and the full rate on long streams.

Strategy:
- Two small Lua scripts do all the arithmetic inside Redis, so each decision is atomic across
  workers and uses one clock, Redis's own (``TIME``): hosts whose clocks disagree still agree
  on every stamp. Workers only ever sleep for durations the script computed.
- Per key, a sorted set of finished calls (token -> reply stamp) and one of calls in flight
  (token -> lease end). A call may start when finished-in-window + in-flight + the waiters ahead
  of it is below `calls`; otherwise it sleeps until the stamp that must leave the window does.
  A call in flight will be stamped "now or later", so when the slot it holds is the one needed,
  the sleep is a whole period: a lower bound, after which the worker asks again.
- A worker killed mid-call cannot release: its entry's lease (``lease`` seconds, longer than the
  client's timeout) runs out, and it then counts as a call replied at the lease's end, and
  leaves the window a period later like any other.
- Fairness: waiters queue in Redis in arrival order (a sorted set of tickets), and a waiter may
  take a slot only if there are enough free slots for itself and every waiter ahead of it. Each
  waiter sleeps until its own turn, so no worker starves and none polls in a tight loop. A
  ticket carries a deadline (its next poll plus a grace second): a worker that died while
  waiting drops out of the queue; a live one that was merely late comes back with its place.
- A 40202 seen by any worker sets a pause key that expires a period later; every worker's
  acquire sees it.
- Redis restarted without persistence (or flushed, or failed over to a replica behind) loses
  the history, and an empty history would allow a fresh burst on top of the calls just made.
  Each key has an epoch (an id and its creation time) that never expires; a worker that saw
  another epoch knows the history was lost, and every call waits until a period after the new
  epoch began, when every lost stamp has left the window.
- Redis unreachable: each acquire keeps trying for `retry_for` seconds (a restart or failover
  takes less), then raises `RedisUnavailableError`, or with ``fallback=True`` warns and limits
  that key in this process alone (`LocalLimiter`), trying Redis again every `reconnect_after`
  seconds and carrying the calls it made meanwhile over into the shared history.

Why not the `limits` library: its Redis moving window stamps each hit when it is *taken*, with
the worker's own clock (``time.time()``), in whole-second windows, and has no notion of a call
in flight or of a stamp written when the reply arrives. Under it, a slow reply lets the server
count more than `calls` in a window, and skewed hosts disagree; it also only answers yes or no,
leaving waiting and fairness to the caller. Those are this module's whole job.

redis-py is imported when a `RedisBackend` is made, so importing this module (and dfs_async)
never needs it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import secrets
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiolimiter
import attrs

from ._errors import ClientClosedError, DataForSEOError, InvalidArgumentError
from ._ratelimit import LocalLimiter, Permit, RateLimit

if TYPE_CHECKING:
    from types import TracebackType

    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "Decision",
    "LimiterKeys",
    "RedisBackend",
    "RedisLimiter",
    "RedisUnavailableError",
    "backoff",
    "limiter_keys",
    "parse_decision",
    "redact_url",
]

logger = logging.getLogger("dfs_async")

# How long a waiter's ticket outlives the moment it said it would poll again. A live waiter
# polls within milliseconds of that moment; a dead one then blocks the queue for at most this.
GRACE = 1.0

# Tokens of permits handed out by the fallback LocalLimiter start with this.
_LOCAL = "local:"

# The longest a cancelled acquire spends leaving the queue before giving that job to the
# ticket's deadline.
_FORGET_TIMEOUT = 1.0

# The acquire script. Times are whole microseconds of Redis's clock: below 2**53 they are exact
# in Lua's doubles, in sorted-set scores, and in the integers a script returns.
ACQUIRE_LUA = """
-- KEYS: 1 done   zset  token -> reply stamp     (finished calls)
--       2 flight zset  token -> lease end       (calls in flight)
--       3 queue  zset  ticket -> arrival order  (waiters, first come first served)
--       4 alive  zset  ticket -> deadline       (when a silent waiter counts as dead)
--       5 pause  string, exists while every call must wait (40202, lost history)
--       6 epoch  hash   id, at: which history this is and when it began; never expires
-- ARGV: 1 calls  2 period  3 lease  4 grace  5 ticket  6 order ('' for a new waiter)
--       7 token  8 epoch the worker saw last ('' if none)  9 id for a new epoch
--       10.. pairs (token, age or -1): calls a worker made while Redis was away
-- Arguments arrive as strings; every time and duration is in microseconds.
local calls = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
-- Redis's clock, not the worker's: every host agrees on "now" whatever its own clock says.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Idle keys vanish once nothing in them can matter any more: a lease ends, its stamp leaves
-- the window a period later, a waiter's ticket outlives its wait by the grace (in ms).
local keep = math.ceil((period + lease + grace) / 1000)

-- A missing epoch means a new history: this key's first use, or Redis lost its data.
local epoch = redis.call('HGET', KEYS[6], 'id')
if not epoch then
  epoch = ARGV[9]
  -- 'at' is when this history began: nothing it lacks can be younger than that.
  redis.call('HSET', KEYS[6], 'id', epoch, 'at', now)
end
local lost = 0
if ARGV[8] ~= '' and ARGV[8] ~= epoch then
  -- This worker knew another history, so it was lost. Every lost stamp is older than the
  -- new epoch, so all have left the window a period after it began: pause until then.
  lost = 1
  local ms = math.ceil((tonumber(redis.call('HGET', KEYS[6], 'at')) + period - now) / 1000)
  -- Never shorten a longer pause (PTTL is -2 when there is none); PX needs at least 1 ms.
  if ms > 0 and ms > redis.call('PTTL', KEYS[5]) then
    redis.call('SET', KEYS[5], '1', 'PX', ms)
  end
end

-- A lease that ran out belongs to a worker that died mid-call: count that call as replied at
-- the lease's end (no later reply can be missed by then, since the lease exceeds the timeout).
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[1], expired[i + 1], expired[i])
end
-- ... and it is no longer in flight.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

-- Calls made through the fallback limiter join the history: finished ones at their stamp,
-- those still in flight with a fresh lease (their release will stamp them).
for i = 10, #ARGV - 1, 2 do
  local age = tonumber(ARGV[i + 1])
  if age >= 0 then
    redis.call('ZADD', KEYS[1], now - age, ARGV[i])
  else
    redis.call('ZADD', KEYS[2], now + lease, ARGV[i])
  end
end

-- A stamp a whole period old has left the window (s <= now - period, as in SlidingWindow).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)

-- Waiters that missed their deadline died: their tickets must not block the queue. A live
-- waiter that was only late comes back below with its original order, so keeps its place.
-- (Times are whole microseconds, so "before now" is "at most now - 1".)
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - 1)
if #dead > 0 then
  redis.call('ZREM', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[4], unpack(dead))
end
-- (Re)join the queue: a new waiter (tonumber('') is nil) queues as of now; one asking again
-- gives its original order, so a ticket that was dropped or lost comes back in its place.
local order = tonumber(ARGV[6]) or now
redis.call('ZADD', KEYS[3], order, ARGV[5])

local kind
local wait
local paused = redis.call('PTTL', KEYS[5])
if paused > 0 then
  -- Paused: everyone waits out the pause (PTTL is in ms), then asks again in queue order.
  kind = 3
  wait = paused * 1000
elseif redis.call('ZSCORE', KEYS[2], ARGV[7]) then
  -- This token already holds a slot: an earlier try of this same acquire was granted but its
  -- reply was lost on the way. Granting again is what makes retrying safe.
  kind = 0
else
  -- rank: waiters ahead of this one; used: slots held by stamps in the window and by calls
  -- in flight.
  local rank = redis.call('ZRANK', KEYS[3], ARGV[5])
  local done = redis.call('ZCARD', KEYS[1])
  local used = done + redis.call('ZCARD', KEYS[2])
  if used + rank < calls then
    -- Free slots for this waiter and for every waiter ahead of it: take one.
    kind = 0
    redis.call('ZADD', KEYS[2], now + lease, ARGV[7])
  else
    -- The (index + 1)-th oldest entry must leave the window first. Finished calls come first
    -- (oldest stamp first); calls in flight will be stamped now or later.
    local index = used + rank - calls
    if index < done then
      kind = 1
      local entry = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
      wait = tonumber(entry[2]) + period - now
    else
      -- The entry is a call in flight (or one a waiter ahead will start): its stamp is now
      -- or later, so a period from now is a lower bound; ask again then.
      kind = 2
      wait = period
    end
  end
end
if kind == 0 then
  -- Served: the ticket leaves the queue.
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[5])
  wait = 0
else
  -- The waiter promises to ask again after `wait`; past that and the grace, it is dead.
  redis.call('ZADD', KEYS[4], now + wait + grace, ARGV[5])
end
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], keep)
end
return {kind, wait, order, epoch, lost}
"""

# The release script: the call's reply arrived (or it failed), stamp it now.
RELEASE_LUA = """
-- KEYS: 1 done  2 flight.  ARGV: 1 token  2 how long to keep the key (ms)
-- Redis's clock, as in acquire, so stamps from every host compare.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- No longer in flight ...
redis.call('ZREM', KEYS[2], ARGV[1])
-- ZADD, not a move: it also stamps a call whose lease already ran out (the later stamp, now,
-- is the safe one) or whose entry Redis lost meanwhile (the stamp comes back).
redis.call('ZADD', KEYS[1], now, ARGV[1])
-- Kept until this stamp (and any lease) can no longer matter.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now
"""


class RedisUnavailableError(DataForSEOError):
    """Redis could not be used for the shared rate limit; `url` has no password in it."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


def redact_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (in the user part and in the query)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable Redis URL>"
    # Edited as text, so the rest of the URL stays exactly as written (``unix:///path``).
    head, question, query = url.partition("?")
    if password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        head = head.replace(parts.netloc, f"{user}:***@{host}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        hidden = [(name, "***" if name == "password" else value) for name, value in pairs]
        query = urlencode(hidden, safe="*") + ("#" + parts.fragment if parts.fragment else "")
    return head + question + query


@attrs.frozen
class LimiterKeys:
    """The Redis keys of one limiter; they share a hash tag, so a cluster keeps them together."""

    done: str
    flight: str
    queue: str
    alive: str
    pause: str
    epoch: str

    @property
    def acquire(self) -> list[str]:
        """The keys in the order the acquire script takes them."""
        return [self.done, self.flight, self.queue, self.alive, self.pause, self.epoch]


def limiter_keys(prefix: str, key: str) -> LimiterKeys:
    """The keys for a client's limiter key (``login:path``); the login itself never appears."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    base = f"{prefix}:{{{digest}}}"
    return LimiterKeys(
        done=f"{base}:done",
        flight=f"{base}:flight",
        queue=f"{base}:queue",
        alive=f"{base}:alive",
        pause=f"{base}:pause",
        epoch=f"{base}:epoch",
    )


def backoff(attempt: int) -> float:
    """Seconds before trying an unreachable Redis again: 0.05, 0.1, 0.2 ... at most 1."""
    return min(0.05 * 2.0 ** min(attempt - 1, 10), 1.0)


def _microseconds(seconds: float) -> int:
    return math.ceil(seconds * 1_000_000)


@attrs.frozen(kw_only=True)
class Decision:
    """What the acquire script answered."""

    #: 0 go, 1 wait for a stamp to leave the window, 2 wait for a call in flight (a lower
    #: bound: ask again then), 3 paused.
    kind: int
    #: Seconds to sleep before asking again (0.0 with kind 0).
    wait: float
    #: The waiter's place in the queue, to keep it when asking again.
    order: int
    #: The history the script saw.
    epoch: str
    #: Whether the worker had seen another history: Redis lost it.
    lost: bool


def parse_decision(reply: object) -> Decision:
    """The acquire script's reply ``[kind, wait_us, order, epoch, lost]`` as a `Decision`."""
    if not isinstance(reply, list) or len(reply) != 5:
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    kind, wait, order, epoch, lost = reply
    if not (
        isinstance(kind, int)
        and isinstance(wait, int)
        and isinstance(order, int)
        and isinstance(epoch, bytes)
        and isinstance(lost, int)
    ):
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    return Decision(
        kind=kind, wait=wait / 1_000_000, order=order, epoch=epoch.decode(), lost=bool(lost)
    )


class _Unreachable(Exception):
    """Redis failed for the whole retry budget; `__cause__` is the last error."""


def _check_seconds(name: str, value: float, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        kind = "a number of seconds, at least 0" if zero else "a positive number of seconds"
        raise InvalidArgumentError(f"{name} must be {kind}, got {value!r}")
    return float(value)


class RedisBackend:
    """Rate limiters shared by every process using the same Redis `url` and `prefix`.

    ``async with RedisBackend(url) as shared, Client(limiter=shared) as client:``; the client
    never closes it. Every worker sharing an account must use the same `RateLimit`.

    - `lease`: how long a call in flight holds its slot if its worker dies; keep it above the
      client's `timeout` (120 s by default).
    - `retry_for`: how long an acquire (or a release) keeps trying an unreachable Redis before
      giving up, to ride out a restart or a failover.
    - `fallback`: on giving up, raise `RedisUnavailableError` (False), or warn and limit that
      key in this process alone (True), trying Redis again every `reconnect_after` seconds.
    - `socket_timeout`: the longest one Redis command (or connection attempt) may take.
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
    ) -> None:
        self._closed = True  # until fully built, so __del__ of a failed init stays quiet
        try:
            # Imported here so that dfs_async (and this module) import without redis-py.
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:
            raise ImportError(
                "dfs_async.RedisBackend needs redis-py: pip install 'dfs-async[redis]'"
            ) from exc
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise InvalidArgumentError(
                f"prefix must be a non-empty string without braces, got {prefix!r}"
            )
        self.url = redact_url(url)
        self.prefix = prefix
        self.fallback = bool(fallback)
        self.lease = _check_seconds("lease", lease)
        self.retry_for = _check_seconds("retry_for", retry_for, zero=True)
        self.reconnect_after = _check_seconds("reconnect_after", reconnect_after)
        socket_timeout = _check_seconds("socket_timeout", socket_timeout)
        try:
            self._redis: Redis = Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                # One immediate retry replaces a pooled connection that a restart broke; any
                # longer wait is ours to decide (retry_for), not redis-py's.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            # redis-py's reason names the part at fault, never the password.
            raise InvalidArgumentError(f"not a usable Redis URL: {self.url} ({exc})") from None
        # What "Redis is unavailable" looks like: redis-py's errors and raw socket errors.
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        self.acquire_script: AsyncScript = self._redis.register_script(ACQUIRE_LUA)
        self.release_script: AsyncScript = self._redis.register_script(RELEASE_LUA)
        self._limiters: dict[str, RedisLimiter] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<dfs_async.RedisBackend {self.url} prefix={self.prefix!r} {state}>"

    @property
    def redis(self) -> Redis:
        """The redis-py client (for tests and diagnostics)."""
        return self._redis

    def limiter(self, key: str, rate: RateLimit) -> RedisLimiter:
        """The limiter for `key` (``login:path``), shared with every process on this Redis."""
        if self._closed:
            raise ClientClosedError("the RedisBackend is closed")
        found = self._limiters.get(key)
        if found is None:
            found = self._limiters[key] = RedisLimiter(self, key, rate)
        return found

    async def __aenter__(self) -> RedisBackend:
        if self._closed:
            raise ClientClosedError("the RedisBackend is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the connections to Redis. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self!r} was never closed; "
                "use 'async with RedisBackend(...)' or 'await backend.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )


class RedisLimiter:
    """One account and endpoint's limiter, shared through Redis (see the module's Strategy)."""

    def __init__(self, backend: RedisBackend, key: str, rate: RateLimit) -> None:
        self.rate = rate
        self.keys = limiter_keys(backend.prefix, key)
        self._backend = backend
        # For messages: the endpoint, never the login.
        self._name = key.partition(":")[2] or self.keys.done.rpartition(":")[0]
        self._period_us = _microseconds(rate.period)
        self._lease_us = _microseconds(backend.lease)
        self._keep_ms = math.ceil(rate.period * 1000 + backend.lease * 1000 + GRACE * 1000)
        # The history this limiter last saw in Redis ('' before its first call).
        self._epoch = ""
        # The fallback: a LocalLimiter, made when Redis is first given up on.
        self._local: LocalLimiter | None = None
        self._local_in_flight: set[str] = set()
        self._falling_back = False
        self._retry_at = -math.inf
        self._instance = secrets.token_hex(4)
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
        return self._falling_back

    async def acquire(self) -> Permit:
        if self._backend.closed:
            raise ClientClosedError("the RedisBackend is closed")
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._smoothing is not None:
            await self._smoothing.acquire()
        if self._falling_back and loop.time() < self._retry_at:
            return await self._acquire_local(started)
        # Falling back, one quick try says whether Redis is back; otherwise ride out a restart.
        budget = 0.0 if self._falling_back else self._backend.retry_for
        try:
            token, slept = await self._acquire_shared(budget)
        except _Unreachable as exc:
            if not self._backend.fallback:
                cause = exc.__cause__
                raise RedisUnavailableError(
                    f"Redis at {self._backend.url} is unreachable "
                    f"({type(cause).__name__}, tried for {budget:g} s); pass fallback=True "
                    "to RedisBackend to fall back to a per-process rate limit",
                    url=self._backend.url,
                ) from cause
            self._fall_back(exc.__cause__)
            return await self._acquire_local(started)
        # A slot granted at once did not wait for the rate limit, whatever the round trip took.
        return Permit(waited=loop.time() - started if slept else 0.0, token=token)

    async def release(self, permit: Permit) -> None:
        token = permit.token
        if token is None:
            raise RuntimeError("release() of a permit this limiter did not hand out")
        if token.startswith(_LOCAL):
            self._local_in_flight.discard(token)
            if self._local is not None:
                await self._local.release(permit)
            if self._falling_back:
                return
            # Redis came back while this call was out: it was carried over as in flight there.
        budget = 0.0 if self._falling_back else self._backend.retry_for
        try:
            await self._retrying(
                budget,
                lambda: self._backend.release_script(
                    keys=[self.keys.done, self.keys.flight], args=[token, self._keep_ms]
                ),
            )
        except _Unreachable as exc:
            # Not raised: the call already happened. Its lease stamps it later, which is safe.
            logger.warning(
                "%s: could not stamp a call in Redis at %s (%s); it holds its slot until its "
                "lease ends (%g s)",
                self._name,
                self._backend.url,
                exc.__cause__,
                self._backend.lease,
            )

    async def pause(self) -> None:
        if self._local is not None:
            await self._local.pause()
        try:
            # A new pause always ends last (now + period), so a plain SET is the maximum.
            await self._retrying(
                0.0,
                lambda: self._backend.redis.set(
                    self.keys.pause, b"1", px=math.ceil(self.rate.period * 1000)
                ),
            )
        except _Unreachable as exc:
            logger.warning(
                "%s: could not pause the other workers through Redis at %s (%s)",
                self._name,
                self._backend.url,
                exc.__cause__,
            )

    # -- shared --------------------------------------------------------------------------------

    async def _acquire_shared(self, budget: float) -> tuple[str, bool]:
        """Wait for a slot in Redis; its token, and whether it slept. `_Unreachable` if not."""
        backend = self._backend
        ticket = secrets.token_hex(8)
        token = secrets.token_hex(8)
        order = ""
        carry = self._carry_over() if self._falling_back else []
        slept = False
        granted = False
        try:
            while True:
                args: list[str | int] = [
                    self.rate.calls,
                    self._period_us,
                    self._lease_us,
                    _microseconds(GRACE),
                    ticket,
                    order,
                    token,
                    self._epoch,
                    secrets.token_hex(8),
                    *carry,
                ]
                reply = await self._retrying(
                    budget, functools.partial(backend.acquire_script, self.keys.acquire, args)
                )
                decision = parse_decision(reply)
                carry = []
                if self._falling_back:
                    self._falling_back = False
                    logger.warning(
                        "%s: Redis at %s is back; the rate limit is shared again",
                        self._name,
                        backend.url,
                    )
                if decision.lost:
                    logger.warning(
                        "%s: Redis at %s lost the rate limit's history (restarted without "
                        "persistence, flushed or failed over); calls wait until a period "
                        "after the loss",
                        self._name,
                        backend.url,
                    )
                self._epoch = decision.epoch
                order = str(decision.order)
                if decision.kind == 0:
                    granted = True
                    return token, slept
                slept = True
                # Never a busy loop, even if the clocks round a wait down to nothing.
                await asyncio.sleep(max(decision.wait, 0.001))
        except BaseException as exc:
            # Cancelled (or failed) while queued: leave the queue, and give back a slot the
            # script may have granted in the very reply we are not going to use.
            if not granted and not isinstance(exc, _Unreachable):
                await self._forget(ticket, token)
            raise

    async def _retrying(self, budget: float, command: Any) -> Any:
        """Run `command()` until it succeeds or `budget` seconds of failures have passed."""
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        attempt = 0
        while True:
            try:
                return await _shielded(command())
            except self._backend.errors as exc:
                if self._backend.closed:
                    raise ClientClosedError("the RedisBackend is closed") from exc
                now = loop.time()
                if failing_since is None:
                    failing_since = now
                left = failing_since + budget - now
                if left <= 0:
                    raise _Unreachable from exc
                attempt += 1
                logger.debug("%s: Redis failed (%s); trying again", self._name, exc)
                await asyncio.sleep(min(backoff(attempt), left))

    async def _forget(self, ticket: str, token: str) -> None:
        """Leave the queue, and give back a slot granted to this acquire but never used."""
        failures: tuple[type[BaseException], ...] = (*self._backend.errors, asyncio.TimeoutError)
        try:
            async with self._backend.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.queue, ticket)
                pipe.zrem(self.keys.alive, ticket)
                # Only an unused grant can be here: the call never went out, so no stamp.
                pipe.zrem(self.keys.flight, token)
                # Bounded: a clean-up must not hold up a cancellation for long.
                await asyncio.wait_for(pipe.execute(), _FORGET_TIMEOUT)
        except failures as exc:
            # The ticket's deadline and the slot's lease clean up after us.
            logger.debug("%s: could not leave the queue (%s)", self._name, exc)

    # -- fallback ------------------------------------------------------------------------------

    def _fall_back(self, cause: BaseException | None) -> None:
        loop = asyncio.get_running_loop()
        self._retry_at = loop.time() + self._backend.reconnect_after
        if self._falling_back:
            logger.debug("%s: Redis is still unreachable (%s)", self._name, cause)
            return
        self._falling_back = True
        if self._local is None:
            self._local = LocalLimiter(RateLimit(calls=self.rate.calls, period=self.rate.period))
        message = (
            f"Redis at {self._backend.url} is unreachable ({type(cause).__name__}); the rate "
            f"limit of {self._name} now counts this process's calls only, until Redis is back "
            f"(tried again every {self._backend.reconnect_after:g} s)"
        )
        logger.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    async def _acquire_local(self, started: float) -> Permit:
        assert self._local is not None  # set by _fall_back before any use
        await self._local.acquire()
        token = _LOCAL + secrets.token_hex(8)
        self._local_in_flight.add(token)
        return Permit(waited=asyncio.get_running_loop().time() - started, token=token)

    def _carry_over(self) -> list[str]:
        """The fallback's calls as (token, age in µs, or -1 if in flight) for the script."""
        if self._local is None:
            return []
        now = asyncio.get_running_loop().time()
        entries: list[str] = []
        seen: dict[float, int] = {}
        for stamp in self._local.window.stamps(now):
            # A name made from the stamp itself: carried twice (two acquires found Redis back
            # at once), a call still counts once.
            seen[stamp] = seen.get(stamp, 0) + 1
            name = f"{_LOCAL}{self._instance}:{stamp!r}:{seen[stamp]}"
            entries += [name, str(max(0, int((now - stamp) * 1e6)))]
        for token in sorted(self._local_in_flight):
            entries += [token, "-1"]
        return entries


async def _shielded(awaitable: Any) -> Any:
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
