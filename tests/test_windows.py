"""Windows are checked as they are sent: to the whole second, as format_datetime writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

import dfs_async
from dfs_async.testing import Emulator

LOGIN = "user@example.com"
PASSWORD = "s3cret-Pa55word"
UTC = timezone.utc
# Half a second past midnight: the fraction is what the checks used to see and the API never.
NOW = datetime(2026, 12, 1, 0, 0, 0, 500_000, tzinfo=UTC)


def now() -> datetime:
    return NOW


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=50, n_errors=50, now=now) as emu:
        yield emu


def client_for(emu: Emulator) -> dfs_async.Client:
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, now=now)


async def test_a_window_within_one_second_is_refused_before_any_call(emulator: Emulator) -> None:
    """From .2 s to .7 s of one second is empty once sent: refused, and no call is made."""
    start = datetime(2026, 11, 30, 12, 0, 0, 200_000, tzinfo=UTC)
    end = start + timedelta(microseconds=500_000)
    async with client_for(emulator) as client:
        for make in (
            lambda: client.backlinks.id_list(start, end),
            lambda: client.backlinks.errors(datetime_from=start, datetime_to=end),
        ):
            with pytest.raises(dfs_async.InvalidArgumentError) as info:
                make()
            assert str(info.value) == (
                "datetime_from (2026-11-30 12:00:00 +00:00) must be before datetime_to "
                "(2026-11-30 12:00:00 +00:00): the API takes whole seconds, and both fall "
                "in the same one"
            )
    assert emulator.requests == []


async def test_a_start_within_the_current_second_is_refused_before_any_call(
    emulator: Emulator,
) -> None:
    """A start a fraction before now, with the end left open, is the same empty second."""
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.InvalidArgumentError) as info:
            client.backlinks.id_list(NOW - timedelta(microseconds=300_000))
    assert str(info.value) == (
        "datetime_from (2026-12-01 00:00:00 +00:00) must be before datetime_to "
        "(2026-12-01 00:00:00 +00:00): the API takes whole seconds, and both fall in the same one"
    )
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("metadata", "edge", "reach"),
    [
        (False, datetime(2026, 6, 1, 0, 0, 0, 700_000, tzinfo=UTC), "six months"),
        (
            True,
            datetime(2026, 11, 1, 0, 0, 0, 700_000, tzinfo=UTC),
            "one month (the limit with include_metadata=True)",
        ),
    ],
)
async def test_a_start_a_fraction_inside_the_reach_is_refused_before_any_call(
    emulator: Emulator, metadata: bool, edge: datetime, reach: str
) -> None:
    """0.2 s inside the six-month (one-month) edge is 0.5 s outside it once sent: refused."""
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.InvalidArgumentError) as info:
            client.backlinks.id_list(edge, include_metadata=metadata)
    day = edge.strftime("%Y-%m-%d")
    assert str(info.value) == (
        f"datetime_from ({day} 00:00:00 +00:00) is more than {reach} ago; the earliest the API "
        f"accepts now is {day} 00:00:01 +00:00"
    )
    assert emulator.requests == []


async def test_the_errors_seven_day_edge_is_checked_as_sent(emulator: Emulator) -> None:
    """errors: 0.2 s inside the seven days is outside them once sent: refused, no call."""
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.InvalidArgumentError) as info:
            client.backlinks.errors(datetime_from=NOW - timedelta(days=7) + timedelta(seconds=0.2))
    assert str(info.value) == (
        "datetime_from (2026-11-24 00:00:00 +00:00) is more than 7 days ago; the earliest the "
        "API accepts now is 2026-11-24 00:00:01 +00:00"
    )
    assert emulator.requests == []


async def test_the_first_whole_second_inside_the_reach_is_accepted_by_both(
    emulator: Emulator,
) -> None:
    """The earliest start the message names, and an end a fraction past now, are served."""
    start = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
    end = NOW + timedelta(microseconds=300_000)  # sent as 00:00:00, which is not in the future
    async with client_for(emulator) as client:
        tasks = [task async for task in client.backlinks.id_list(start, end)]
    assert len(tasks) == len(emulator.expected_id_list(start, end)) > 0
    (request,) = emulator.requests
    assert request.status_code == 20000
    assert request.body[0]["datetime_from"] == "2026-06-01 00:00:01 +00:00"
    assert request.body[0]["datetime_to"] == "2026-12-01 00:00:00 +00:00"
