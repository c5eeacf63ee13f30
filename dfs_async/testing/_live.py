"""The emulator's live mode: tasks posted, queued and completed, errors arriving, on the loop clock.

`Live` plays an account at work. Its clock is the event loop's (``loop.time()``), so under a
virtual clock (looptime) a day passes in moments. Everything is drawn from a seeded generator,
event by event, and the data advance lazily to the current time whenever they are asked for.

The undocumented parts of ``id_list`` are settings: `window_on` is the timestamp the window
filters on (``"posted"``, or ``"done"``: ``datetime_done``, or ``datetime_posted`` while the
task is queued), and `sort_on` the one the result is ordered by. `history` is every version of
every task the data ever held, in order, for tests to compare a follower's log with.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import json
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from . import _data

__all__ = ["Live"]

QUEUED = "Task In Queue."
_OUTCOMES = (("Ok.", 0.02), ("Ok.", 0.02), ("Ok.", 0.0025), ("Internal Error.", 0.0))


def _stamp(epoch: int) -> str:
    return _data.format_api_datetime(epoch) + " +00:00"


@attrs.define
class _Task:
    seq: int
    id: str
    posted: int
    done: int | None = None
    status: str = QUEUED
    cost: float = 0.0

    def item(self, metadata: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "url": f"https://api.dataforseo.com/v3/backlinks/summary/live/{self.seq}",
            "datetime_posted": _stamp(self.posted),
            "datetime_done": None if self.done is None else _stamp(self.done),
            "status": self.status,
            "cost": self.cost,
        }
        if metadata:
            item["metadata"] = {"api": "backlinks", "function": "summary", "se": self.seq % 7}
        return item

    def version(self) -> tuple[str, str | None, str, float]:
        return (self.id, None if self.done is None else _stamp(self.done), self.status, self.cost)


@attrs.define
class Live:
    """A live account: see the module docstring. `start` is the wall time at loop time `origin`."""

    start: datetime = attrs.field(factory=lambda: datetime(2026, 11, 1, tzinfo=timezone.utc))
    seed: int = 0
    #: Seconds between two posts, drawn uniformly from this range.
    post_every: tuple[float, float] = (2.0, 8.0)
    #: Queue times: mostly minutes, some for hours ((low, high, weight) uniform mixtures).
    queue: tuple[tuple[float, float, float], ...] = (
        (180.0, 900.0, 0.80),
        (900.0, 7200.0, 0.17),
        (7200.0, 6 * 3600.0, 0.03),
    )
    #: Mean seconds between two errors entries (exponential).
    error_every: float = 40.0
    window_on: str = attrs.field(
        default="posted", validator=attrs.validators.in_(("posted", "done"))
    )
    sort_on: str = attrs.field(default="posted", validator=attrs.validators.in_(("posted", "done")))
    origin: float | None = None
    #: Seconds after which no more events are played (the data then hold still), or None.
    until: float | None = None
    #: Every (id, datetime_done, status, cost) the data ever held, in order of appearance.
    history: list[tuple[str, str | None, str, float]] = attrs.Factory(list)
    #: The errors entries, oldest first.
    errors: list[dict[str, Any]] = attrs.Factory(list)
    _tasks: list[_Task] = attrs.Factory(list)
    #: (window key, seq) in order, for bisect; kept as the window's key changes.
    _keys: list[tuple[int, int]] = attrs.Factory(list)
    _error_times: list[int] = attrs.Factory(list)
    _pending: list[tuple[float, int]] = attrs.Factory(list)
    _rng: random.Random = attrs.field(init=False)
    _next_post: float = 0.0
    _next_error: float = 0.0
    _clock: float = 0.0

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(f"dfs-async-live-{self.seed}")
        self._next_post = self._rng.uniform(*self.post_every)
        self._next_error = self._rng.expovariate(1 / self.error_every)

    # -- the clock -------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the live account started (loop time since `origin`)."""
        loop_now = asyncio.get_running_loop().time()
        if self.origin is None:
            self.origin = loop_now
        return loop_now - self.origin

    def now(self) -> datetime:
        """The wall time of the live account: `start` plus the loop time elapsed."""
        return datetime.fromtimestamp(self.start.timestamp() + self.elapsed(), timezone.utc)

    # -- the data --------------------------------------------------------------------------

    def advance(self) -> None:
        """Play every event up to the current loop time."""
        target = self.elapsed()
        if self.until is not None:
            target = min(target, self.until)
        base = self.start.timestamp()
        while True:
            due = min(
                self._next_post,
                self._next_error,
                self._pending[0][0] if self._pending else float("inf"),
            )
            if due > target:
                break
            self._clock = due
            if self._pending and self._pending[0][0] == due:
                _, seq = heapq.heappop(self._pending)
                self._complete(self._tasks[seq], int(base + due))
            elif due == self._next_post:
                self._post(int(base + due))
                self._next_post += self._rng.uniform(*self.post_every)
            else:
                self._error(int(base + due))
                self._next_error += self._rng.expovariate(1 / self.error_every)

    def _post(self, epoch: int) -> None:
        seq = len(self._tasks)
        key = self._rng.getrandbits(64)
        task = _Task(seq=seq, id=_data.task_id(epoch, seq, key), posted=epoch)
        self._tasks.append(task)
        bisect.insort(self._keys, (epoch, seq))
        self.history.append(task.version())
        low, high, _ = self._rng.choices(self.queue, weights=[w for *_, w in self.queue])[0]
        heapq.heappush(self._pending, (self._clock + self._rng.uniform(low, high), seq))

    def _complete(self, task: _Task, epoch: int) -> None:
        if self.window_on == "done":
            # The window's key moves from the posted time to the done time.
            del self._keys[bisect.bisect_left(self._keys, (task.posted, task.seq))]
            bisect.insort(self._keys, (epoch, task.seq))
        task.done = epoch
        task.status, task.cost = self._rng.choice(_OUTCOMES)
        self.history.append(task.version())

    def _error(self, epoch: int) -> None:
        if self._tasks and self._rng.random() < 0.3:
            task_id = self._rng.choice(self._tasks[-50:]).id  # a task failing once more
        else:
            task_id = _data.task_id(epoch, 10**6 + len(self.errors), self._rng.getrandbits(64))
        entry = {
            "id": task_id,
            "datetime": _data.format_api_datetime(epoch),
            "function": self._rng.choice(("backlinks/live", "backlinks/summary")),
            "error_code": 50000,
            "error_message": "Internal Error.",
            "http_url": "https://api.dataforseo.com/v3/backlinks/summary/live",
            "http_method": "POST",
            "http_code": 200,
            "http_time": round(self._rng.uniform(0.01, 2.0), 4),
            "http_response": json.dumps({"status_code": 50000}),
        }
        self.errors.append(entry)
        self._error_times.append(epoch)

    # -- answers ---------------------------------------------------------------------------

    def id_list(
        self, start: int, end: int, offset: int, limit: int, descending: bool, metadata: bool
    ) -> list[str]:
        """The result items of one id_list call, as JSON text."""
        self.advance()
        lo = bisect.bisect_left(self._keys, (start, -1))
        hi = bisect.bisect_right(self._keys, (end, len(self._tasks)))
        chosen = [self._tasks[seq] for _, seq in self._keys[lo:hi]]
        if self.sort_on != self.window_on:
            chosen.sort(key=self._sort_key)
        if descending:
            chosen.reverse()
        page = chosen[offset : offset + limit]
        return [json.dumps(task.item(metadata), separators=(",", ":")) for task in page]

    def _sort_key(self, task: _Task) -> tuple[int, int]:
        if self.sort_on == "done" and task.done is not None:
            return task.done, task.seq
        return task.posted, task.seq

    def errors_page(
        self,
        function: str | None,
        start: int | None,
        end: int | None,
        offset: int,
        limit: int,
    ) -> list[str]:
        """The result entries of one errors call (newest first), as JSON text."""
        self.advance()
        lo = 0 if start is None else bisect.bisect_left(self._error_times, start)
        hi = len(self.errors) if end is None else bisect.bisect_right(self._error_times, end)
        chosen = [e for e in reversed(self.errors[lo:hi]) if function in (None, e["function"])]
        return [json.dumps(e, separators=(",", ":")) for e in chosen[offset : offset + limit]]

    def expected_errors(self) -> list[Mapping[str, Any]]:
        """Every errors entry so far, oldest first."""
        self.advance()
        return list(self.errors)

    def open_tasks(self) -> int:
        """Tasks queued now."""
        self.advance()
        return len(self._pending)
