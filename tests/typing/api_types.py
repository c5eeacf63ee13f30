"""Checked by mypy, never run: the public API keeps its precise types (no `Any` leaks)."""

from __future__ import annotations

from datetime import datetime
from typing import assert_type

import dfs_async


async def records_are_typed(client: dfs_async.Client, start: datetime) -> None:
    tasks = client.backlinks.id_list(start)
    assert_type(tasks, dfs_async.Pager[dfs_async.TaskId])
    async for task in tasks:
        assert_type(task, dfs_async.TaskId)
        assert_type(task.datetime_done, datetime | None)
        assert_type(task.cost, float)
    async for error in client.api("serp").errors("serp/google/organic/live"):
        assert_type(error, dfs_async.TaskError)
        assert_type(error.error_code, int)
    async for page in client.backlinks.errors().pages():
        assert_type(page, dfs_async.Page[dfs_async.TaskError])
        assert_type(page.records, tuple[dfs_async.TaskError, ...])
    assert_type(tasks.state, dfs_async.PagerState)
    assert_type(client.stats.calls, int)
