"""The rate limiter: never more than `calls` calls in any rolling `period`, at full speed.

Strategy (a sliding log, counted the way the server can see calls):
- The server counts a call at some moment between our send and its reply. We stamp each call
  when its reply has arrived (or it failed), the latest moment the server can have counted it,
  and let a new call start only once it is at least `period` after the stamp of the call
  `calls` places before it. Since a server stamp is never later than our stamp and never
  earlier than our send, any two calls `calls` apart are then at least `period` apart as the
  server counts them, whatever the network's delays, and whether the server's window is rolling
  or a calendar minute.
- Calls in flight hold a slot: their stamp is not known yet, so they count as "now or later".
- After idle time the whole quota is free at once (a burst of `calls`), and a long stream runs
  at exactly `calls` per `period`. A leaky bucket such as ``aiolimiter.AsyncLimiter(10, 60)``
  does not give this guarantee: it lets 10 through at once and then one every 6 s, so 19
  calls fall within the first minute. Here aiolimiter serves only to *smooth* bursts when a
  smaller `burst` is asked for; the sliding log remains the guarantee.
- `pause()` (on a 40202 reply) blocks the endpoint for a whole `period`: then every call the
  server may still hold against us has left its window, whatever its count.

`SlidingWindow` is the arithmetic, with time passed in; `Limiter` waits on the event loop's
clock (``loop.time()``), so tests run minutes of limiting on a virtual clock.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import deque
from typing import Protocol

import aiolimiter
import attrs

__all__ = [
    "Limiter",
    "LimiterBackend",
    "LocalBackend",
    "LocalLimiter",
    "Permit",
    "RateLimit",
    "SlidingWindow",
    "default_backend",
]


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of at least 1, got {value!r}")


def _positive_float(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most `calls` calls in any rolling `period` seconds, per account and endpoint.

    `burst` caps how many calls may go at once after idle time (default: all of `calls`);
    below `calls`, calls are spread out by a leaky bucket as well.
    """

    calls: int = attrs.field(default=10, validator=_positive_int)
    period: float = attrs.field(default=60.0, validator=_positive_float)
    burst: int | None = attrs.field(default=None)

    @burst.validator
    def _check_burst(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None:
            _positive_int(self, attribute, value)  # type: ignore[arg-type]
            if value > self.calls:
                raise ValueError(f"burst must be at most calls ({self.calls}), got {value}")


class SlidingWindow:
    """The limiter's arithmetic over stamps; time is always passed in."""

    def __init__(self, calls: int, period: float) -> None:
        self.calls = calls
        self.period = period
        self._stamps: deque[float] = deque()
        self._in_flight = 0
        self._paused_until = -math.inf

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def stamps(self, now: float) -> list[float]:
        """The stamps that still count at `now`, oldest first."""
        self._expire(now)
        return list(self._stamps)

    def delay(self, now: float) -> float | None:
        """Seconds until a call may start (0.0: now), or ``None`` until a call in flight ends."""
        self._expire(now)
        if now < self._paused_until:
            return self._paused_until - now
        used = len(self._stamps) + self._in_flight
        if used < self.calls:
            return 0.0
        # The (used - calls + 1) oldest stamps must leave the window first.
        index = used - self.calls
        if index >= len(self._stamps):
            return None
        return self._stamps[index] + self.period - now

    def start(self) -> None:
        """A call starts (the caller checked that `delay(now)` is 0)."""
        self._in_flight += 1

    def finish(self, now: float) -> None:
        """A call's reply arrived (or the call failed) at `now`: stamp it."""
        if self._in_flight <= 0:
            raise RuntimeError("finish() without start()")
        self._in_flight -= 1
        # `now` only grows, so appending keeps the stamps sorted.
        self._stamps.append(now)

    def pause(self, now: float) -> None:
        """The server refused a call for the quota: no call for a whole period."""
        self._paused_until = max(self._paused_until, now + self.period)

    def _expire(self, now: float) -> None:
        horizon = now - self.period
        stamps = self._stamps
        while stamps and stamps[0] <= horizon:
            stamps.popleft()


@attrs.frozen(kw_only=True)
class Permit:
    """One call's slot, from `Limiter.acquire` until `Limiter.release`."""

    #: Seconds the call waited for its slot.
    waited: float
    #: Whatever the limiter needs to find the slot again (the Redis limiter's entry name).
    token: str | None = None


class Limiter(Protocol):
    """What the client needs of a limiter; one instance per account and endpoint."""

    async def acquire(self) -> Permit:
        """Wait for a slot (a non-blocking, cancellable await)."""

    async def release(self, permit: Permit) -> None:
        """The call holding `permit` got its reply (or failed): stamp it now."""

    async def pause(self) -> None:
        """The server refused a call for the quota: hold every call for a period."""


class LimiterBackend(Protocol):
    """Makes the limiter for one key (account and endpoint)."""

    def limiter(self, key: str, rate: RateLimit) -> Limiter: ...


class LocalLimiter:
    """The in-process limiter: a `SlidingWindow` driven by the event loop's clock.

    Waiters are served first come, first served: a lock queues them (asyncio locks wake
    waiters in order), and only the waiter at the head watches the clock.
    """

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self.window = SlidingWindow(rate.calls, rate.period)
        self._queue = asyncio.Lock()
        self._finished = asyncio.Event()
        burst = rate.burst if rate.burst is not None else rate.calls
        self._smoothing = (
            aiolimiter.AsyncLimiter(burst, burst * rate.period / rate.calls)
            if burst < rate.calls
            else None
        )

    async def acquire(self) -> Permit:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._smoothing is not None:
            await self._smoothing.acquire()
        async with self._queue:
            while True:
                now = loop.time()
                delay = self.window.delay(now)
                if delay == 0.0:
                    self.window.start()
                    return Permit(waited=loop.time() - started)
                if delay is None:
                    # Every slot is held by a call in flight: wait for one to finish.
                    self._finished.clear()
                    await self._finished.wait()
                else:
                    await asyncio.sleep(delay)

    async def release(self, permit: Permit) -> None:
        self.window.finish(asyncio.get_running_loop().time())
        self._finished.set()

    async def pause(self) -> None:
        self.window.pause(asyncio.get_running_loop().time())


class LocalBackend:
    """In-process limiters: one per key and rate, shared by everything using this backend.

    asyncio primitives belong to one event loop, so each loop has its own set.
    """

    def __init__(self) -> None:
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, RateLimit], LocalLimiter]
        ] = weakref.WeakKeyDictionary()

    def limiter(self, key: str, rate: RateLimit) -> LocalLimiter:
        mine = self._limiters.setdefault(asyncio.get_running_loop(), {})
        found = mine.get((key, rate))
        if found is None:
            found = mine[key, rate] = LocalLimiter(rate)
        return found


_DEFAULT = LocalBackend()


def default_backend() -> LocalBackend:
    """The process-wide backend that clients use unless given another."""
    return _DEFAULT
