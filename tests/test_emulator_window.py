"""The emulator's rolling window as pure functions, for arbitrary arrival times."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from dfs_async.testing._window import RollingWindow, max_calls_in_window

PATH = "/v3/backlinks/id_list"

# Gaps between arrivals: often zero (a burst) or tiny, sometimes whole periods.
gaps = st.lists(
    st.one_of(
        st.just(0.0), st.floats(min_value=0.0, max_value=100.0, allow_nan=False), st.just(60.0)
    ),
    max_size=60,
)


def arrivals(steps: Sequence[float]) -> list[float]:
    times: list[float] = []
    now = 0.0
    for step in steps:
        now += step
        times.append(now)
    return times


def in_window(times: Sequence[float], now: float, period: float) -> int:
    """How many of `times` lie in (now - period, now], counted one by one (the oracle)."""
    return sum(1 for tau in times if tau <= now and now - tau < period - 1e-7)


@given(
    steps=gaps, calls=st.integers(min_value=1, max_value=12), period=st.sampled_from([1.0, 60.0])
)
def test_the_window_never_admits_more_than_calls_in_any_period(
    steps: list[float], calls: int, period: float
) -> None:
    """Whatever the arrival times, no window of `period` holds more than `calls` accepted calls."""
    window = RollingWindow(calls, period)
    accepted = [now for now in arrivals(steps) if window.try_acquire(PATH, now)]
    assert all(in_window(accepted, now, period) <= calls for now in accepted)
    assert max_calls_in_window(accepted, period) <= calls


@given(
    steps=gaps, calls=st.integers(min_value=1, max_value=12), period=st.sampled_from([1.0, 60.0])
)
def test_the_window_refuses_only_when_full(steps: list[float], calls: int, period: float) -> None:
    """A call is refused iff `calls` accepted ones lie in the period before it; remaining agrees."""
    window = RollingWindow(calls, period)
    accepted: list[float] = []
    for now in arrivals(steps):
        held = in_window(accepted, now, period)
        assert window.remaining(PATH, now) == calls - held
        if window.try_acquire(PATH, now):
            assert held < calls
            accepted.append(now)
        else:
            assert held == calls


@given(steps=gaps, period=st.sampled_from([0.5, 1.0, 60.0]))
def test_max_calls_in_window_is_the_densest_window(steps: list[float], period: float) -> None:
    """The count over the log equals the largest count of any window ending at a call."""
    times = arrivals(steps)
    expected = max((in_window(times, now, period) for now in times), default=0)
    assert max_calls_in_window(times, period) == expected


def test_a_call_exactly_a_period_later_is_admitted_despite_float_error() -> None:
    """A call one period after the last, short by a few ulps (0.3 - 0.2 < 0.1), is admitted."""
    window = RollingWindow(1, 0.1)
    assert [window.try_acquire(PATH, now) for now in (0.2, 0.3)] == [True, True]
    assert window.try_acquire(PATH, 0.35) is False


def test_paths_have_windows_of_their_own_and_a_forced_call_counts() -> None:
    """A full id_list window leaves errors free; a forced call fills past the limit."""
    window = RollingWindow(2, 60.0)
    assert [window.try_acquire(PATH, t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert window.try_acquire("/v3/backlinks/errors", 2.0) is True
    window.force(PATH, 3.0)
    assert window.remaining(PATH, 3.0) == 0
    assert window.remaining(PATH, 60.0) == 0  # 1.0 and 3.0 are still inside
    assert window.remaining(PATH, 61.0) == 1  # 1.0 has left: (1.0, 61.0]
    assert window.remaining(PATH, 63.0) == 2
