"""The pager: an async iterator over a stream's records, driven by the pure paging rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ._calls import Calls, ensure_open
from ._errors import ClientClosedError, DecodeError
from ._models import Page, TaskError, TaskId
from ._pagination import (
    PageRequest,
    PagerState,
    PagingError,
    StreamCursor,
    check_received,
    record_key,
)
from ._protocol import RawPage, decode_page

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Pager"]

R = TypeVar("R", TaskId, TaskError)

logger = logging.getLogger("dfs_async")


class Pager(AsyncIterator[R], Generic[R]):
    """An async iterator over every record of a stream, fetched a page at a time.

    ``async for record in pager`` yields records; ``async for page in pager.pages()`` yields
    :class:`Page` objects instead. A pager is single-use. `state` is the position to resume
    from (``resume=pager.state``). Breaking out of the loop is fine: the prefetched call is
    cancelled once the pager is garbage collected, quietly; ``async with pager`` (or
    ``contextlib.aclosing``) cancels it at once.

    It makes its calls through a `Calls` (the client), and only the pure `StreamCursor` decides
    which call comes next.
    """

    def __init__(
        self,
        *,
        client: Calls,
        record_type: type[R],
        state: PagerState,
        fix_datetime_to: Callable[[], str] | None,
    ) -> None:
        self._calls = client
        self._record_type: type[R] = record_type
        self._initial = state
        self._fix_datetime_to = fix_datetime_to
        self._cursor: StreamCursor | None = None
        # Strategy: the stream is one async generator, `_drive`, whichever view reads it. When a
        # consumer breaks out of its loop and drops the pager, asyncio closes the generators it
        # finds unreachable, each in a task of its own and in no set order: a generator that
        # closes another one it reads from (as a records view over a pages generator would)
        # then races that task and loses with "aclose(): asynchronous generator is already
        # running", reported as "Task exception was never retrieved". With one generator there
        # is nothing to race: its `finally` cancels the prefetched call and that is all.
        self._driver: AsyncGenerator[Page[R], None] | None = None
        self._view: str | None = None
        #: The records of the current page not handed over yet (records view).
        self._pending: Iterator[R] = iter(())

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
        driver = self._open("records")
        while True:
            record = next(self._pending, None)
            if record is not None:
                # Counted as delivered before the consumer gets it: a state saved while the
                # consumer handles this record never hands it out again.
                self._start().consume()
                return record
            page = await driver.__anext__()
            self._pending = iter(page.records)

    def pages(self) -> AsyncIterator[Page[R]]:
        """Iterate page by page instead of record by record."""
        if self._view is not None:
            raise RuntimeError("this pager is already being read; a pager is single-use")
        self._open("pages")
        return _Pages(self)

    async def _next_page(self) -> Page[R]:
        page = await self._open("pages").__anext__()
        cursor = self._start()
        for _ in page.records:
            cursor.consume()
        return page

    def _open(self, view: str) -> AsyncGenerator[Page[R], None]:
        if self._driver is None:
            self._view = view
            self._driver = self._drive()
        elif self._view != view:
            raise RuntimeError("this pager is being read with pages(); use one view only")
        return self._driver

    async def aclose(self) -> None:
        """Stop the stream and release what it holds (a prefetched call). Idempotent."""
        if self._driver is not None:
            await self._driver.aclose()

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

    async def _drive(self) -> AsyncGenerator[Page[R], None]:
        calls = self._calls
        ensure_open(calls)  # fail before anything else, not at the first network call
        cursor = self._start()
        path = f"/v3/{cursor.state.api}/{cursor.state.function}"
        current = cursor.state.next_request()
        # Every call runs as a task the client knows of, so that aclose() can stop it wherever
        # it waits (the limiter, a backoff, the network). With prefetching, the next call is
        # on its way while the consumer handles the current page (pipelining).
        call = self._call(path, current) if current is not None else None
        try:
            while current is not None and call is not None:
                raw = await _reply(calls, call)
                call = None
                # The cursor names every request. With prefetching it names the next one as
                # early as it can: before this page's records are built when the page's length
                # alone decides (no max_items), so decoding overlaps the server's work on the
                # next page; otherwise once the records are registered. An overfull reply is
                # refused first, before anything of it is decoded.
                try:
                    check_received(current, raw.received)
                    following = (
                        cursor.request_before_records(current, raw.received)
                        if calls.prefetch
                        else None
                    )
                except PagingError as exc:
                    raise _broken(path, raw, exc) from None
                if following is not None:
                    call = self._call(path, following)
                    await _let_it_send()
                page = self._page(path, cursor, current, raw)
                if following is None:
                    following = cursor.next_request_after_page()
                    if following is not None and calls.prefetch:
                        call = self._call(path, following)
                yield page
                cursor.end_page()
                current = following
                if current is not None and call is None:
                    call = self._call(path, current)
        finally:
            if call is not None:
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)

    def _page(self, path: str, cursor: StreamCursor, request: PageRequest, raw: RawPage) -> Page[R]:
        """Build a page's records and register them with the cursor."""
        reply = decode_page(raw, self._record_type)
        keys = [record_key(record) for record in reply.records]
        try:
            records, _ = cursor.begin_page(
                request, reply.received, reply.records, keys, reply.positions
            )
        except PagingError as exc:
            raise _broken(path, raw, exc) from None
        page = Page(
            records=tuple(records),
            offset=request.offset,
            limit=request.limit,
            received=reply.received,
            duplicates=len(reply.records) - len(records),
            task_id=reply.task_id,
            cost=reply.cost,
            time=reply.time,
        )
        _log_page(path, page, reply.nulls)
        return page

    def _call(self, path: str, request: PageRequest) -> asyncio.Task[RawPage]:
        params = self._start().state.params
        task = {**params, "limit": request.limit, "offset": request.offset}
        return self._calls._spawn(self._calls._fetch(path, task))


class _Pages(AsyncIterator[Page[R]], Generic[R]):
    """The pages view of a pager: the same stream, a page at a time."""

    def __init__(self, pager: Pager[R]) -> None:
        self._pager: Pager[R] = pager

    def __aiter__(self) -> _Pages[R]:
        return self

    async def __anext__(self) -> Page[R]:
        return await self._pager._next_page()

    async def aclose(self) -> None:
        """Stop the stream (as `Pager.aclose`)."""
        await self._pager.aclose()


# Loop turns a new call needs to put its request on the wire (limiter, pooled connection,
# headers and body written); measured on aiohttp 3.14, and harmless if it needs fewer.
_SEND_TURNS = 3


async def _let_it_send() -> None:
    """Give a just-spawned call the loop turns it needs to send its request."""
    for _ in range(_SEND_TURNS):
        await asyncio.sleep(0)


def _broken(path: str, raw: RawPage, exc: PagingError) -> DecodeError:
    """A server breaking the paging rules ends the stream: a DecodeError on the reply."""
    return DecodeError(str(exc), endpoint=path, path="$.tasks[0].result", raw=raw.text)


def _log_page(path: str, page: Page[Any], nulls: int) -> None:
    if nulls:
        logger.warning("%s offset=%d: %d null entries in result, skipped", path, page.offset, nulls)
    if page.duplicates:
        logger.info(
            "%s offset=%d: dropped %d records already yielded (the list shifted)",
            path,
            page.offset,
            page.duplicates,
        )


async def _reply(calls: Calls, call: asyncio.Task[RawPage]) -> RawPage:
    """Await a call's task; if `aclose()` cancelled it, say so instead of CancelledError."""
    try:
        return await call
    except asyncio.CancelledError:
        # Our own task being cancelled must stay a cancellation; only a call that aclose()
        # cancelled under a running consumer becomes ClientClosedError.
        current = asyncio.current_task()
        ours = current is not None and current.cancelling() > 0
        if calls.closed and call.cancelled() and not ours:
            raise ClientClosedError("the client was closed while this stream was running") from None
        raise
