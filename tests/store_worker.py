"""A store writer for the SIGKILL tests, run as its own process: ``python store_worker.py ...``.

``export URL PATH FROM TO``: id_list and errors of the window into the store, page by page,
each resumed from the state saved in the store, then exit 0.
``follow URL PATH START WALL0 SPEED``: follow_ids and follow_errors into the store forever,
resumed from the stored states, on a clock that runs SPEED times faster than the wall's from
WALL0 (the wall time at which the live emulator's clock stood at START).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import dfs_async

LOGIN = "login"
PASSWORD = "password"
FAST = dfs_async.RateLimit(calls=1000, period=1.0)
#: An export at two pages a second: a run killed within a second or two has done a little.
SLOW = dfs_async.RateLimit(calls=1, period=0.5)


async def export(url: str, path: str, start: datetime, end: datetime) -> None:
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=url, rate_limit=SLOW) as client:
        with dfs_async.Store(path) as store:
            resume = store.stream_state("ids")
            ids = client.backlinks.id_list(start, end, resume=resume)
            async for _ in store.export("ids", ids):
                pass
            resume = store.stream_state("errors")
            # The errors endpoint reaches 7 days back: the last 6.5 days of the window.
            errors = client.backlinks.errors(
                datetime_from=end - timedelta(days=6.5), datetime_to=end, resume=resume
            )
            async for _ in store.export("errors", errors):
                pass


async def follow(url: str, path: str, start: datetime, wall0: float, speed: float) -> None:
    lag = timedelta(seconds=5)  # never ahead of the emulator's clock

    def now() -> datetime:
        return start + timedelta(seconds=(time.time() - wall0) * speed) - lag

    async with dfs_async.Client(LOGIN, PASSWORD, base_url=url, rate_limit=FAST, now=now) as client:
        with dfs_async.Store(path) as store:
            since = start - timedelta(minutes=1)
            ids_state = store.follow_state("ids")
            errors_state = store.follow_state("errors")
            ids = client.backlinks.follow_ids(
                None if ids_state else since, poll_interval=1.0, lookback=300, resume=ids_state
            )
            errors = client.backlinks.follow_errors(
                datetime_from=None if errors_state else since,
                poll_interval=1.0,
                lookback=300,
                resume=errors_state,
            )

            async def drain(name: str, follower: Any) -> None:
                async for _ in store.follow(name, follower):
                    pass

            await asyncio.gather(drain("ids", ids), drain("errors", errors))


def main(argv: list[str]) -> None:
    mode, url, path, *rest = argv
    if mode == "export":
        start, end = (datetime.fromisoformat(x).astimezone(timezone.utc) for x in rest)
        asyncio.run(export(url, path, start, end))
    else:
        origin = datetime.fromisoformat(rest[0])
        asyncio.run(follow(url, path, origin, float(rest[1]), float(rest[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
