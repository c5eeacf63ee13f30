"""One quota through Redis, on the real clock: worker processes, and a follow beside an export.

A real redis-server and the emulator on its fast quota (10 calls a second, the strict rolling
window: an 11th call within a second is refused). Redis's clock cannot be faked, so these spans
are wall time, and a busy machine's scheduling shows in them. That is why they are measured
here and not asserted in the tests, which hold the guarantees exactly instead: no refusal, never
11 calls in a second, every record once (tests/test_redis.py, tests/test_follow_promises.py).

- ``shared.workers``: 4 worker processes (examples/redis_workers.py) page 4 windows through one
  RedisBackend. Baseline: the optimum span of all their calls, full bursts a period apart.
- ``shared.export_beside_follow``: an export in a worker process beside a follow in this one,
  one RedisBackend. Baseline: the same export alone, just before, through the same Redis. The
  follow may slow it by its own calls' share of the quota and no more: the target is the
  optimum span of the export's calls and the follow's beside them over that of the export's
  alone (a pager's calls are sequential, so the optimum itself is out of reach of both).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import dfs_async
from dfs_async.testing import Emulator, Live

from ._common import LOGIN, PASSWORD, UTC, Row

_EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "redis_workers.py"
_PATH = "/v3/backlinks/id_list"
_CALLS, _PERIOD = 10, 1.0
#: A miss of the optimum by more than this is a target missed. Real HTTP and 4 processes on a
#: small machine spend a few milliseconds per call that a virtual clock does not.
_SLACK = 1.10


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redis_workers", _EXAMPLE)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {_EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _real_clock(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without libfaketime: redis-server aborts under it (CI fakes the date)."""
    env = {k: v for k, v in environ.items() if not k.startswith("FAKETIME")}
    kept = [lib for lib in env.pop("LD_PRELOAD", "").split(":") if lib and "faketime" not in lib]
    if kept:
        env["LD_PRELOAD"] = ":".join(kept)
    return env


def _env() -> dict[str, str]:
    return {**os.environ, "DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}


async def _workers(redis_url: str, example: ModuleType, pages: int) -> dict[str, Any]:
    async with Emulator(LOGIN, PASSWORD, rate_limit=(_CALLS, _PERIOD)) as emu:
        end = datetime.now(UTC) - timedelta(days=1)
        windows = [
            (end - timedelta(days=30 * (i + 1)), end - timedelta(days=30 * i)) for i in range(4)
        ]
        results = await example.run_workers(
            redis_url=redis_url,
            base_url=emu.url,
            env=_env(),
            windows=windows,
            rate=(_CALLS, _PERIOD),
            page_size=10,
            max_items=10 * pages,
        )
        accepted = [r for r in emu.requests if r.accepted]
        return {
            "calls": len(emu.requests),
            "records": sum(r["records"] for r in results),
            "expected_records": 4 * 10 * pages,
            "counted": f"{len(emu.requests)} calls",
            "span": accepted[-1].time - accepted[0].time,
            "baseline": example.optimum_span(len(accepted), _CALLS, _PERIOD),
            "baseline_label": "optimum",
            "limit": _SLACK,
            "limit_why": "",
            "rejected": sum(1 for r in emu.requests if r.status_code != 20000),
            "max_in_window": emu.max_calls_in_window(_PATH, _PERIOD),
        }


async def _export_beside_follow(redis_url: str, example: ModuleType, page: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    now = datetime.now(UTC)
    # An hour of history already played (5 tasks a second), live from here on.
    live = Live(
        start=now - timedelta(hours=1),
        origin=loop.time() - 3600.0,
        post_every=(0.15, 0.25),
        queue=((1.0, 30.0, 1.0),),
        error_every=5.0,
    )
    rate = dfs_async.RateLimit(calls=_CALLS, period=_PERIOD)
    start = now - timedelta(minutes=59)
    stamp = start.strftime("%Y-%m-%d %H:%M:%S +00:00")

    async def export(emu: Emulator) -> tuple[int, list[Any]]:
        """The export in a worker process: its record count and its requests."""
        before = len(emu.requests)
        results = await example.run_workers(
            redis_url=redis_url,
            base_url=emu.url,
            env=_env(),
            windows=[(start, now - timedelta(minutes=1))],
            rate=(_CALLS, _PERIOD),
            page_size=page,
            max_items=None,
        )
        mine = [r for r in emu.requests[before:] if r.body[0].get("datetime_from") == stamp]
        return results[0]["records"], mine

    async with (
        Emulator(LOGIN, PASSWORD, live=live, rate_limit=(_CALLS, _PERIOD)) as emu,
        dfs_async.RedisBackend(redis_url) as shared,
        dfs_async.Client(
            LOGIN, PASSWORD, base_url=emu.url, now=live.now, rate_limit=rate, limiter=shared
        ) as client,
    ):
        live.advance()  # play the hour of history now, not inside the baseline's first call
        alone_records, alone = await export(emu)  # the baseline: nothing beside it
        await asyncio.sleep(_PERIOD)
        follower = client.backlinks.follow_ids(
            live.now() - timedelta(seconds=10), poll_interval=1.0, lookback=2.0
        )

        async def follow() -> int:
            async with follower:
                return sum([1 async for _ in follower])

        following = asyncio.create_task(follow())
        await asyncio.sleep(3.0)  # the follow is in its steady state
        records, export_calls = await export(emu)
        await follower.aclose()
        await following
    first, last = export_calls[0].time, export_calls[-1].time
    beside = [
        r
        for r in emu.requests
        if r.path == _PATH and r not in export_calls and first - _PERIOD < r.time <= last
    ]
    n, b = len(export_calls), len(beside)
    share = example.optimum_span(n + b, _CALLS, _PERIOD) / example.optimum_span(n, _CALLS, _PERIOD)
    return {
        "calls": len(emu.requests),
        "records": records,
        "expected_records": alone_records,
        "export_calls": n,
        "follow_calls_beside": b,
        "counted": f"{n} export calls beside {b} of the follow",
        "span": last - first,
        "baseline": alone[-1].time - alone[0].time,
        "baseline_label": "the export alone",
        # The follow's share of the quota: the export's windows grow from those of its own
        # calls to those of its calls and the follow's together.
        "limit": share * _SLACK,
        "limit_why": f" (the follow's share, {share:.2f}, x {_SLACK:.2f})",
        "rejected": sum(1 for r in emu.requests if r.status_code != 20000),
        "max_in_window": emu.max_calls_in_window(_PATH, _PERIOD),
    }


def _row(name: str, result: dict[str, Any]) -> Row:
    """A row from a result that names its baseline, its target ratio and what it counted."""
    if result["records"] != result["expected_records"]:
        raise AssertionError(
            f"{name} got {result['records']} records, {result['expected_records']} expected"
        )
    ratio = result["span"] / result["baseline"]
    quota_kept = result["rejected"] == 0 and result["max_in_window"] <= _CALLS
    return Row(
        name=name,
        measured=result["span"],
        baseline=result["baseline"],
        unit="s",
        baseline_label=result["baseline_label"],
        ratio=ratio,
        target=f"<= {result['limit']:.2f}{result['limit_why']} and 0 rejected",
        passed=ratio <= result["limit"] and quota_kept,
        note=(
            f"{result['counted']}, {result['rejected']} rejected, "
            f"at most {result['max_in_window']} in 1 s"
        ),
        details=result,
    )


def run(smoke: bool) -> list[Row]:
    names = ("shared.workers", "shared.export_beside_follow")
    if shutil.which("redis-server") is None:
        note = "skipped: redis-server is not installed"
        return [
            Row(
                name=name,
                measured=0.0,
                baseline=None,
                unit="s",
                baseline_label="optimum",
                ratio=None,
                target="-",
                passed=None,
                note=note,
            )
            for name in names
        ]
    example = _example()
    with example.throwaway_redis(env=_real_clock(os.environ)) as url:
        workers = asyncio.run(_workers(url, example, pages=3 if smoke else 25))
    with example.throwaway_redis(env=_real_clock(os.environ)) as url:
        beside = asyncio.run(_export_beside_follow(url, example, page=1000 if smoke else 100))
    return [_row(names[0], workers), _row(names[1], beside)]
