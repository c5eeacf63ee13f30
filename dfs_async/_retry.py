"""The retry policy: which failures are tried again, and how long to wait before each try.

Pure arithmetic; the client does the waiting on the event loop's clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["Retry"]


def _at_least(minimum: float, *, whole: bool = False) -> Callable[[Any, Any, Any], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int if whole else (int, float))
            or not math.isfinite(value)
            or value < minimum
        ):
            kind = "a whole number" if whole else "a number"
            raise ValueError(
                f"{attribute.name} must be {kind} of at least {minimum}, got {value!r}"
            )

    return check


@attrs.frozen(kw_only=True)
class Retry:
    """How a call that failed for a transient reason is tried again.

    Waits grow exponentially from `initial` by `multiplier` up to `maximum`, with full jitter
    (a uniform draw between 0 and that bound), so workers that failed together do not retry
    together. A call gives up after `attempts` tries or once the next wait would take it past
    `deadline` seconds from its first try, whichever comes first. Waiting for the rate limiter
    counts toward the deadline, not toward the attempts' waits.
    """

    attempts: int = attrs.field(default=8, validator=_at_least(1, whole=True))
    deadline: float = attrs.field(default=900.0, validator=_at_least(0))
    initial: float = attrs.field(default=1.0, validator=_at_least(0))
    maximum: float = attrs.field(default=60.0, validator=_at_least(0))
    multiplier: float = attrs.field(default=2.0, validator=_at_least(1))

    def backoff(self, attempt: int, draw: float) -> float:
        """The wait after failed try number `attempt` (1-based), for a `draw` in [0, 1)."""
        bound = min(self.maximum, self.initial * self.multiplier ** (attempt - 1))
        return draw * bound
