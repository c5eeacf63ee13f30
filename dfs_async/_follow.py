"""Pure follow rules: which windows a poll reads, which records are new versions, the state.

No I/O, no event loop: the follower (``_follower.py``) drives these with the records it reads.

Strategy:
- Times are whole epoch seconds (the API's resolution). A window ``[start, end]`` is read by
  one call (``limit=1000``). A call is one atomic snapshot, so nothing can shift under offsets
  between pages; a window that comes back full is split into smaller windows instead
  (`split`), which are read one call each. Pieces overlap by one second, so the plan is right
  whether the API's bounds are inclusive or not.
- The *edge* is ``[cursor, now]``. After a poll that started at ``now`` the cursor becomes
  ``now - lookback``: the overlap absorbs second truncation, records the server indexes a
  little late and a poll that took time. Whether the window filters on ``datetime_posted`` or
  on ``datetime_done`` (undocumented), a task's first sighting and, under the "done" reading,
  its completion land at the edge.
- Under the "posted" reading a completion stays at the posted time, behind the edge. So every
  task seen queued (``datetime_done`` null) is *open*: each poll also reads small windows
  around the open tasks' posted times, merged when one call covers several (estimated from the
  density the last poll saw). Under the "done" reading those windows cost calls but no
  correctness. Sort order plays no part: every window fits one page or is split.
- A record is a new version when its id is unknown and it lies at the edge (posted or done at
  or after the cursor), or its id is known and its fingerprint (``datetime_done``, ``status``,
  ``cost``, ``metadata``) differs from the one last yielded. An unknown record behind the edge
  is history (it was yielded when it was at the edge) and is skipped.
- Memory is the open tasks plus the tasks at the edge; after each poll a closed task whose
  posted and done times both fall behind the next cursor is forgotten. The state is that
  memory, so its size follows the open tasks and the edge, never the history.
- Beyond the API's reach (six months, one with metadata) an open task can no longer be read
  at its posted time: it is dropped from the open set and counted in ``dropped`` (the follower
  logs a WARNING). Under the "done" reading its completion still arrives at the edge, as a new
  task. An edge older than the reach is moved to the earliest allowed time, also counted.
- errors entries never change; an entry is all its fields (`record_key`), and identical entries
  are counted, so each occurrence is delivered once. Each poll reads ``[cursor, now]`` with
  the pager (its overlap rule absorbs entries arriving at the head while it pages).
- A record is counted as delivered before the consumer gets it, like a stream's; a state saved
  after handling it never hands it out again. Resuming mid-poll re-runs the poll from the same
  cursor, and the memory skips what was already yielded.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._models import TaskError, TaskId
from ._pagination import record_key

__all__ = ["FOLLOW_STATE_VERSION", "ErrorsRules", "FollowState", "IdListRules", "Window"]

FOLLOW_STATE_VERSION = 1
PAGE = 1000
#: A merged window is planned to hold at most this many records (one page, with room).
TARGET = 700


@attrs.frozen(kw_only=True)
class Window:
    """Epoch seconds ``[start, end]``; `whole` means "page through it" (a one-second crowd)."""

    start: int
    end: int
    whole: bool = False


def _epoch(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def fingerprint(task: TaskId) -> str:
    """What makes a version: ``datetime_done``, ``status``, ``cost`` and ``metadata``."""
    text = json.dumps(
        [
            None if task.datetime_done is None else task.datetime_done.isoformat(),
            task.status,
            repr(task.cost),
            None if task.metadata is None else dict(task.metadata),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@attrs.frozen(kw_only=True)
class FollowState:
    """Where a follow stands, as plain JSON-serialisable data (see :meth:`to_json`)."""

    #: ``"id_list"`` or ``"errors"``.
    function: str
    api: str
    #: ``include_metadata`` (id_list) or ``filtered_function`` (errors), as requested.
    params: Mapping[str, Any]
    #: Epoch second where the next poll's edge window starts (the high-water mark).
    cursor: int
    lookback: int
    #: Records per second the last poll saw (plans merged windows; no bearing on correctness).
    rate: float = 0.0
    polls: int = 0
    #: Open tasks given up at the API's reach, and edge seconds lost to it.
    dropped: int = 0
    #: id_list: ``(id, posted, done or None, fingerprint)`` of the open and edge tasks.
    tasks: tuple[tuple[str, int, int | None, str], ...] = ()
    #: errors: ``(key, datetime, occurrences delivered)`` of the entries at the edge.
    entries: tuple[tuple[str, int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A dict of JSON types; `from_json` reads it back."""
        return {
            "version": FOLLOW_STATE_VERSION,
            "function": self.function,
            "api": self.api,
            "params": dict(self.params),
            "cursor": self.cursor,
            "lookback": self.lookback,
            "rate": self.rate,
            "polls": self.polls,
            "dropped": self.dropped,
            "tasks": [list(t) for t in self.tasks],
            "entries": [list(e) for e in self.entries],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FollowState:
        """Read a state written by `to_json`; raises `ValueError` naming a bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("a follow state is a JSON object")
        if data.get("version") != FOLLOW_STATE_VERSION:
            raise ValueError(
                f"unsupported follow state version {data.get('version')!r}; "
                f"this client writes version {FOLLOW_STATE_VERSION}"
            )
        kinds: dict[str, type | tuple[type, ...]] = {
            "function": str,
            "api": str,
            "params": dict,
            "cursor": int,
            "lookback": int,
            "rate": (int, float),
            "polls": int,
            "dropped": int,
            "tasks": list,
            "entries": list,
        }
        for name, kind in kinds.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"follow state field {name!r} is missing or of the wrong type")
        if data["function"] not in ("id_list", "errors"):
            raise ValueError("follow state field 'function' must be 'id_list' or 'errors'")
        tasks = []
        for item in data["tasks"]:
            if not (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and type(item[1]) is int
                and (item[2] is None or type(item[2]) is int)
                and isinstance(item[3], str)
            ):
                raise ValueError(f"follow state field 'tasks' holds a bad entry: {item!r:.80}")
            tasks.append((item[0], item[1], item[2], item[3]))
        entries = []
        for item in data["entries"]:
            if not (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and type(item[1]) is int
                and type(item[2]) is int
                and item[2] >= 1
            ):
                raise ValueError(f"follow state field 'entries' holds a bad entry: {item!r:.80}")
            entries.append((item[0], item[1], item[2]))
        if data["lookback"] < 1:
            raise ValueError("follow state field 'lookback' must be at least 1")
        return cls(
            function=data["function"],
            api=data["api"],
            params=dict(data["params"]),
            cursor=data["cursor"],
            lookback=data["lookback"],
            rate=float(data["rate"]),
            polls=data["polls"],
            dropped=data["dropped"],
            tasks=tuple(tasks),
            entries=tuple(entries),
        )


def _calls(rate: float, seconds: int, target: float) -> int:
    """Calls a window of this many seconds is expected to cost at `rate` records per second."""
    return 1 + math.floor(rate * (seconds + 1) / target)


@attrs.define
class IdListRules:
    """The mutable progress of an id_list follow: plan a poll, offer records, finish it."""

    state: FollowState
    #: Records one call returns at most (the follower's limit).
    page: int = PAGE
    #: id -> (posted, done, fingerprint) of the open and edge tasks.
    _known: dict[str, tuple[int, int | None, str]] = attrs.field(init=False)
    _received: int = attrs.field(init=False, default=0)
    _seconds: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._known = {t[0]: (t[1], t[2], t[3]) for t in self.state.tasks}

    def snapshot(self) -> FollowState:
        """The state now: every record offered so far counted as delivered."""
        tasks = tuple((key, *value) for key, value in self._known.items())
        return attrs.evolve(self.state, tasks=tasks)

    def open_count(self) -> int:
        """Tasks seen queued and not yet seen done."""
        return sum(1 for value in self._known.values() if value[1] is None)

    def plan(self, now: int, earliest: int) -> tuple[list[Window], list[str]]:
        """The windows of the poll starting at `now`, and the open ids dropped at the reach.

        `earliest` is the oldest second a window may start at (the API's reach, with a slack).
        """
        self._received = 0
        self._seconds = 0
        dropped = [
            key
            for key, (posted, done, _) in self._known.items()
            if done is None and posted < earliest + 1
        ]
        for key in dropped:
            del self._known[key]
        cursor = self.state.cursor
        lost = 0
        if cursor < earliest:
            lost = 1
            cursor = earliest
        self.state = attrs.evolve(
            self.state, cursor=cursor, dropped=self.state.dropped + len(dropped) + lost
        )
        end = max(now, cursor + 1)
        behind = sorted(
            posted for posted, done, _ in self._known.values() if done is None and posted < cursor
        )
        spans = [[p - 1, p + 1] for p in behind]
        spans.append([cursor, end])
        merged: list[list[int]] = []
        rate, target = self.state.rate, self.page * TARGET / PAGE
        for span in spans:
            if merged:
                last = merged[-1]
                joined = max(last[1], span[1]) - last[0]
                apart = _calls(rate, last[1] - last[0], target) + _calls(
                    rate, span[1] - span[0], target
                )
                if span[0] <= last[1] or _calls(rate, joined, target) <= apart:
                    last[1] = max(last[1], span[1])
                    continue
            merged.append(list(span))
        return [Window(start=a, end=b) for a, b in merged], dropped

    def split(self, window: Window, records: Sequence[TaskId]) -> list[Window]:
        """The windows to read instead of one that came back full (one call each)."""
        if window.end - window.start <= 1:
            return [Window(start=window.start, end=window.end, whole=True)]
        # The full page shows a lower bound of the density: plan pieces of TARGET records.
        times = [_epoch(r.datetime_posted) or 0 for r in records]
        reach = max([t for t in times if window.start <= t <= window.end], default=window.end)
        density = len(records) / max(1, reach - window.start + 1)
        step = max(
            1, min((window.end - window.start) // 2, int(self.page * TARGET / PAGE / density))
        )
        pieces = []
        start = window.start
        while start < window.end:
            stop = min(window.end, start + step)
            pieces.append(Window(start=start, end=stop))
            start = stop  # one second of overlap: right with inclusive or exclusive bounds
        return pieces

    def offer(self, task: TaskId) -> bool:
        """Whether `task` is a version not yet yielded; if so it is counted as delivered."""
        self._received += 1
        posted = _epoch(task.datetime_posted) or 0
        done = _epoch(task.datetime_done)
        mark = fingerprint(task)
        known = self._known.get(task.id)
        if known is None:
            cursor = self.state.cursor
            if posted < cursor and (done is None or done < cursor):
                return False  # history: yielded when it was at the edge
        elif known[2] == mark:
            return False
        self._known[task.id] = (posted, done, mark)
        return True

    def read(self, window: Window) -> None:
        """A window has been read (feeds the density estimate)."""
        self._seconds += window.end - window.start + 1

    def finish(self, now: int) -> FollowState:
        """The poll that started at `now` is complete: advance the cursor, forget the past."""
        cursor = max(self.state.cursor, now - self.state.lookback)
        self._known = {
            key: value
            for key, value in self._known.items()
            if value[1] is None or value[0] >= cursor or value[1] >= cursor
        }
        rate = self._received / self._seconds if self._seconds else self.state.rate
        self.state = attrs.evolve(self.state, cursor=cursor, polls=self.state.polls + 1, rate=rate)
        return self.snapshot()


@attrs.define
class ErrorsRules:
    """The mutable progress of an errors follow: each entry occurrence delivered once."""

    state: FollowState
    #: key -> (datetime, occurrences delivered) of the entries at the edge.
    _delivered: dict[str, tuple[int, int]] = attrs.field(init=False)
    _seen: Counter[str] = attrs.field(init=False, factory=Counter)

    def __attrs_post_init__(self) -> None:
        self._delivered = {e[0]: (e[1], e[2]) for e in self.state.entries}

    def snapshot(self) -> FollowState:
        """The state now: every entry offered so far counted as delivered."""
        entries = tuple((key, *value) for key, value in self._delivered.items())
        return attrs.evolve(self.state, entries=entries)

    def plan(self, now: int, earliest: int) -> Window:
        """The window of the poll starting at `now`."""
        self._seen = Counter()
        cursor = self.state.cursor
        if cursor < earliest:
            self.state = attrs.evolve(self.state, cursor=earliest, dropped=self.state.dropped + 1)
            cursor = earliest
        return Window(start=cursor, end=max(now, cursor + 1))

    def offer(self, entry: TaskError) -> bool:
        """Whether this occurrence of `entry` is new; if so it is counted as delivered."""
        moment = int(entry.datetime.timestamp())
        if moment < self.state.cursor:
            return False  # behind the edge: delivered by an earlier poll
        key = record_key(entry)
        self._seen[key] += 1
        _, count = self._delivered.get(key, (moment, 0))
        if self._seen[key] <= count:
            return False
        self._delivered[key] = (moment, count + 1)
        return True

    def finish(self, now: int) -> FollowState:
        """The poll that started at `now` is complete: advance the cursor, forget the past."""
        cursor = max(self.state.cursor, now - self.state.lookback)
        self._delivered = {k: v for k, v in self._delivered.items() if v[0] >= cursor}
        self.state = attrs.evolve(self.state, cursor=cursor, polls=self.state.polls + 1)
        return self.snapshot()
