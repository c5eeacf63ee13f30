"""Quota use: 100 pages under the real 10 calls / 60 s, on a virtual clock.

The emulator runs in the loop with the strict rolling window (``rate_limit=(10, 60.0)``): a call
that would be the 11th within 60 s is refused with 40202 and takes no slot. The optimum for 100
calls is ten calls at 0 s, ten at 60 s, ..., the 91st at 540 s: the stream ends at 540 s.

- dfs-async: the client with its default `RateLimit(calls=10, period=60.0)`.
- ``aiolimiter.AsyncLimiter(10, 60)`` around a raw loop (retrying a refused call through the
  limiter): a leaky bucket lets 10 go at once, then one every 6 s, so the 11th to 19th calls
  land inside the first minute and are refused.
- ``AsyncLimiter(1, 6)``: one call every 6 s, never refused, but it never bursts either, so
  the 100th call goes at 594 s.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import aiolimiter
import orjson

import dfs_async
from dfs_async.testing import Emulator

from ._common import LOGIN, PASSWORD, Row, api_window, run_on_virtual_clock, window

_PAGE_SIZE = 100
_PAGES = 100
_PERIOD = 60.0
_CALLS = 10
#: The 91st call cannot start before 9 full periods: the optimum end of 100 calls.
OPTIMUM = (_PAGES - 1) // _CALLS * _PERIOD
_PATH = "/v3/backlinks/id_list"


async def _with_dfs_async(emu: Emulator) -> int:
    start, end = window()
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        return len([task async for task in client.backlinks.id_list(start, end, page_size=100)])


def _naive(limiter: Callable[[], aiolimiter.AsyncLimiter]) -> Callable[[Emulator], Any]:
    async def loop(emu: Emulator) -> int:
        start, end = api_window()
        token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        bucket = limiter()
        count = offset = 0
        async with aiohttp.ClientSession() as session:
            while True:
                task = {
                    "datetime_from": start,
                    "datetime_to": end,
                    "limit": _PAGE_SIZE,
                    "offset": offset,
                }
                async with (
                    bucket,
                    session.post(emu.url + _PATH, data=orjson.dumps([task]), headers=headers) as r,
                ):
                    document = orjson.loads(await r.read())
                if document["status_code"] == 40202:
                    continue  # refused: ask again, through the limiter
                result = document["tasks"][0]["result"] or []
                count += len(result)
                offset += len(result)
                if len(result) < _PAGE_SIZE:
                    return count

    return loop


CONTENDERS: dict[str, Callable[[Emulator], Coroutine[Any, Any, int]]] = {
    "dfs-async": _with_dfs_async,
    "AsyncLimiter(10, 60)": _naive(lambda: aiolimiter.AsyncLimiter(10, 60)),
    "AsyncLimiter(1, 6)": _naive(lambda: aiolimiter.AsyncLimiter(1, 6)),
}


async def _measure(contender: Callable[[Emulator], Coroutine[Any, Any, int]]) -> dict[str, Any]:
    tasks = _PAGE_SIZE * (_PAGES - 1) + _PAGE_SIZE // 2  # the 100th page is short: no 101st call
    async with Emulator(LOGIN, PASSWORD, n_tasks=tasks, rate_limit=(_CALLS, _PERIOD)) as emu:
        loop = asyncio.get_running_loop()
        started = loop.time()
        count = await contender(emu)
        elapsed = loop.time() - started
        accepted = [r for r in emu.requests if r.accepted]
        return {
            "records": count,
            "expected_records": tasks,
            "seconds": elapsed,
            "calls": len(emu.requests),
            "accepted": len(accepted),
            "rejected": sum(1 for r in emu.requests if r.status_code == 40202),
            "max_in_window": emu.max_calls_in_window(_PATH, _PERIOD),
            "last_call_at": accepted[-1].time - started if accepted else None,
        }


def run(smoke: bool) -> list[Row]:
    # Virtual time: the full size runs in about a second, so smoke and full are the same.
    rows = []
    for name, contender in CONTENDERS.items():
        result = run_on_virtual_clock(functools.partial(_measure, contender))
        if result["records"] != result["expected_records"]:
            raise AssertionError(f"{name} got {result['records']} records")
        ratio = result["seconds"] / OPTIMUM
        ours = name == "dfs-async"
        rows.append(
            Row(
                name=f"quota.{'dfs_async' if ours else name.replace(' ', '')}",
                measured=result["seconds"],
                baseline=OPTIMUM,
                unit="s",
                baseline_label="optimum",
                ratio=ratio,
                target="<= 1.01 and 0 rejected" if ours else "info (naive limiter)",
                passed=(ratio <= 1.01 and result["rejected"] == 0) if ours else None,
                note=f"{result['calls']} calls, {result['rejected']} rejected",
                details=result,
            )
        )
    return rows
