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
  task seen queued (``datetime_done`` null) is *open*, and polls also read small windows around
  the open tasks' posted times, merged when one call covers several (estimated from the
  density the last poll saw). Under the "done" reading those windows cost calls but no
  correctness. Sort order plays no part: every window fits one page or is split.
- The cadence (`tier`): an open task younger than ``16`` poll intervals is re-read every poll;
  an older one every ``2**k`` polls, the largest that is at most an eighth of its age (and at
  most an hour), so its completion arrives at most about a quarter of its queue time late.
  Tier ``k >= 1`` is due when a poll passes a grid point ``n`` (``n = epoch // interval``) with
  ``n % 2**k == 2**(k - 1)``: the "ruler" phases give each grid point to exactly one tier, so
  a poll reads the young tasks and the edge (one call in steady state) plus at most one older
  tier, never every tier at once. The grid is absolute time and ``last_poll`` (the start of the
  last finished poll) is in the state, so a kill or a pause never skips a due re-read.
- A window that comes back full is split: its edge part (every record needed) into pieces the
  page's density says fit; of its open tasks only those the page did not return are read again.
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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ._models import TaskError, TaskId
from ._pagination import record_key

__all__ = ["FOLLOW_STATE_VERSION", "ErrorsRules", "FollowState", "IdListRules", "Window"]

FOLLOW_STATE_VERSION = 1
PAGE = 1000
#: A piece of a window that came back full is planned to hold this many records (one page,
#: with room: the full page gave only a lower bound of the density).
TARGET = 700
#: Spans are merged while the whole is expected to hold at most this many records: the
#: density comes from the last poll, so a merge that overshoots costs one extra call.
MERGE = 950
#: An open task younger than twice this many poll intervals is re-read every poll.
YOUNG = 8
#: The longest re-read period of an old open task, in seconds (or one poll interval if longer).
MAX_PERIOD = 3600


@attrs.frozen(kw_only=True)
class Window:
    """Epoch seconds ``[start, end]``; `whole` means "page through it" (a one-second crowd).

    `edge` is where the part of the window whose every record is needed starts (None: none of
    it); `ids` are the open tasks it is read for.
    """

    start: int
    end: int
    whole: bool = False
    edge: int | None = None
    ids: tuple[str, ...] = ()


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
    #: Epoch second the last finished poll started at (None before the first): the cadence.
    last_poll: int | None = None
    #: id_list: ``(id, posted, done or None, fingerprint)`` of the open and edge tasks.
    tasks: tuple[tuple[str, int, int | None, str], ...] = ()
    #: errors: ``(key, datetime, occurrences delivered)`` of the entries at the edge.
    entries: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def after_id_list_export(
        cls,
        *,
        api: str,
        include_metadata: bool,
        end: datetime,
        lookback: int,
        tasks: Iterable[TaskId],
    ) -> FollowState:
        """The state of a follow that continues an id_list export which ended at `end`.

        `tasks` are the records the export delivered, in order (a later one of the same id
        supersedes an earlier one). Kept: the tasks still queued (their completion is still to
        come) and those within `lookback` of `end` (the first poll reads them again).
        """
        cursor = int(end.timestamp()) - lookback
        known: dict[str, tuple[int, int | None, str]] = {}
        for task in tasks:
            posted = _epoch(task.datetime_posted) or 0
            done = _epoch(task.datetime_done)
            if done is None or posted >= cursor or done >= cursor:
                known[task.id] = (posted, done, fingerprint(task))
            else:
                known.pop(task.id, None)
        return cls(
            function="id_list",
            api=api,
            params={"include_metadata": True} if include_metadata else {},
            cursor=cursor,
            lookback=lookback,
            tasks=tuple((key, *value) for key, value in known.items()),
        )

    @classmethod
    def after_errors_export(
        cls,
        *,
        api: str,
        filtered_function: str | None,
        end: datetime,
        lookback: int,
        entries: Iterable[TaskError],
    ) -> FollowState:
        """The state of a follow that continues an errors export which ended at `end`.

        `entries` are the entries the export delivered; those within `lookback` of `end` are
        counted, so the first poll does not deliver them again.
        """
        cursor = int(end.timestamp()) - lookback
        delivered: dict[str, tuple[int, int]] = {}
        for entry in entries:
            moment = int(entry.datetime.timestamp())
            if moment >= cursor:
                key = record_key(entry)
                delivered[key] = (moment, delivered.get(key, (moment, 0))[1] + 1)
        return cls(
            function="errors",
            api=api,
            params={} if filtered_function is None else {"filtered_function": filtered_function},
            cursor=cursor,
            lookback=lookback,
            entries=tuple((key, *value) for key, value in delivered.items()),
        )

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
            "last_poll": self.last_poll,
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
        last_poll = data.get("last_poll")
        if last_poll is not None and type(last_poll) is not int:
            raise ValueError("follow state field 'last_poll' must be an integer or null")
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
            last_poll=last_poll,
            tasks=tuple(tasks),
            entries=tuple(entries),
        )


def tier(age: int, interval: int) -> int:
    """The re-read tier of an open task this many seconds old: every ``2**tier`` polls.

    The largest ``k`` with ``2**k`` intervals at most an eighth of `age` and at most
    `MAX_PERIOD` (or one interval, if that is longer).
    """
    cap = max(interval, MAX_PERIOD)
    k = 0
    while age >= YOUNG * interval * 2 ** (k + 1) and interval * 2 ** (k + 1) <= cap:
        k += 1
    return k


def due(k: int, last_poll: int | None, now: int, interval: int) -> bool:
    """Whether tier `k` is read by the poll starting at `now` (see the module's Strategy)."""
    if k == 0 or last_poll is None:
        return True
    # Grid points n in (last_poll // interval, now // interval] with n % 2**k == 2**(k-1).
    m: int = 2**k
    r: int = 2 ** (k - 1)
    return (now // interval - r) // m > (last_poll // interval - r) // m


def _merge(
    spans: Sequence[tuple[int, int, int | None, tuple[str, ...]]], rate: float, target: float
) -> list[Window]:
    """Join neighbouring spans ``(start, end, edge, ids)`` while one call is expected to do."""
    merged: list[list[Any]] = []
    for start, end, edge, ids in spans:
        if merged:
            last = merged[-1]
            joined = max(last[1], end) - last[0]
            # Only while the whole is expected to fit one page: a window that comes back
            # full costs its call and then the calls of its pieces.
            if start <= last[1] or rate * (joined + 1) <= target:
                last[1] = max(last[1], end)
                last[2] = last[2] if edge is None else edge if last[2] is None else last[2]
                last[3] = last[3] + ids
                continue
        merged.append([start, end, edge, ids])
    return [Window(start=s, end=e, edge=g, ids=i) for s, e, g, i in merged]


@attrs.define
class IdListRules:
    """The mutable progress of an id_list follow: plan a poll, offer records, finish it."""

    state: FollowState
    #: Records one call returns at most (the follower's limit).
    page: int = PAGE
    #: Whole seconds between polls: the grid of the re-read cadence.
    interval: int = 60
    #: id -> (posted, done, fingerprint) of the open and edge tasks.
    _known: dict[str, tuple[int, int | None, str]] = attrs.field(init=False)
    _received: int = attrs.field(init=False, default=0)
    _seconds: int = attrs.field(init=False, default=0)
    #: Versions accepted that changed a task already known (the rest were first sightings).
    changed: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._known = {t[0]: (t[1], t[2], t[3]) for t in self.state.tasks}
        self.interval = max(1, self.interval)

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
        last = self.state.last_poll
        behind = sorted(
            (posted, key)
            for key, (posted, done, _) in self._known.items()
            if done is None
            and posted < cursor
            and due(tier(now - posted, self.interval), last, now, self.interval)
        )
        spans: list[tuple[int, int, int | None, tuple[str, ...]]]
        spans = [(p - 1, p + 1, None, (key,)) for p, key in behind]
        spans.append((cursor, end, cursor, ()))
        return _merge(spans, self.state.rate, self.page * MERGE / PAGE), dropped

    def split(self, window: Window, records: Sequence[TaskId]) -> list[Window]:
        """The windows to read instead of one that came back full (one call each)."""
        if window.end - window.start <= 1:
            return [Window(start=window.start, end=window.end, whole=True, edge=window.edge)]
        # The full page shows a lower bound of the density: plan pieces of TARGET records.
        times = [_epoch(r.datetime_posted) or 0 for r in records]
        reach = max([t for t in times if window.start <= t <= window.end], default=window.end)
        density = len(records) / max(1, reach - window.start + 1)
        target = self.page * TARGET / PAGE
        # Open tasks the page returned are read; the others get windows of their own.
        got = {r.id for r in records}
        spans = sorted(
            (self._known[key][0] - 1, self._known[key][0] + 1, None, (key,))
            for key in window.ids
            if key not in got and key in self._known and self._known[key][1] is None
        )
        pieces = [
            # The same window again would come back full again: page through it instead.
            attrs.evolve(piece, whole=True)
            if (piece.start, piece.end) == (window.start, window.end)
            else piece
            for piece in _merge(spans, density, target)
        ]
        if window.edge is None:
            return pieces
        start = max(window.start, window.edge)
        step = max(1, min((window.end - start) // 2, int(target / density)))
        while start < window.end:
            stop = min(window.end, start + step)
            pieces.append(Window(start=start, end=stop, edge=start))
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
        else:
            self.changed += 1
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
        self.state = attrs.evolve(
            self.state, cursor=cursor, polls=self.state.polls + 1, rate=rate, last_poll=now
        )
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
