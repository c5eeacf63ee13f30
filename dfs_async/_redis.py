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
- Lost history. Redis can lose some or all of a key's history: a restart without persistence,
  a flush, a restart from an older snapshot, a failover to a replica that was behind, an
  eviction. A history missing stamps would allow a burst on top of calls just made. Each key
  has an epoch hash (an id, when it began, and a count of the scripts' writes) that never
  expires. Every worker remembers the epoch it saw last and the highest write count it saw in
  it. A missing epoch, or one whose count is below what a worker saw, is a lost history: a new
  epoch begins, and every worker that knew the old one pauses the key until
  ``max(period, lease)`` after the new one began. By then every lost stamp has left the window,
  and every lost call in flight has replied (its release stamps it again in the new history)
  or died.
- Redis unreachable: each acquire keeps trying for `retry_for` seconds (a restart or failover
  takes less), each try bounded by what is left, then raises `RedisUnavailableError`; or with
  ``fallback=True`` warns and limits that key in this process alone (a `LocalLimiter` seeded
  with this process's latest calls and those still in flight), trying Redis again every
  `reconnect_after` seconds and carrying the calls it made meanwhile over into the shared
  history. Errors that retrying cannot fix (wrong type, no permission, failed authentication)
  raise `RedisBackendError` at once, fallback or not.

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
import enum
import functools
import hashlib
import logging
import math
import re
import secrets
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
    "RedisBackendError",
    "RedisLimiter",
    "RedisUnavailableError",
    "Verdict",
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

# The shortest time one try of a Redis command gets, even when less of the budget is left.
_MIN_TRY = 0.05

# Redis's error replies that mean "not now" rather than "never": a replica promoted or still
# loading, a cluster slot moving.
_TRANSIENT_REPLIES = ("LOADING", "READONLY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")

# Both scripts start with this: which history is this, and is it the one the worker knew?
# Times are whole microseconds of Redis's clock: below 2**53 they are exact in Lua's doubles,
# in sorted-set scores, and in the integers a script returns.
_HISTORY_LUA = """
-- Redis's clock, not the worker's: every host agrees on "now" whatever its own clock says.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- The epoch hash: id, at (when this history began), writes (how many script runs wrote to
-- it). It never expires, and every run of either script counts one write.
local epoch = redis.call('HGET', KEYS[EPOCH], 'id')
local writes = tonumber(redis.call('HGET', KEYS[EPOCH], 'writes') or '0')
if not epoch or (ARGV[SEEN] == epoch and tonumber(ARGV[SEEN + 1]) > writes) then
  -- No epoch (this key's first use, or Redis lost everything), or fewer writes than this
  -- worker saw (a restart from an older snapshot, a replica that was behind, keys evicted):
  -- a new history begins now. Whatever it lacks is older than now.
  epoch = ARGV[SEEN + 2]
  redis.call('HSET', KEYS[EPOCH], 'id', epoch, 'at', now, 'writes', 0)
end
writes = redis.call('HINCRBY', KEYS[EPOCH], 'writes', 1)
"""

# The acquire script.
ACQUIRE_LUA = (
    """
-- KEYS: 1 done   zset  token -> reply stamp     (finished calls)
--       2 flight zset  token -> lease end       (calls in flight)
--       3 queue  zset  ticket -> arrival order  (waiters, first come first served)
--       4 alive  zset  ticket -> deadline       (when a silent waiter counts as dead)
--       5 pause  string, exists while every call must wait (40202, lost history)
--       6 epoch  hash   id, at, writes: which history this is; never expires
-- ARGV: 1 calls  2 period  3 lease  4 how long idle keys are kept (ms)  5 ticket
--       6 order ('' for a new waiter)  7 token
--       8 epoch the worker saw last ('' if none)  9 the most writes it saw in it
--       10 id for a new epoch
--       11.. pairs (token, age or -1): calls a worker made while Redis was away
-- Arguments arrive as strings; every time and duration is in microseconds.
local calls = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
-- How long a waiter's ticket outlives the moment it said it would ask again.
local grace = GRACE
"""
    + _HISTORY_LUA.replace("KEYS[EPOCH]", "KEYS[6]").replace("ARGV[SEEN", "ARGV[8")
    + """
local lost = 0
if ARGV[8] ~= '' and ARGV[8] ~= epoch then
  -- This worker knew another history, so it was lost. Every lost stamp is older than the new
  -- epoch, so all have left the window a period after it began; every lost call in flight
  -- started before it, so within a lease it has replied (its release stamps it again, in
  -- this history) or died. Pause until both hold.
  lost = 1
  local at = tonumber(redis.call('HGET', KEYS[6], 'at'))
  local ms = math.ceil((at + math.max(period, lease) - now) / 1000)
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
for i = 11, #ARGV - 1, 2 do
  local age = tonumber(ARGV[i + 1])
  if age >= 0 then
    -- NX: a stamp already here (its release, or an earlier carry) stays as it is.
    redis.call('ZADD', KEYS[1], 'NX', now - age, ARGV[i])
  elseif not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    -- Unless its release got here first: then it is finished, and in flight no more.
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

-- Kinds: 0 go, 1 wait for a stamp to leave the window, 2 wait for a call in flight, 3 paused.
local kind
local wait
local paused = redis.call('PTTL', KEYS[5])
if redis.call('ZSCORE', KEYS[2], ARGV[7]) then
  -- This token already holds a slot: an earlier try of this same acquire was granted but its
  -- reply was lost on the way. Granting again is what makes retrying safe; a pause that began
  -- since does not take the slot back (the worker would hold it, unused, for a lease).
  kind = 0
elseif paused > 0 then
  -- Paused: everyone waits out the pause (PTTL is in ms), then asks again in queue order.
  kind = 3
  wait = paused * 1000
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
-- Idle keys vanish once nothing in them can matter any more: a lease ends, its stamp leaves
-- the window a period later, a waiter's ticket outlives its wait by the grace.
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], keep)
end
return {kind, wait, order, epoch, lost, writes}
"""
).replace("GRACE", str(round(GRACE * 1_000_000)))

# The release script: the call's reply arrived (or it failed), stamp it now.
RELEASE_LUA = (
    """
-- KEYS: 1 done  2 flight  3 epoch
-- ARGV: 1 token  2 how long to keep the key (ms)  3 epoch the worker saw last
--       4 the most writes it saw in it  5 id for a new epoch
"""
    + _HISTORY_LUA.replace("KEYS[EPOCH]", "KEYS[3]").replace("ARGV[SEEN", "ARGV[3")
    + """
-- No longer in flight ...
redis.call('ZREM', KEYS[2], ARGV[1])
-- ZADD, not a move: it also stamps a call whose lease already ran out (the later stamp, now,
-- is the safe one) or whose entry Redis lost meanwhile (the stamp comes back).
redis.call('ZADD', KEYS[1], now, ARGV[1])
-- Kept until this stamp (and any lease) can no longer matter.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
-- A new epoch begun here is noticed by the worker's next acquire, which pauses the key.
return {epoch, writes}
"""
)


class RedisBackendError(DataForSEOError):
    """Redis could not be used for the shared rate limit; `url` has no password in it.

    Raised as is when Redis refused a command for a reason that retrying cannot fix (a key of
    the wrong type, no permission, failed authentication); see `RedisUnavailableError` for an
    unreachable Redis.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class RedisUnavailableError(RedisBackendError):
    """Redis could not be reached for the whole `retry_for`; `url` has no password in it."""


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

    @property
    def release(self) -> list[str]:
        """The keys in the order the release script takes them."""
        return [self.done, self.flight, self.epoch]


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


class Verdict(enum.IntEnum):
    """What the acquire script decided (the codes it returns)."""

    #: Take the slot.
    GO = 0
    #: Wait until a stamp has left the window.
    STAMP = 1
    #: Wait a period for a call in flight (a lower bound: ask again then).
    IN_FLIGHT = 2
    #: Every call waits out a pause (a 40202, or a lost history).
    PAUSED = 3


@attrs.frozen(kw_only=True)
class Decision:
    """What the acquire script answered."""

    kind: Verdict
    #: Seconds to sleep before asking again (0.0 with GO).
    wait: float
    #: The waiter's place in the queue, to keep it when asking again.
    order: int
    #: The history the script saw.
    epoch: str
    #: Whether the worker had seen another history: Redis lost it.
    lost: bool
    #: How many writes that history has had, this one included.
    writes: int


def parse_decision(reply: object) -> Decision:
    """The acquire script's reply ``[kind, wait_us, order, epoch, lost, writes]``."""
    if not isinstance(reply, list) or len(reply) != 6:
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    kind, wait, order, epoch, lost, writes = reply
    if not (
        isinstance(kind, int)
        and kind in set(Verdict)
        and isinstance(wait, int)
        and isinstance(order, int)
        and isinstance(epoch, bytes)
        and isinstance(lost, int)
        and isinstance(writes, int)
    ):
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    return Decision(
        kind=Verdict(kind),
        wait=wait / 1_000_000,
        order=order,
        epoch=epoch.decode(),
        lost=bool(lost),
        writes=writes,
    )


class _Unreachable(Exception):
    """Redis failed for the whole retry budget; `__cause__` is the last error."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        #: How long it was tried.
        self.seconds = seconds


def _check_seconds(name: str, value: float, *, zero: bool = False) -> float:
    # Not _ratelimit's attrs validators: those raise a plain ValueError for attrs fields.
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


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


class RedisBackend:
    """Rate limiters shared by every process using the same Redis `url` and `prefix`.

    ``async with RedisBackend(url) as shared, Client(limiter=shared) as client:``; the client
    never closes it. Every worker sharing an account must use the same `RateLimit` (asking
    one backend for a key's limiter with another `RateLimit` is an `InvalidArgumentError`).

    - `lease`: how long a call in flight holds its slot if its worker dies; keep it above the
      client's `timeout` (120 s by default). A lost history also pauses the key this long.
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
        self.url = redact_url(url)
        self.prefix = prefix
        self.fallback = bool(fallback)
        self.lease = _check_seconds("lease", lease)
        self.retry_for = _check_seconds("retry_for", retry_for, zero=True)
        self.reconnect_after = _check_seconds("reconnect_after", reconnect_after)
        self.socket_timeout = _check_seconds("socket_timeout", socket_timeout)
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
        self._limiters: dict[str, RedisLimiter] = {}
        # Sleeping acquires, woken at once by aclose().
        self._sleepers: set[asyncio.Future[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<dfs_async.RedisBackend {self.url} prefix={self.prefix!r} {state}>"

    @staticmethod
    def redacted(url: str) -> str:
        """`url` as a backend shows it: any password replaced by ``***``."""
        return redact_url(url)

    @property
    def redis(self) -> Redis:
        """The redis-py client (for tests and diagnostics)."""
        return self._redis

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

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the connections to Redis; waiting acquires raise `ClientClosedError`."""
        if self._closed:
            return
        self._closed = True
        for waker in list(self._sleepers):
            _wake(waker)
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
        #: For messages: the endpoint, never the login.
        self.name = key.partition(":")[2] or self.keys.done.rpartition(":")[0]
        self._period_us = _microseconds(rate.period)
        self._lease_us = _microseconds(backend.lease)
        # How long idle keys are kept: a lease, then its stamp's period, then a ticket's grace.
        self._keep_ms = math.ceil((rate.period + backend.lease + GRACE) * 1000)
        # The history this limiter last saw in Redis ('' before its first call), and the most
        # writes it saw in it: a history with fewer lost some.
        self._epoch = ""
        self._writes = 0
        # Every permit handed out and not yet released, with the fallback limiters that count
        # it as in flight (and must hear of its release).
        self._in_flight: dict[str, list[LocalLimiter]] = {}
        # Reply stamps (loop time) of this process's latest calls, to seed a fallback limiter.
        self._recent: deque[float] = deque(maxlen=rate.calls)
        # The fallback's finished calls (token -> reply stamp) not yet carried over to Redis,
        # and its calls in flight that were: their release must reach Redis.
        self._local_done: dict[str, float] = {}
        self._carried: set[str] = set()
        # The fallback: a LocalLimiter, made anew each time Redis is given up on.
        self._local: LocalLimiter | None = None
        self._falling_back = False
        self._retry_at = -math.inf
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
        backend = self._backend
        backend.check_open()
        loop = asyncio.get_running_loop()
        started = loop.time()
        smoothed = False
        if self._smoothing is not None:
            smoothed = not self._smoothing.has_capacity()
            await self._smoothing.acquire()
        if self._falling_back and loop.time() < self._retry_at:
            return await self._acquire_local(started)
        # Falling back, one quick try says whether Redis is back; otherwise ride out a restart.
        budget = 0.0 if self._falling_back else backend.retry_for
        try:
            token, slept = await self._acquire_shared(budget)
        except _Unreachable as exc:
            cause = exc.__cause__
            if not backend.fallback:
                raise RedisUnavailableError(
                    f"Redis at {backend.url} is unreachable "
                    f"({type(cause).__name__}, tried for {round(exc.seconds, 1):g} s); pass "
                    "fallback=True to RedisBackend to fall back to a per-process rate limit",
                    url=backend.url,
                ) from cause
            self._fall_back(cause)
            return await self._acquire_local(started)
        self._in_flight[token] = []
        # A slot granted at once did not wait for the rate limit, whatever the round trip took.
        waited = loop.time() - started if slept or smoothed else 0.0
        return Permit(waited=waited, token=token)

    async def release(self, permit: Permit) -> None:
        token = permit.token
        if token is None:
            raise RuntimeError("release() of a permit this limiter did not hand out")
        now = asyncio.get_running_loop().time()
        self._recent.append(now)
        for local in self._in_flight.pop(token, []):
            await local.release(permit)
        if token.startswith(_LOCAL):
            self._local_done[token] = now
            if self._falling_back and token not in self._carried:
                # Redis never heard of this call: the next carry-over tells it.
                return
        # Always sent for a call carried over as in flight, even if the carry's reply has not
        # come yet: without it, that entry would hold a slot for a lease and a period.
        self._carried.discard(token)
        backend = self._backend
        budget = 0.0 if self._falling_back else backend.retry_for
        try:
            reply = await self._retrying(
                budget,
                lambda: backend.release_script(
                    keys=self.keys.release,
                    args=[token, self._keep_ms, self._epoch, self._writes, secrets.token_hex(8)],
                ),
            )
        except _Unreachable as exc:
            # Not raised: the call already happened. Its lease stamps it later, which is safe.
            logger.warning(
                "%s: could not stamp a call in Redis at %s (%s); it holds its slot until its "
                "lease ends (%g s)",
                self.name,
                backend.url,
                exc.__cause__,
                backend.lease,
            )
        except RedisBackendError as exc:
            logger.error("%s: could not stamp a call: %s", self.name, exc)
        else:
            epoch, writes = reply
            # Another epoch: the next acquire sends the old one, and so pauses the key.
            if epoch.decode() == self._epoch:
                self._writes = max(self._writes, int(writes))

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
        except (_Unreachable, RedisBackendError) as exc:
            logger.warning(
                "%s: could not pause the other workers through Redis at %s (%s)",
                self.name,
                self._backend.url,
                exc.__cause__ or exc,
            )

    # -- shared --------------------------------------------------------------------------------

    def acquire_args(self, ticket: str, order: str, token: str, carry: list[str]) -> list[str]:
        """The acquire script's arguments (see ACQUIRE_LUA)."""
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
            *carry,
        ]

    async def _acquire_shared(self, budget: float) -> tuple[str, bool]:
        """Wait for a slot in Redis; its token, and whether it slept. `_Unreachable` if not."""
        backend = self._backend
        ticket = secrets.token_hex(8)
        token = secrets.token_hex(8)
        order = ""
        carry, carried_done = self._carry_over() if self._falling_back else ([], [])
        slept = False
        granted = False
        try:
            while True:
                args = self.acquire_args(ticket, order, token, carry)
                reply = await self._retrying(
                    budget, functools.partial(backend.acquire_script, self.keys.acquire, args)
                )
                decision = parse_decision(reply)
                # In Redis now (NX there keeps a stamp its release wrote meanwhile).
                for done in carried_done:
                    self._local_done.pop(done, None)
                carry, carried_done = [], []
                if self._falling_back:
                    self._falling_back = False
                    logger.warning(
                        "%s: Redis at %s is back; the rate limit is shared again",
                        self.name,
                        backend.url,
                    )
                if decision.lost:
                    logger.warning(
                        "%s: Redis at %s lost the rate limit's history (restarted without "
                        "persistence or from an older snapshot, flushed, failed over, or keys "
                        "evicted); calls wait until %g s after the loss",
                        self.name,
                        backend.url,
                        max(self.rate.period, backend.lease),
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
                await backend.sleep(max(decision.wait, 0.001))
                backend.check_open()
        except BaseException as exc:
            # Cancelled, failed or given up while queued: leave the queue, and give back a slot
            # the script may have granted in a reply we never read. (A closed backend cannot:
            # using its client again would open a new connection.)
            if not granted and not backend.closed:
                # Given up on Redis, this try is a courtesy: keep it short.
                unreachable = isinstance(exc, _Unreachable)
                await self._forget(ticket, token, _MIN_TRY if unreachable else _FORGET_TIMEOUT)
            raise

    async def _retrying(self, budget: float, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run `command()` until it succeeds or `budget` seconds have passed since the first try.

        Each try is bounded by what is left of the budget; a budget of 0 (a quick check while
        falling back) is one try, bounded by the socket timeout. Errors that retrying cannot
        fix raise `RedisBackendError` at once.
        """
        backend = self._backend
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + budget
        attempt = 0
        while True:
            backend.check_open()
            limit = max(deadline - loop.time(), _MIN_TRY) if budget else backend.socket_timeout
            try:
                return await _shielded(asyncio.wait_for(command(), limit))
            except Exception as exc:
                if backend.closed:
                    raise ClientClosedError("the RedisBackend is closed") from exc
                if not backend.transient(exc):
                    if not isinstance(exc, backend.redis_errors):
                        raise
                    raise RedisBackendError(
                        f"Redis at {backend.url} refused the rate limit's command "
                        f"({type(exc).__name__}: {exc})",
                        url=backend.url,
                    ) from exc
                now = loop.time()
                left = deadline - now
                if left <= 0:
                    raise _Unreachable(now - started) from exc
                attempt += 1
                logger.debug("%s: Redis failed (%r); trying again", self.name, exc)
                await backend.sleep(min(backoff(attempt), left))

    async def _forget(self, ticket: str, token: str, limit: float) -> None:
        """Leave the queue, and give back a slot granted to this acquire but never used."""
        # redis_errors has OSError, and so asyncio's TimeoutError (wait_for ran out).
        failures = self._backend.redis_errors
        try:
            async with self._backend.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self.keys.queue, ticket)
                pipe.zrem(self.keys.alive, ticket)
                # Only an unused grant can be here: the call never went out, so no stamp.
                pipe.zrem(self.keys.flight, token)
                # Bounded: a clean-up must not hold up a cancellation (or a give-up) for long.
                await asyncio.wait_for(pipe.execute(), min(limit, self._backend.socket_timeout))
        except failures as exc:
            # The ticket's deadline and the slot's lease clean up after us.
            logger.debug("%s: could not leave the queue (%r)", self.name, exc)

    # -- fallback ------------------------------------------------------------------------------

    def _fall_back(self, cause: BaseException | None) -> None:
        loop = asyncio.get_running_loop()
        self._retry_at = loop.time() + self._backend.reconnect_after
        if self._falling_back:
            logger.debug("%s: Redis is still unreachable (%r)", self.name, cause)
            return
        self._falling_back = True
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
        self._local = local
        message = (
            f"Redis at {self._backend.url} is unreachable ({type(cause).__name__}); the rate "
            f"limit of {self.name} now counts this process's calls only, until Redis is back "
            f"(tried again every {self._backend.reconnect_after:g} s)"
        )
        logger.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    async def _acquire_local(self, started: float) -> Permit:
        local = self._local
        assert local is not None  # set by _fall_back before any use
        await local.acquire()
        token = _LOCAL + secrets.token_hex(8)
        self._in_flight[token] = [local]
        return Permit(waited=asyncio.get_running_loop().time() - started, token=token)

    def _carry_over(self) -> tuple[list[str], list[str]]:
        """The fallback's calls as (token, age in µs, or -1 if in flight) for the script, and
        the finished ones among them."""
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
            if token.startswith(_LOCAL):
                entries += [token, "-1"]
                # From now on, Redis may hold it in flight: its release must go there.
                self._carried.add(token)
        return entries, done


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
