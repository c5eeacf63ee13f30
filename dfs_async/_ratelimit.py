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

from ._checks import attrs_validator, seconds, whole
from ._errors import InvalidArgumentError

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


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most `calls` calls in any rolling `period` seconds, per account and endpoint.

    `burst` caps how many calls may go at once after idle time (default: all of `calls`);
    below `calls`, calls are spread out by a leaky bucket as well.
    """

    calls: int = attrs.field(default=10, validator=attrs_validator(whole, minimum=1))
    period: float = attrs.field(default=60.0, validator=attrs_validator(seconds))
    burst: int | None = attrs.field(default=None)

    @burst.validator
    def _check_burst(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None:
            whole(attribute.name, value, minimum=1)
            if value > self.calls:
                raise InvalidArgumentError(
                    f"burst must be at most calls ({self.calls}), got {value}"
                )


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

    def handover(self, *, calls: int, period: float, now: float) -> SlidingWindow:
        """A window for another setting that starts from this one's history at `now`.

        It keeps the stamps still inside its own period and the pause; nothing is in flight
        in it (it is made when no call holds the old limiter).
        """
        successor = SlidingWindow(calls, period)
        successor._stamps.extend(self.stamps(now))
        successor._expire(now)
        successor._paused_until = self._paused_until
        return successor

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

    def __init__(self, rate: RateLimit, window: SlidingWindow | None = None) -> None:
        self.rate = rate
        if window is None:
            window = SlidingWindow(rate.calls, rate.period)
        elif (window.calls, window.period) != (rate.calls, rate.period):
            raise ValueError(
                f"the window counts {window.calls} per {window.period:g} s, not {rate}"
            )
        self.window = window
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


@attrs.define
class _Entry:
    """What a `LocalBackend` keeps of one key in one event loop."""

    #: Held strongly: the history outlives the limiters that wrote it.
    window: SlidingWindow
    #: Held weakly: only the clients (and calls) using the limiter keep it alive.
    limiter: weakref.ref[LocalLimiter]

    def idle(self, now: float) -> bool:
        """Nobody holds the limiter and nothing in its history still counts."""
        return (
            self.limiter() is None and self.window.delay(now) == 0.0 and not self.window.stamps(now)
        )


class LocalBackend:
    """In-process limiters: one per key (account and endpoint), shared by its clients.

    Strategy (one account, one quota):
    - Every client of an account in this process gets the key's one limiter, so together
      they keep the account's limit, whichever of them calls.
    - Two `RateLimit`s on one key are refused, as `RedisBackend` refuses them: a limiter per
      setting would let the account make the calls of both (20 a minute for two 10-per-60-s
      clients), and one sliding log under two settings would need a rule for whose `calls`,
      `period` and `burst` hold while calls admitted under the other are still in its window.
      So a client asking for a key's limiter with another `RateLimit` while one is alive gets
      an `InvalidArgumentError`, on its first call of that endpoint, before anything is sent.
    - Alive means held: the backend keeps only weak references to its limiters. A client
      holds its own until it is closed, and a call holds it while it runs, so a closed or
      dropped client does not block another setting for ever.
    - The history outlives its limiters: the backend keeps each key's window, and a limiter
      made after the last one died (with the same setting or another) starts from the stamps
      still in its period and any pause. A client opened right after another closed cannot
      add a burst on top of the calls just made.

    asyncio primitives belong to one event loop, so each loop has its own set. (Two loops in
    one process, each in its own thread, do not share a quota: use a `RedisBackend` there.)
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Entry]] = (
            weakref.WeakKeyDictionary()
        )

    def limiter(self, key: str, rate: RateLimit) -> LocalLimiter:
        """The limiter for `key` (``login:path``); `InvalidArgumentError` if one with another
        `RateLimit` is alive."""
        loop = asyncio.get_running_loop()
        entries = self._entries.setdefault(loop, {})
        entry = entries.get(key)
        window = None
        if entry is not None:
            alive = entry.limiter()
            if alive is not None and alive.rate == rate:
                return alive
            if alive is not None:
                refusal = (
                    f"{key.rpartition(':')[2]} is already limited at {alive.rate!r} by another "
                    f"client of this account in this process, not {rate!r}: every client of one "
                    "account must use the same RateLimit (or close the other client first)"
                )
                # The traceback keeps this frame's locals: it must not keep the limiter alive.
                del alive
                raise InvalidArgumentError(refusal)
            window = entry.window.handover(calls=rate.calls, period=rate.period, now=loop.time())
        else:
            # A new key: forget the keys nobody uses and whose history no longer counts, so a
            # long-lived process serving many accounts keeps only what matters.
            now = loop.time()
            for idle in [name for name, old in entries.items() if old.idle(now)]:
                del entries[idle]
        made = LocalLimiter(rate, window)
        entries[key] = _Entry(window=made.window, limiter=weakref.ref(made))
        return made


_DEFAULT = LocalBackend()


def default_backend() -> LocalBackend:
    """The process-wide backend that clients use unless given another."""
    return _DEFAULT
