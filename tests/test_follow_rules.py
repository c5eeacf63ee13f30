"""The pure follow rules against a model server: every version exactly once, bounded state."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfs_async._follow import (
    MAX_PERIOD,
    ErrorsRules,
    FollowState,
    IdListRules,
    Window,
    due,
    tier,
)
from dfs_async._models import TaskError, TaskId

UTC = timezone.utc
START = 1_790_000_000
LOOKBACK = 30
PAGE = 5
INTERVAL = 10


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@attrs.define
class Model:
    """A server holding tasks; windows filter on posted or on done (else posted)."""

    reading: str
    tasks: list[dict[str, Any]] = attrs.Factory(list)

    def read(self, window: Window, flip: bool) -> list[TaskId]:
        def key(task: dict[str, Any]) -> int:
            if self.reading == "done" and task["done"] is not None:
                return int(task["done"])
            return int(task["posted"])

        chosen = [t for t in self.tasks if window.start <= key(t) <= window.end]
        chosen.sort(key=key, reverse=flip)
        if not window.whole:
            chosen = chosen[:PAGE]
        return [
            TaskId(
                id=t["id"],
                url="u",
                datetime_posted=at(t["posted"]),
                datetime_done=None if t["done"] is None else at(t["done"]),
                status="Ok." if t["done"] is not None else "Task In Queue.",
                cost=0.0 if t["done"] is None else 0.01,
            )
            for t in chosen
        ]


def fresh() -> IdListRules:
    state = FollowState(
        function="id_list", api="backlinks", params={}, cursor=START, lookback=LOOKBACK
    )
    return IdListRules(state, page=PAGE, interval=INTERVAL)


def reload(rules: IdListRules) -> IdListRules:
    saved = json.loads(json.dumps(rules.snapshot().to_json()))
    return IdListRules(FollowState.from_json(saved), page=PAGE, interval=INTERVAL)


# One step: (seconds to advance, tasks to post, how many open tasks complete, kill after N offers)
steps = st.lists(
    st.tuples(
        st.integers(1, 90),
        st.integers(0, 8),
        st.integers(0, 4),
        st.none() | st.integers(0, 6),
        st.booleans(),
    ),
    min_size=1,
    max_size=25,
)


def poll(
    model: Model, rules: IdListRules, now: int, kill: int | None, flip: bool, log: list[Any]
) -> bool:
    """One poll; False if it was killed after `kill` offers that yielded."""
    windows, _ = rules.plan(now, earliest=START - 10**6)
    queue = list(windows)
    yielded = 0
    while queue:
        window = queue.pop(0)
        got = model.read(window, flip)
        rules.read(window)
        for task in got:
            if rules.offer(task):
                log.append((task.id, task.datetime_done, task.status))
                yielded += 1
                if kill is not None and yielded >= kill:
                    return False
        if len(got) >= PAGE and not window.whole:
            queue[0:0] = rules.split(window, got)
    rules.finish(now)
    return True


@pytest.mark.parametrize("reading", ["posted", "done"])
@settings(max_examples=150, deadline=None)
@given(plan=steps, data=st.data())
def test_any_interleaving_yields_each_version_exactly_once(
    reading: str, plan: list[Any], data: st.DataObject
) -> None:
    """Posts, completions, polls and kill-resumes: the log holds each version exactly once."""
    model = Model(reading)
    rules = fresh()
    now = START
    log: list[Any] = []
    counter = 0
    last_poll = START
    for advance, posts, completions, kill, flip in plan:
        # Completions only for tasks posted before the last finished poll began, so that
        # their queued version was visible to at least one whole poll.
        ready = [t for t in model.tasks if t["done"] is None and t["posted"] < last_poll]
        for task in ready[:completions]:
            task["done"] = now
        for _ in range(posts):
            model.tasks.append({"id": f"t{counter:04d}", "posted": now, "done": None})
            counter += 1
        now += advance
        if poll(model, rules, now, kill, flip, log):
            last_poll = now
        else:
            rules = reload(rules)  # killed: the next poll starts from the saved state
    for task in model.tasks:
        task["done"] = task["done"] if task["done"] is not None else now
    # Enough quiet polls for the slowest re-read tier (every MAX_PERIOD at most) to come round.
    for _ in range(2 * MAX_PERIOD // LOOKBACK + 3):
        now += LOOKBACK
        assert poll(model, rules, now, None, False, log)
    # Required: each done version, and each queued version a finished poll could see. A
    # queued version seen only by a killed poll (completed before any poll finished) may or
    # may not have been handed over before the kill.
    queued: dict[str, tuple[str, datetime | None, str]] = {
        t["id"]: (t["id"], None, "Task In Queue.") for t in model.tasks
    }
    required = {queued[t["id"]] for t in model.tasks if t["posted"] < last_poll}
    required |= {(t["id"], at(t["done"]), "Ok.") for t in model.tasks}
    assert len(set(log)) == len(log)
    assert required <= set(log) <= required | set(queued.values())
    # Bounded: after the quiet polls only the edge remains in memory.
    assert rules.open_count() == 0
    assert len(rules.snapshot().tasks) == 0


@pytest.mark.parametrize("reading", ["posted", "done"])
@settings(max_examples=100, deadline=None)
@given(before=steps, after=steps)
def test_a_follow_continuing_an_export_repeats_and_loses_nothing(
    reading: str, before: list[Any], after: list[Any]
) -> None:
    """An export, then a follow from its records (an --update): each version exactly once."""
    model = Model(reading)
    now = START
    counter = 0
    for advance, posts, completions, _, _ in before:
        for task in [t for t in model.tasks if t["done"] is None][:completions]:
            task["done"] = now
        for _ in range(posts):
            model.tasks.append({"id": f"t{counter:04d}", "posted": now, "done": None})
            counter += 1
        now += advance
    exported = model.read(Window(start=START - 10, end=now, whole=True), False)
    log: list[Any] = [(t.id, t.datetime_done, t.status) for t in exported]
    state = FollowState.after_id_list_export(
        api="backlinks", include_metadata=False, end=at(now), lookback=LOOKBACK, tasks=exported
    )
    rules = IdListRules(state, page=PAGE, interval=INTERVAL)
    export_time = last_poll = now
    for advance, posts, completions, kill, flip in after:
        ready = [t for t in model.tasks if t["done"] is None and t["posted"] < last_poll]
        for task in ready[:completions]:
            task["done"] = now
        for _ in range(posts):
            model.tasks.append({"id": f"t{counter:04d}", "posted": now, "done": None})
            counter += 1
        now += advance
        if poll(model, rules, now, kill, flip, log):
            last_poll = now
        else:
            rules = reload(rules)
    for task in model.tasks:
        task["done"] = task["done"] if task["done"] is not None else now
    for _ in range(2 * MAX_PERIOD // LOOKBACK + 3):
        now += LOOKBACK
        assert poll(model, rules, now, None, False, log)
    queued: dict[str, tuple[str, datetime | None, str]] = {
        t["id"]: (t["id"], None, "Task In Queue.") for t in model.tasks
    }
    required: set[tuple[str, datetime | None, str]]
    required = {(t["id"], at(t["done"]), "Ok.") for t in model.tasks}
    required |= {(t.id, t.datetime_done, t.status) for t in exported}
    required |= {queued[t["id"]] for t in model.tasks if export_time <= t["posted"] < last_poll}
    assert len(set(log)) == len(log)
    assert required <= set(log) <= required | set(queued.values())
    assert rules.open_count() == 0


def test_open_task_beyond_reach_is_dropped_and_counted() -> None:
    """An open task older than the earliest window start leaves the open set, counted."""
    rules = fresh()
    queued = TaskId(
        id="old",
        url="u",
        datetime_posted=at(START),
        datetime_done=None,
        status="Task In Queue.",
        cost=0.0,
    )
    assert rules.offer(queued)
    rules.finish(START + 100)
    windows, dropped = rules.plan(START + 200, earliest=START + 1)
    assert dropped == ["old"]
    assert rules.snapshot().dropped == 1
    assert windows == [Window(start=START + 70, end=START + 200, edge=START + 70)]


def test_plan_merges_open_tasks_one_call_covers() -> None:
    """Open tasks close together share one window; far apart ones get their own."""
    rules = fresh()
    for i, posted in enumerate((START, START + 3, START + 5000)):
        task = TaskId(
            id=f"o{i}",
            url="u",
            datetime_posted=at(posted),
            datetime_done=None,
            status="Task In Queue.",
            cost=0.0,
        )
        assert rules.offer(task)
    rules.finish(START + 6000)
    # As after a resume with no finished poll: every open task is due.
    rules.state = attrs.evolve(rules.state, rate=0.01, last_poll=None)
    windows, _ = rules.plan(START + 6060, earliest=START - 100)
    assert windows == [
        Window(start=START - 1, end=START + 4, ids=("o0", "o1")),
        Window(start=START + 4999, end=START + 5001, ids=("o2",)),
        Window(start=START + 5970, end=START + 6060, edge=START + 5970),
    ]


def test_cadence_gives_each_grid_point_to_one_tier_and_bounds_the_delay() -> None:
    """Tiers double with age, each tier is due once per period, and two never share a poll."""
    interval = 60
    assert [tier(age, interval) for age in (0, 959, 960, 1919, 1920, 3840, 7680, 10**7)] == [
        0,
        0,
        1,
        1,
        2,
        3,
        4,
        5,
    ]
    for k in range(1, 6):
        polls = [n for n in range(1, 257) if due(k, (n - 1) * interval, n * interval, interval)]
        assert len(polls) == 256 // 2**k
        assert {b - a for a, b in itertools.pairwise(polls)} == {2**k}
    for n in range(1, 257):
        assert sum(due(k, (n - 1) * interval, n * interval, interval) for k in range(1, 6)) <= 1
    # A poll that covers several grid points (a pause, a slow poll) reads every tier they owe.
    assert all(due(k, 0, 64 * interval, interval) for k in range(6))
    # The period is at most an eighth of the age, and at most an hour.
    for age in range(0, 10**6, 997):
        k = tier(age, interval)
        assert k == 0 or 2**k * interval <= min(age / 8, 3600)


def _entry(moment: int, code: int) -> TaskError:
    return TaskError(
        id="same-task",
        datetime=at(moment),
        function="backlinks/live",
        error_code=code,
        error_message="m",
        http_url="u",
        http_method="POST",
        http_code=200,
        http_time=0.1,
        http_response="r",
    )


def test_errors_identical_entries_each_delivered_once_across_resume() -> None:
    """Two identical entries and one other of the same id: three deliveries, none again."""
    state = FollowState(
        function="errors", api="backlinks", params={}, cursor=START, lookback=LOOKBACK
    )
    rules = ErrorsRules(state)
    entries = [_entry(START + 5, 50000), _entry(START + 5, 50000), _entry(START + 6, 40501)]
    rules.plan(START + 10, earliest=0)
    assert [rules.offer(e) for e in entries[:2]] == [True, True]
    saved = FollowState.from_json(json.loads(json.dumps(rules.snapshot().to_json())))
    again = ErrorsRules(saved)
    again.plan(START + 20, earliest=0)
    assert [again.offer(e) for e in entries] == [False, False, True]
    again.finish(START + 20)
    again.plan(START + 100, earliest=0)
    assert [again.offer(e) for e in entries] == [False, False, False]
    assert again.finish(START + 100).entries == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 9}, "unsupported follow state version 9"),
        ({"cursor": "x"}, "'cursor' is missing or of the wrong type"),
        ({"tasks": [["a", 1]]}, "'tasks' holds a bad entry"),
        ({"function": "other"}, "'function' must be"),
    ],
)
def test_bad_state_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    """from_json refuses a damaged state with a message naming the field."""
    good = fresh().snapshot().to_json()
    with pytest.raises(ValueError, match=message):
        FollowState.from_json({**good, **change})
