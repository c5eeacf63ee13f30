"""A server that does not page as asked ends the stream with a clear error, never a loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

import dfs_async
from dfs_async.testing import Emulator, Fault

LOGIN = "user@example.com"
PASSWORD = "s3cret-Pa55word"
ID_LIST = "/v3/backlinks/id_list"
NOW = datetime(2026, 12, 1, 0, 0, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=150)
END = NOW - timedelta(days=1)


def now() -> datetime:
    return NOW


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, now=now) as emu:
        yield emu


def client_for(emu: Emulator) -> dfs_async.Client:
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, now=now)


def expected_ids(emu: Emulator) -> list[str]:
    return [item["id"] for item in emu.expected_id_list(START, END)]


async def collect(stream: AsyncIterator[dfs_async.TaskId], into: list[str]) -> None:
    async for task in stream:
        into.append(task.id)


async def test_a_server_ignoring_offset_ends_the_stream_with_a_decode_error(
    emulator: Emulator,
) -> None:
    """The same first page on every call: its 1000 records once, then a DecodeError."""
    emulator.script({number: Fault.ignore_offset() for number in range(1, 30)})
    got: list[str] = []
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.DecodeError) as info:
            await collect(client.backlinks.id_list(START, END), got)
    assert got == expected_ids(emulator)[:1000]
    assert str(info.value) == (
        "the page at offset 1000 repeats 1000 records already yielded and nothing new: the "
        "server is not paging by offset (or the list grew at its head by a whole page); the "
        f"stream's state is just before this page ({ID_LIST})"
    )
    assert info.value.path == "$.tasks[0].result"
    assert info.value.endpoint == ID_LIST
    offsets = [request.body[0]["offset"] for request in emulator.requests]
    # The third call, sent ahead while the second page was being checked, was cancelled.
    assert offsets[:2] == [0, 1000]
    assert len(offsets) <= 3


async def test_a_reply_longer_than_its_limit_ends_the_stream_at_once(emulator: Emulator) -> None:
    """1000 records for limit 10: a DecodeError before any of them, and no further call."""
    emulator.inject(1, Fault.ignore_limit())
    got: list[str] = []
    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.DecodeError) as info:
            await collect(client.backlinks.id_list(START, END, page_size=10), got)
    assert got == []
    assert str(info.value) == (
        "the server sent 1000 records for limit 10 at offset 0: it is not paging as asked "
        f"({ID_LIST})"
    )
    assert info.value.path == "$.tasks[0].result"
    assert len(info.value.raw) > 100_000  # the whole reply, as for any decode error
    assert len(emulator.requests) == 1


async def test_one_ignored_offset_loses_nothing_and_resuming_finishes(emulator: Emulator) -> None:
    """One call answered from offset 0: the stream stops before that page, resume completes it."""
    emulator.inject(2, Fault.ignore_offset())
    got: list[str] = []
    async with client_for(emulator) as client:
        pager = client.backlinks.id_list(START, END)
        with pytest.raises(dfs_async.DecodeError, match="the page at offset 1000 repeats"):
            await collect(pager, got)
        assert (pager.state.offset, pager.state.yielded) == (1000, 1000)
        await collect(client.backlinks.id_list(resume=pager.state), got)
    assert got == expected_ids(emulator)
    assert len(got) == 2484  # three pages: the window ends a day before the clock
