"""Checked by mypy, never run: the follow API keeps its precise types (no `Any` leaks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_type

import dfs_async


async def followers_are_typed(client: dfs_async.Client, start: datetime) -> None:
    ids = client.backlinks.follow_ids(start, poll_interval=30.0, include_metadata=True)
    assert_type(ids, dfs_async.Follower[dfs_async.TaskId])
    async with ids as same:
        assert_type(same, dfs_async.Follower[dfs_async.TaskId])
        async for task in same:
            assert_type(task, dfs_async.TaskId)
            assert_type(task.datetime_done, datetime | None)
    errors = client.api("serp").follow_errors("serp/google/organic/live", datetime_from=start)
    assert_type(errors, dfs_async.Follower[dfs_async.TaskError])
    async for entry in errors:
        assert_type(entry, dfs_async.TaskError)
        assert_type(entry.error_code, int)
    state = ids.state
    assert_type(state, dfs_async.FollowState)
    assert_type(state.to_json(), dict[str, Any])
    assert_type(dfs_async.FollowState.from_json(state.to_json()), dfs_async.FollowState)
    assert_type(state.last_poll, int | None)
    resumed = client.backlinks.follow_ids(resume=state)
    assert_type(await resumed.__anext__(), dfs_async.TaskId)
    assert_type(resumed.last_poll_calls, int)
    await resumed.aclose()
    exported = [task async for task in client.backlinks.id_list(start)]
    seeded = dfs_async.FollowState.after_id_list_export(
        api="backlinks", include_metadata=False, end=start, lookback=120, tasks=exported
    )
    update = client.backlinks.follow_ids(resume=seeded, once=True)
    assert_type(update, dfs_async.Follower[dfs_async.TaskId])
    entries = [entry async for entry in client.backlinks.errors()]
    assert_type(
        dfs_async.FollowState.after_errors_export(
            api="backlinks", filtered_function=None, end=start, lookback=120, entries=entries
        ),
        dfs_async.FollowState,
    )
