"""The rate limit as the emulator plays it: a strict rolling window per path (pure, no clock).

The emulator is stricter than the limit needs to be, so a client that passes against it passes
against the API: a call is refused if `calls` accepted calls arrived less than `period` seconds
before it, whatever the calendar minute. Times are the event loop's, passed in.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Final

import attrs

__all__ = ["TIME_TOLERANCE", "RollingWindow", "max_calls_in_window"]

#: Two loop times closer than this count as equal: an exact period computed as `t - tau` in
#: floats may come out a few ulps short, and must still leave the window.
TIME_TOLERANCE: Final = 1e-7


@attrs.define
class RollingWindow:
    """Accepted arrival times per path; at most `calls` of them in any period-long window.

    Strategy: a request at loop time t is accepted iff fewer than `calls` accepted requests have
    arrival times tau with t - tau < period, i.e. in (t - period, t]. Times arrive in increasing
    order (the emulator reads them before its handler first awaits), so each path keeps a deque
    and drops from the left whatever has left the window.
    """

    calls: int
    period: float
    _times: dict[str, collections.deque[float]] = attrs.Factory(dict)

    def _current(self, path: str, now: float) -> collections.deque[float]:
        times = self._times.setdefault(path, collections.deque())
        while times and now - times[0] >= self.period - TIME_TOLERANCE:
            times.popleft()
        return times

    def try_acquire(self, path: str, now: float) -> bool:
        """Take a slot at `now` if the window has one; False (nothing taken) if it is full."""
        times = self._current(path, now)
        if len(times) >= self.calls:
            return False
        times.append(now)
        return True

    def force(self, path: str, now: float) -> None:
        """Take a slot at `now` even if the window is full (a faulted call the server took)."""
        self._current(path, now).append(now)

    def remaining(self, path: str, now: float) -> int:
        """How many calls the window would still accept at `now`."""
        return max(0, self.calls - len(self._current(path, now)))


def max_calls_in_window(times: Sequence[float], period: float) -> int:
    """The most of these increasing times inside any window (t - period, t]."""
    best = 0
    left = 0
    for right, now in enumerate(times):
        while now - times[left] >= period - TIME_TOLERANCE:
            left += 1
        best = max(best, right - left + 1)
    return best
