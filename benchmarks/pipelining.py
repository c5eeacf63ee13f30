"""Pipelining: a consumer that takes 2 s per page, with and without the one-page prefetch.

20 pages under the real 10 calls / 60 s limit on a virtual clock; the emulator answers every
call after 1 s (an injected delay: on the virtual clock a reply otherwise takes no time, and
there would be no latency to hide). Bound for any client that stamps a call when its reply
arrives (the only safe stamp, see `dfs_async._ratelimit`): the 11th call starts 60 s after the
1st reply, at 61 s, its reply comes at 62 s, and the consumer then needs 10 x 2 s for pages
11..20: 82 s. The consumer's work on pages 1..10 and every call's latency after the 1st
should hide behind the quota wait; without prefetch each page costs latency + work in turn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import dfs_async
from dfs_async.testing import Emulator, Fault

from ._common import LOGIN, PASSWORD, Row, run_on_virtual_clock, window

_PAGES = 20
_PAGE_SIZE = 100
_WORK = 2.0
_LATENCY = 1.0
_CALLS, _PERIOD = 10, 60.0
_PATH = "/v3/backlinks/id_list"
BOUND = _LATENCY + _PERIOD + _LATENCY + (_PAGES - _CALLS) * _WORK


async def _measure(prefetch: int) -> dict[str, Any]:
    tasks = _PAGE_SIZE * (_PAGES - 1) + _PAGE_SIZE // 2  # the last page is short
    start, end = window()
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=tasks, rate_limit=(_CALLS, _PERIOD)) as emu,
        dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, prefetch=prefetch) as client,
    ):
        emu.script({number: Fault.delay(_LATENCY) for number in range(1, _PAGES + 1)})
        loop = asyncio.get_running_loop()
        started = loop.time()
        pages = 0
        async for _page in client.backlinks.id_list(start, end, page_size=_PAGE_SIZE).pages():
            pages += 1
            await asyncio.sleep(_WORK)  # the consumer's own work on the page
        elapsed = loop.time() - started
        return {
            "pages": pages,
            "seconds": elapsed,
            "calls": len(emu.requests),
            "rejected": sum(1 for r in emu.requests if r.status_code == 40202),
            "max_in_window": emu.max_calls_in_window(_PATH, _PERIOD),
            "call_times": [round(r.time - started, 3) for r in emu.requests],
        }


def run(smoke: bool) -> list[Row]:
    # Virtual time: the full size runs in well under a second; smoke and full are the same.
    results = {p: run_on_virtual_clock(functools.partial(_measure, p)) for p in (1, 0)}
    for result in results.values():
        if result["pages"] != _PAGES or result["max_in_window"] > _CALLS:
            raise AssertionError(f"unexpected run: {result}")
    with_prefetch, without = results[1]["seconds"], results[0]["seconds"]
    serial_work = _PAGES * _WORK
    return [
        Row(
            name="pipelining.prefetch1",
            measured=with_prefetch,
            baseline=BOUND,
            unit="s",
            baseline_label="bound",
            ratio=with_prefetch / BOUND,
            target="<= 1.01 (work and latency hidden)",
            passed=with_prefetch / BOUND <= 1.01 and results[1]["rejected"] == 0,
            note=f"{results[1]['calls']} calls, {results[1]['rejected']} rejected",
            details={**results[1], "bound": BOUND, "consumer_work": serial_work},
        ),
        Row(
            name="pipelining.prefetch0",
            measured=without,
            baseline=with_prefetch,
            unit="s",
            baseline_label="prefetch=1",
            ratio=without / with_prefetch,
            target="info (no pipelining)",
            passed=None,
            note=f"{results[0]['calls']} calls, {results[0]['rejected']} rejected",
            details={**results[0], "bound": BOUND, "consumer_work": serial_work},
        ),
    ]
