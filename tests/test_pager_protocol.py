"""The pager driven through a fake of the `Calls` protocol: no HTTP, every call seen in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import pytest

import dfs_async
from dfs_async._calls import Calls
from dfs_async._pager import Pager
from dfs_async._pagination import PagerState
from dfs_async._protocol import RawPage

T = TypeVar("T")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
PATH = "/v3/backlinks/id_list"


def item(number: int) -> dict[str, Any]:
    """One id_list entry as the server sends it."""
    return {
        "id": f"task-{number:05d}",
        "url": f"https://example.com/{number}",
        "datetime_posted": "2026-11-01 00:00:00 +00:00",
        "datetime_done": None,
        "status": "Ok.",
        "cost": 0.0,
    }


class FakeCalls:
    """A list of `total` records behind the protocol, logging each call as it starts and ends.

    `held` offsets wait for `release(offset)` before they answer, so a test sees what the pager
    did while a call was in flight. `broken` offsets answer with a record that cannot decode.
    """

    def __init__(self, total: int, *, prefetch: int = 1, held: set[int] | None = None) -> None:
        self.total = total
        self.prefetch = prefetch
        self.log: list[str] = []
        self.broken: set[int] = set()
        self._held = {offset: asyncio.Event() for offset in held or ()}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def now(self) -> datetime:
        return NOW

    def release(self, offset: int) -> None:
        self._held[offset].set()

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _fetch(self, path: str, task: Mapping[str, Any]) -> RawPage:
        offset, limit = task["offset"], task["limit"]
        assert path == PATH
        self.log.append(f"send {offset}+{limit}")
        try:
            if offset in self._held:
                await self._held[offset].wait()
        except asyncio.CancelledError:
            self.log.append(f"cancelled {offset}")
            raise
        result: list[Any] = [item(n) for n in range(offset, min(offset + limit, self.total))]
        if offset in self.broken and result:
            result[-1] = {**result[-1], "cost": "free"}
        self.log.append(f"reply {offset}: {len(result)}")
        return RawPage(endpoint=path, task={"id": "t", "result": result}, result=result, text="")

    async def _call(
        self,
        path: str,
        body: bytes,
        read: Callable[[int, Mapping[str, str], bytes], T],
        *,
        label: str,
        done: Callable[[T], str],
    ) -> T:
        raise AssertionError("a pager makes no other call")

    async def aclose(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def pager(calls: Calls, *, page_size: int = 10, max_items: int | None = None) -> Pager[Any]:
    state = PagerState(
        api="backlinks",
        function="id_list",
        params={"datetime_from": "2026-11-01 00:00:00 +00:00"},
        page_size=page_size,
        max_items=max_items,
        offset=0,
        yielded=0,
        seen=(),
    )
    return Pager(client=calls, record_type=dfs_async.TaskId, state=state, fix_datetime_to=None)


async def test_the_fake_satisfies_the_protocol() -> None:
    """The fake and the real client are both `Calls` (mypy checks the assignments)."""
    fake: Calls = FakeCalls(0)
    async with dfs_async.Client("login", "password", base_url="https://example.com") as real:
        client: Calls = real
        assert fake.prefetch == client.prefetch == 1
        assert client.closed is False
    assert client.closed is True


async def test_calls_follow_the_cursor_and_a_short_page_ends_the_stream() -> None:
    """25 records in pages of 10: calls at 0, 10, 20 for 10 each, every record once, in order."""
    calls = FakeCalls(25)
    records = [record.id async for record in pager(calls)]
    assert records == [f"task-{n:05d}" for n in range(25)]
    assert [line for line in calls.log if line.startswith("send")] == [
        "send 0+10",
        "send 10+10",
        "send 20+10",
    ]


async def test_the_next_call_leaves_before_the_page_reaches_the_consumer() -> None:
    """Prefetch, no max_items: the call for offset 10 is sent before the first record is handed."""
    calls = FakeCalls(30, held={10})
    stream = pager(calls)
    first = await anext(stream)
    assert first.id == "task-00000"
    assert calls.log == ["send 0+10", "reply 0: 10", "send 10+10"]
    calls.release(10)
    rest = [record.id async for record in stream]
    assert len(rest) == 29
    assert calls.log[3:] == [
        "reply 10: 10",
        "send 20+10",
        "reply 20: 10",
        "send 30+10",
        "reply 30: 0",
    ]


async def test_the_early_call_leaves_before_the_records_are_built() -> None:
    """A page whose last record cannot decode: the next call was already sent, then cancelled."""
    calls = FakeCalls(30, held={10})
    calls.broken.add(0)
    with pytest.raises(dfs_async.DecodeError, match=r"result\[9\]\.cost"):
        await anext(pager(calls))
    assert calls.log == ["send 0+10", "reply 0: 10", "send 10+10", "cancelled 10"]


async def test_with_max_items_the_next_call_waits_for_the_records() -> None:
    """max_items: no early send; the records decide, then the next call leaves before the yield."""
    calls = FakeCalls(30, held={10})
    calls.broken.add(0)
    with pytest.raises(dfs_async.DecodeError):
        await anext(pager(calls, max_items=25))
    assert calls.log == ["send 0+10", "reply 0: 10"]

    calls = FakeCalls(30, held={10})
    stream = pager(calls, max_items=15)
    await anext(stream)
    await asyncio.sleep(0)  # the call spawned before the yield starts at the next loop turn
    assert calls.log == ["send 0+10", "reply 0: 10", "send 10+5"]
    calls.release(10)
    assert len([record async for record in stream]) == 14
    assert calls.log[3:] == ["reply 10: 5"]


async def test_without_prefetch_each_call_waits_for_the_consumer() -> None:
    """prefetch=0: the call for a page leaves only once the consumer asks past the last one."""
    calls = FakeCalls(20, prefetch=0)
    stream = pager(calls).pages()
    page = await anext(stream)
    assert (page.offset, len(page.records)) == (0, 10)
    assert calls.log == ["send 0+10", "reply 0: 10"]
    await anext(stream)
    assert calls.log[2:] == ["send 10+10", "reply 10: 10"]


async def test_aclose_cancels_the_prefetched_call() -> None:
    """Leaving after the first page: the call already sent for the next one is cancelled."""
    calls = FakeCalls(30, held={10})
    stream = pager(calls)
    await anext(stream)
    await stream.aclose()
    assert calls.log == ["send 0+10", "reply 0: 10", "send 10+10", "cancelled 10"]


async def test_a_call_cancelled_by_closing_the_client_is_client_closed() -> None:
    """The client closed while the consumer waits for a page: ClientClosedError, not a cancel."""
    calls = FakeCalls(30, held={10})
    stream = pager(calls)
    await anext(stream)
    for _ in range(9):
        await anext(stream)

    async def close_soon() -> None:
        await asyncio.sleep(0)
        await calls.aclose()

    closer = asyncio.create_task(close_soon())
    with pytest.raises(dfs_async.ClientClosedError, match="closed while this stream was running"):
        await anext(stream)
    await closer
    assert calls.log[-1] == "cancelled 10"


async def test_a_closed_client_fails_before_any_call() -> None:
    """A closed client's pager raises ClientClosedError at the first record, sending nothing."""
    calls = FakeCalls(30)
    await calls.aclose()
    with pytest.raises(dfs_async.ClientClosedError, match="the client is closed"):
        await anext(pager(calls))
    assert calls.log == []
