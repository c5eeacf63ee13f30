"""Following: calls per poll in steady state and the state's size, 24 h of a live account.

The emulator's live mode (a task every 2-8 s, queue times up to 6 h, errors arriving) runs on a
virtual clock; `follow_ids` polls every 60 s under each reading of the window (posting time,
completion time). Steady state is every poll after the first 6 hours, once the longest queue
times have filled in.

Baseline: a poll that re-reads, every time, the whole span from the oldest task still queued to
now (``1 + records in it // 1000`` calls: the strategy of a cursor with a lookback as long as
the longest queue). The state is compared with the JSON of every task id followed, what a
follower that remembered all it had seen would keep.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import statistics
from datetime import datetime, timedelta, timezone
from typing import Any

import dfs_async
from dfs_async.testing import Emulator, Live

from ._common import LOGIN, PASSWORD, Row, run_on_virtual_clock

_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
_STATE_LIMIT = 64 * 1024


async def _follow(window_on: str, hours: float, warm: float) -> dict[str, Any]:
    live = Live(start=_START, seed=5, window_on=window_on)
    per_poll: list[int] = []
    naive: list[int] = []
    posted: list[int] = []  # first sightings' posted times, sorted (they arrive in order)
    seen: set[str] = set()
    async with Emulator(LOGIN, PASSWORD, live=live) as emu:
        live.elapsed()
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, now=live.now) as client:
            follower = client.backlinks.follow_ids(_START - timedelta(minutes=1))

            async def consume() -> None:
                polls = 0
                async for task in follower:
                    if task.id not in seen:
                        seen.add(task.id)
                        bisect.insort(posted, int(task.datetime_posted.timestamp()))
                    state = follower.state
                    if state.polls != polls:
                        polls = state.polls
                        if loop.time() - began >= warm:
                            per_poll.append(follower.last_poll_calls)
                            oldest = min(
                                (t[1] for t in state.tasks if t[2] is None), default=state.cursor
                            )
                            inside = len(posted) - bisect.bisect_left(posted, oldest)
                            naive.append(1 + inside // 1000)

            task = asyncio.create_task(consume())
            await asyncio.sleep(hours * 3600.0)
            state = follower.state.to_json()
            await follower.aclose()
            await task
    return {
        "window_on": window_on,
        "hours": hours,
        "measured_after_hours": warm / 3600.0,
        "polls_measured": len(per_poll),
        "calls_per_poll_mean": statistics.mean(per_poll),
        "calls_per_poll_median": statistics.median(per_poll),
        "calls_per_poll_max": max(per_poll),
        "naive_calls_per_poll_mean": statistics.mean(naive),
        "tasks_followed": len(seen),
        "state_bytes": len(json.dumps(state)),
        "state_tasks": len(state["tasks"]),
        "all_ids_bytes": len(json.dumps(sorted(seen))),
        "rejected": sum(1 for r in emu.requests if r.status_code != 20000),
    }


def run(smoke: bool) -> list[Row]:
    # Smoke: two hours, the second measured (queue times have not all filled in by then).
    hours, warm = (2.0, 3600.0) if smoke else (24.0, 6 * 3600.0)
    rows = []
    for window_on in ("posted", "done"):
        result = run_on_virtual_clock(functools.partial(_follow, window_on, hours, warm))
        mean = result["calls_per_poll_mean"]
        rows.append(
            Row(
                name=f"follow.calls_per_poll.{window_on}",
                measured=mean,
                baseline=result["naive_calls_per_poll_mean"],
                unit="calls",
                baseline_label="re-read from the oldest queued",
                ratio=mean / result["naive_calls_per_poll_mean"],
                target="median 1, 0 rejected",
                passed=result["calls_per_poll_median"] == 1 and result["rejected"] == 0,
                note=(
                    f"median {result['calls_per_poll_median']:g}, max "
                    f"{result['calls_per_poll_max']}, {result['polls_measured']} polls"
                ),
                details=result,
            )
        )
        rows.append(
            Row(
                name=f"follow.state.{window_on}",
                measured=result["state_bytes"],
                baseline=result["all_ids_bytes"],
                unit="B",
                baseline_label=f"every id of {result['tasks_followed']:,} tasks",
                ratio=result["state_bytes"] / result["all_ids_bytes"],
                target=f"< {_STATE_LIMIT // 1024} KB",
                passed=result["state_bytes"] < _STATE_LIMIT,
                note=f"after {hours:g} h, {result['state_tasks']} tasks held",
                details=result,
            )
        )
    return rows
