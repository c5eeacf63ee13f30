"""The follower: an endless async iterator over new and changed records, driven by `_follow`.

Each poll reads its windows through the endpoint's ordinary streams (so the endpoint's limiter,
retries and validation apply), offers every record to the pure rules, yields what they accept,
then sleeps on the loop clock until the next poll is due.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ._calendar import ERRORS_DAYS, ID_LIST_METADATA_MONTHS, ID_LIST_MONTHS, months_before
from ._calls import Calls, ensure_open
from ._errors import InvalidArgumentError
from ._follow import PAGE, ErrorsRules, FollowState, IdListRules, Window

if TYPE_CHECKING:
    from types import TracebackType

    from ._pager import Pager

from ._models import TaskError, TaskId

__all__ = ["Follower", "follow_errors", "follow_ids"]

R = TypeVar("R", TaskId, TaskError)

logger = logging.getLogger("dfs_async")

#: A window starts at least this long after the API's earliest allowed time, so a call that
#: waits for the limiter a while is still within reach when it leaves.
REACH_SLACK = timedelta(hours=1)


class Api(Protocol):
    """What a follower uses of its endpoints; `dfs_async.Api` (which builds followers) has it."""

    @property
    def name(self) -> str: ...

    @property
    def _client(self) -> Calls: ...

    def _check_function(self, function: str) -> None: ...

    def id_list(
        self,
        datetime_from: datetime | None = ...,
        datetime_to: datetime | None = ...,
        *,
        include_metadata: bool = ...,
        max_items: int | None = ...,
    ) -> Pager[TaskId]: ...

    def errors(
        self,
        filtered_function: str | None = ...,
        *,
        datetime_from: datetime | None = ...,
        datetime_to: datetime | None = ...,
    ) -> Pager[TaskError]: ...


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


class Follower(AsyncIterator[R], Generic[R]):
    """Yields each new record, and each changed version of one, exactly once.

    It never ends, unless made with ``once=True``: then it ends after one poll, having
    delivered what is new or changed since its state, up to now (a cron job's update).

    `state` is a :class:`FollowState` to save after handling each record and pass back as
    ``resume=``. ``aclose()`` (or ``async with``) stops it, cancelling a call in flight.
    """

    def __init__(
        self,
        *,
        api: Api,
        rules: IdListRules | ErrorsRules,
        poll_interval: float,
        earliest: timedelta | int,
        once: bool = False,
    ) -> None:
        self._api = api
        self._rules = rules
        self._poll_interval = poll_interval
        self._once = once
        self._earliest = earliest
        self._iterator: AsyncGenerator[R, None] | None = None
        #: The task inside `__anext__` (waiting for a poll or a call), if any; `aclose` from
        #: another task cancels it there, and the consumer sees the end of the iteration.
        self._inside: asyncio.Task[object] | None = None
        self._left = asyncio.Event()
        self._closing = False
        self._closed = False
        #: Calls of the last finished poll, and of every poll so far.
        self.last_poll_calls = 0
        self.calls = 0
        #: When the next poll is due (the client's clock), while the follower waits for it.
        self.next_poll: datetime | None = None

    def __repr__(self) -> str:
        state = self._rules.state
        return f"<Follower /v3/{state.api}/{state.function} polls={state.polls}>"

    @property
    def changed(self) -> int:
        """Records yielded so far that were a change of a task yielded before (id_list)."""
        rules = self._rules
        return rules.changed if isinstance(rules, IdListRules) else 0

    @property
    def state(self) -> FollowState:
        """Where the follow stands; every record already handed over is counted in it."""
        return self._rules.snapshot()

    def __aiter__(self) -> Follower[R]:
        return self

    async def __anext__(self) -> R:
        if self._closed:
            raise StopAsyncIteration
        if self._iterator is None:
            self._iterator = self._run()
        task = asyncio.current_task()
        self._inside = task
        self._left.clear()
        try:
            return await self._iterator.__anext__()
        except asyncio.CancelledError:
            # Cancelled by our own aclose() from another task, and by nothing else: the
            # iteration ends for this consumer instead (the generator is closed by now).
            if self._closing and task is not None and task.uncancel() == 0:
                raise StopAsyncIteration from None
            raise
        finally:
            self._inside = None
            self._left.set()

    async def aclose(self) -> None:
        """Stop following and cancel the call in flight, if any. Idempotent.

        From another task too (a shutdown handler): a consumer waiting in ``async for`` for
        the next poll or a call sees the iteration end.
        """
        self._closed = True
        inside = self._inside
        if inside is not None and inside is not asyncio.current_task():
            self._closing = True
            inside.cancel()
            await self._left.wait()
        elif self._iterator is not None:
            await self._iterator.aclose()

    async def __aenter__(self) -> Follower[R]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _earliest_epoch(self, now: datetime) -> int:
        if isinstance(self._earliest, int):
            start = months_before(now, self._earliest)
        else:
            start = now - self._earliest
        return int((start + REACH_SLACK).timestamp())

    def batches(self) -> AsyncGenerator[list[R], None]:
        """The same records as iterating, a list per call (the last of a poll may be empty).

        Each list is counted as delivered in `state` as a whole, so a consumer that writes a
        batch and then saves the state (as the command line does) writes and fsyncs once per
        call instead of once per record. Use either this or the iteration, not both.
        """
        if self._iterator is not None:
            raise RuntimeError("this follower is already being iterated")
        steps = self._steps()
        self._iterator = steps  # type: ignore[assignment]  # closed by aclose() like _run()
        return self._batched(steps)

    async def _batched(
        self, steps: AsyncGenerator[R | None, None]
    ) -> AsyncGenerator[list[R], None]:
        batch: list[R] = []
        async for step in steps:
            if step is None:
                yield batch
                batch = []
            else:
                batch.append(step)

    async def _run(self) -> AsyncGenerator[R, None]:
        async for step in self._steps():
            if step is not None:
                yield step

    async def _steps(self) -> AsyncGenerator[R | None, None]:
        """Each new record, and None after each call's records and after each poll."""
        client = self._api._client
        ensure_open(client)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            now = client.now()
            epoch = int(now.timestamp())
            calls_before = self.calls
            rules = self._rules
            if isinstance(rules, IdListRules):
                async for task in self._poll_id_list(rules, epoch, self._earliest_epoch(now)):
                    yield task  # type: ignore[misc]  # R is TaskId for an id_list follow
            else:
                async for entry in self._poll_errors(rules, epoch, self._earliest_epoch(now)):
                    yield entry  # type: ignore[misc]  # R is TaskError for an errors follow
            rules.finish(epoch)
            self.last_poll_calls = self.calls - calls_before
            logger.debug(
                "follow /v3/%s/%s: poll %d took %d calls",
                rules.state.api,
                rules.state.function,
                rules.state.polls,
                self.last_poll_calls,
            )
            wait = max(0.0, started + self._poll_interval - loop.time())
            self.next_poll = None if self._once else client.now() + timedelta(seconds=wait)
            yield None
            if self._once:
                return
            await client._sleep(wait)  # ends at once, with ClientClosedError, on aclose()
            self.next_poll = None

    async def _poll_id_list(
        self, rules: IdListRules, now: int, earliest: int
    ) -> AsyncGenerator[TaskId | None, None]:
        windows, dropped = rules.plan(now, earliest)
        for task_id in dropped:
            logger.warning(
                "follow /v3/%s/id_list: task %s still queued at the API's reach; no longer "
                "watched (its completion is lost unless the window filters on datetime_done)",
                rules.state.api,
                task_id,
            )
        metadata = bool(rules.state.params.get("include_metadata", False))
        queue = list(windows)
        while queue:
            window = queue.pop(0)
            pager = self._api.id_list(
                _at(window.start),
                _at(window.end),
                include_metadata=metadata,
                max_items=None if window.whole else PAGE,
            )
            received: list[TaskId] = []
            full = False
            async with pager:
                async for page in pager.pages():
                    self.calls += 1
                    received.extend(page.records)
                    full = full or page.received >= page.limit
                    for task in page.records:
                        if rules.offer(task):
                            yield task
                    yield None
            rules.read(window)
            if full and not window.whole:
                queue[0:0] = rules.split(window, received)

    async def _poll_errors(
        self, rules: ErrorsRules, now: int, earliest: int
    ) -> AsyncGenerator[TaskError | None, None]:
        before = rules.state.dropped
        window: Window = rules.plan(now, earliest)
        if rules.state.dropped > before:
            logger.warning(
                "follow /v3/%s/errors: resumed beyond the API's 7-day reach; entries older "
                "than %s are lost",
                rules.state.api,
                _at(window.start).isoformat(" "),
            )
        function = rules.state.params.get("filtered_function")
        pager = self._api.errors(
            function, datetime_from=_at(window.start), datetime_to=_at(window.end)
        )
        async with pager:
            async for page in pager.pages():
                self.calls += 1
                for entry in page.records:
                    if rules.offer(entry):
                        yield entry
                yield None


def _interval(name: str, value: object, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
        raise InvalidArgumentError(f"{name} must be a number of seconds >= {low:g}, got {value!r}")
    return float(value)


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")


def _resumed(api: Api, resume: object, function: str, params: dict[str, object]) -> FollowState:
    if not isinstance(resume, FollowState):
        raise InvalidArgumentError(
            "resume must be a FollowState (FollowState.from_json(...) reads a saved one)"
        )
    if (resume.api, resume.function) != (api.name, function):
        raise InvalidArgumentError(
            f"this follow state is for /v3/{resume.api}/{resume.function}, "
            f"not /v3/{api.name}/{function}"
        )
    for name, value in params.items():
        if value is not None and resume.params.get(name) != value:
            raise InvalidArgumentError(
                f"the follow state is for a different request: {name} is "
                f"{resume.params.get(name)!r} there, {value!r} here"
            )
    return resume


def follow_ids(
    api: Api,
    datetime_from: datetime | None,
    *,
    poll_interval: float,
    include_metadata: bool,
    lookback: float,
    resume: FollowState | None,
    once: bool = False,
) -> Follower[TaskId]:
    """Build an id_list follower, every argument checked before any call (see Api.follow_ids)."""
    api._check_function("id_list")
    _flag("once", once)
    interval = _interval("poll_interval", poll_interval, 1.0)
    back = int(_interval("lookback", lookback, 1.0))
    if not isinstance(include_metadata, bool):
        raise InvalidArgumentError(
            f"include_metadata must be True or False, got {include_metadata!r}"
        )
    months = ID_LIST_METADATA_MONTHS if include_metadata else ID_LIST_MONTHS
    if resume is not None:
        state = _resumed(api, resume, "id_list", {"include_metadata": include_metadata or None})
    else:
        if datetime_from is None:
            raise InvalidArgumentError("follow_ids needs datetime_from (or resume=)")
        # The stream's own checks: aware, in the past, within the reach.
        api.id_list(datetime_from, include_metadata=include_metadata)
        params = {"include_metadata": True} if include_metadata else {}
        state = FollowState(
            function="id_list",
            api=api.name,
            params=params,
            cursor=int(datetime_from.timestamp()),
            lookback=back,
        )
    rules = IdListRules(state, interval=max(1, round(interval)))
    return Follower(api=api, rules=rules, poll_interval=interval, earliest=months, once=once)


def follow_errors(
    api: Api,
    filtered_function: str | None,
    *,
    datetime_from: datetime | None,
    poll_interval: float,
    lookback: float,
    resume: FollowState | None,
    once: bool = False,
) -> Follower[TaskError]:
    """Build an errors follower, every argument checked before any call."""
    api._check_function("errors")
    _flag("once", once)
    interval = _interval("poll_interval", poll_interval, 1.0)
    back = int(_interval("lookback", lookback, 1.0))
    if resume is not None:
        state = _resumed(api, resume, "errors", {"filtered_function": filtered_function})
    else:
        # The stream's own checks of the function name and the 7-day window.
        api.errors(filtered_function, datetime_from=datetime_from)
        now = api._client.now()
        start = datetime_from or now - timedelta(days=ERRORS_DAYS) + REACH_SLACK
        params = {} if filtered_function is None else {"filtered_function": filtered_function}
        state = FollowState(
            function="errors",
            api=api.name,
            params=params,
            cursor=int(start.timestamp()),
            lookback=back,
        )
    return Follower(
        api=api,
        rules=ErrorsRules(state),
        poll_interval=interval,
        earliest=timedelta(days=ERRORS_DAYS),
        once=once,
    )
