"""The pager: an async iterator over a stream's records, driven by the pure paging rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ._convert import format_datetime
from ._errors import ClientClosedError
from ._models import Page, TaskError, TaskId
from ._pagination import PageRequest, PagerState, StreamCursor, record_key
from ._protocol import Reply

if TYPE_CHECKING:
    from types import TracebackType

    from ._client import Client

__all__ = ["Pager"]

R = TypeVar("R", TaskId, TaskError)

logger = logging.getLogger("dfs_async")


class Pager(AsyncIterator[R], Generic[R]):
    """An async iterator over every record of a stream, fetched a page at a time.

    ``async for record in pager`` yields records; ``async for page in pager.pages()`` yields
    :class:`Page` objects instead. A pager is single-use. `state` is the position to resume
    from (``resume=pager.state``). Breaking out of the loop leaves at most one prefetched call
    behind; ``async with pager`` (or ``contextlib.aclosing``) releases it at once.
    """

    def __init__(
        self,
        *,
        client: Client,
        record_type: type[R],
        state: PagerState,
        fix_datetime_to: Callable[[], str] | None,
    ) -> None:
        self._client = client
        self._record_type: type[R] = record_type
        self._initial = state
        self._fix_datetime_to = fix_datetime_to
        self._cursor: StreamCursor | None = None
        self._records: AsyncGenerator[R, None] | None = None
        self._pages: AsyncGenerator[Page[R], None] | None = None

    def __repr__(self) -> str:
        state = self.state if self._cursor is not None else self._initial
        return (
            f"<Pager /v3/{state.api}/{state.function} offset={state.offset} "
            f"yielded={state.yielded}{' done' if state.done else ''}>"
        )

    @property
    def state(self) -> PagerState:
        """Where the stream stands: pass it back as ``resume=`` to continue after a stop.

        It always reflects the records already handed to the consumer. Read before the first
        record, it fixes an open-ended window (``datetime_to=None``) at the current time.
        """
        return self._start().snapshot()

    def __aiter__(self) -> Pager[R]:
        return self

    async def __anext__(self) -> R:
        if self._records is None:
            if self._pages is not None:
                raise RuntimeError("this pager is being read with pages(); use one view only")
            self._records = self._iterate_records()
        return await self._records.__anext__()

    def pages(self) -> AsyncIterator[Page[R]]:
        """Iterate page by page instead of record by record."""
        if self._records is not None or self._pages is not None:
            raise RuntimeError("this pager is already being read; a pager is single-use")
        self._pages = self._iterate_pages()
        return self._pages

    async def aclose(self) -> None:
        """Stop the stream and release what it holds (a prefetched call). Idempotent."""
        for generator in (self._records, self._pages):
            if generator is not None:
                await generator.aclose()

    async def __aenter__(self) -> Pager[R]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _start(self) -> StreamCursor:
        if self._cursor is None:
            state = self._initial
            if self._fix_datetime_to is not None:
                # An open-ended window ends now, fixed once, so it cannot slide while we page.
                params = {**state.params, "datetime_to": self._fix_datetime_to()}
                state = attrs.evolve(state, params=params)
            self._cursor = StreamCursor(state)
        return self._cursor

    async def _iterate_records(self) -> AsyncGenerator[R, None]:
        cursor = self._start()
        driver = self._drive()
        try:
            async for page, keys in driver:
                for record, key in zip(page.records, keys, strict=True):
                    # Counted as delivered before the consumer gets it: a state saved while
                    # the consumer handles this record never hands it out again.
                    cursor.consume(key)
                    yield record
        finally:
            # Leaving an `async for` does not close the generator it read from: do it now,
            # so a prefetched call is cancelled here and not whenever GC gets to it.
            await driver.aclose()

    async def _iterate_pages(self) -> AsyncGenerator[Page[R], None]:
        cursor = self._start()
        driver = self._drive()
        try:
            async for page, keys in driver:
                for key in keys:
                    cursor.consume(key)
                yield page
        finally:
            await driver.aclose()

    async def _drive(self) -> AsyncGenerator[tuple[Page[R], list[str]], None]:
        client = self._client
        client._check_open()  # fail before anything else, not at the first network call
        cursor = self._start()
        state = cursor.state
        path = f"/v3/{state.api}/{state.function}"
        request = state.next_request()
        prefetched: asyncio.Task[Reply[R]] | None = None
        try:
            while request is not None:
                if prefetched is not None:
                    reply = await _prefetched_reply(client, prefetched)
                    prefetched = None
                else:
                    reply = await self._fetch(path, request)
                keys = [record_key(record) for record in reply.records]
                keep = cursor.begin_page(request, reply.received, keys)
                records = tuple(r for r, new in zip(reply.records, keep, strict=True) if new)
                new_keys = [k for k, new in zip(keys, keep, strict=True) if new]
                if reply.nulls:
                    logger.warning(
                        "%s offset=%d: %d null entries in result, skipped",
                        path,
                        request.offset,
                        reply.nulls,
                    )
                page = Page(
                    records=records,
                    offset=request.offset,
                    limit=request.limit,
                    received=reply.received,
                    duplicates=len(reply.records) - len(records),
                    task_id=reply.task_id,
                    cost=reply.cost,
                    time=reply.time,
                )
                if page.duplicates:
                    logger.info(
                        "%s offset=%d: dropped %d records already yielded (the list shifted)",
                        path,
                        request.offset,
                        page.duplicates,
                    )
                request = cursor.next_request_after_page()
                if request is not None and client.prefetch:
                    # Pipelining: the next page is on its way while the consumer handles this one.
                    prefetched = client._spawn(self._fetch(path, request))
                yield page, new_keys
                cursor.end_page()
        finally:
            if prefetched is not None:
                prefetched.cancel()
                await asyncio.gather(prefetched, return_exceptions=True)

    def _fetch(self, path: str, request: PageRequest) -> Coroutine[Any, Any, Reply[R]]:
        state = self._start().state
        task = {**state.params, "limit": request.limit, "offset": request.offset}
        return self._client._fetch(path, task, self._record_type)


async def _prefetched_reply(client: Client, task: asyncio.Task[Reply[R]]) -> Reply[R]:
    """Await a prefetched page; if `aclose()` cancelled it, say so instead of CancelledError."""
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        ours = current is not None and getattr(current, "cancelling", lambda: 0)() > 0
        if client.closed and task.cancelled() and not ours:
            raise ClientClosedError("the client was closed while this stream was running") from None
        raise


def fixed_now(now: Callable[[], Any]) -> Callable[[], str]:
    """A function giving the API form of the current time, for fixing open-ended windows."""
    return lambda: format_datetime(now())
