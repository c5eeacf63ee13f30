"""The retry policy: how long to wait before each new try, for every caller that retries.

One backoff for the whole package: `full_jitter`. The client waits `Retry.backoff` between
tries of a call; `RedisBackend` waits the same function, with its own bounds, between tries
of an unreachable Redis. Full jitter (a uniform draw between 0 and an exponentially growing
bound) is what keeps callers that failed together from trying again together: a deterministic
backoff sends every worker that lost Redis in the same second back to it in the same
millisecond, again and again.

What is retried is not decided here but on each error: `DataForSEOError.retryable` (True for
transport trouble, a body that is not JSON, rate limits and server errors). The client retries
exactly the errors that say so, so a caller reads the same decision on the error it gets.

Pure arithmetic: the caller passes the random draw (from its own `random.Random`, so tests
seed it) and does the waiting on the event loop's clock.
"""

from __future__ import annotations

import attrs

from ._checks import attrs_validator, number, seconds, whole

__all__ = ["Retry", "full_jitter"]


def full_jitter(
    attempt: int, draw: float, *, initial: float, multiplier: float, maximum: float
) -> float:
    """The wait after failed try number `attempt` (1-based), for a `draw` in [0, 1).

    A uniform share `draw` of the bound ``min(maximum, initial * multiplier ** (attempt - 1))``,
    so always between 0 and `maximum`.
    """
    # The exponent stops growing once the bound is at the cap: a float power of a large
    # attempt number would overflow long before a caller gives up.
    bound = initial
    for _ in range(attempt - 1):
        if bound >= maximum:
            break
        bound *= multiplier
    return draw * min(maximum, bound)


@attrs.frozen(kw_only=True)
class Retry:
    """How a call that failed for a transient reason is tried again.

    Waits grow exponentially from `initial` by `multiplier` up to `maximum`, with full jitter
    (a uniform draw between 0 and that bound, see `full_jitter`), so workers that failed
    together do not retry together. A call gives up after `attempts` tries or once the next
    wait would take it past `deadline` seconds from its first try, whichever comes first.
    Waiting for the rate limiter counts toward the deadline, not toward the attempts' waits.
    """

    attempts: int = attrs.field(default=8, validator=attrs_validator(whole, minimum=1))
    deadline: float = attrs.field(default=900.0, validator=attrs_validator(seconds, zero=True))
    initial: float = attrs.field(default=1.0, validator=attrs_validator(seconds, zero=True))
    maximum: float = attrs.field(default=60.0, validator=attrs_validator(seconds, zero=True))
    multiplier: float = attrs.field(default=2.0, validator=attrs_validator(number, minimum=1))

    def backoff(self, attempt: int, draw: float) -> float:
        """The wait after failed try number `attempt` (1-based), for a `draw` in [0, 1)."""
        return full_jitter(
            attempt,
            draw,
            initial=self.initial,
            multiplier=self.multiplier,
            maximum=self.maximum,
        )
