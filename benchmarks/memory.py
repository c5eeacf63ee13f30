"""Memory: the client streams, it does not collect.

Peak traced memory (tracemalloc: every Python allocation of this process) while streaming
1,000,000 task IDs, against the same for 10,000, from one emulator process (rate limit off).
The consumer discards each record. A client that held on to records, keys or pages would
grow with the stream; this one holds one page in the consumer's hands and one in flight.
"""

from __future__ import annotations

import asyncio
import tracemalloc

import dfs_async

from ._common import LOGIN, PASSWORD, Row, emulator_process, window

_MB = 1024 * 1024
_LIMIT_MB = 5.0


async def _stream(url: str, max_items: int) -> int:
    start, end = window()
    count = 0
    async with dfs_async.Client(
        LOGIN,
        PASSWORD,
        base_url=url,
        rate_limit=dfs_async.RateLimit(calls=1_000_000, period=1.0),
    ) as client:
        async for _task in client.backlinks.id_list(start, end, max_items=max_items):
            count += 1
    return count


def _peak(url: str, max_items: int) -> float:
    """Peak traced memory above the level before the run, in MB."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        count = asyncio.run(_stream(url, max_items))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if count != max_items:
        raise AssertionError(f"streamed {count} task IDs, not {max_items}")
    return (peak - before) / _MB


def run(smoke: bool) -> list[Row]:
    large, small = (20_000, 2_000) if smoke else (1_000_000, 10_000)
    with emulator_process(large) as url:
        asyncio.run(_stream(url, small))  # warm-up: imports, caches, the first connection
        small_mb = _peak(url, small)
        large_mb = _peak(url, large)
    growth = large_mb - small_mb
    return [
        Row(
            name="memory.peak_1m_vs_10k",
            measured=large_mb,  # the baseline label and the details give the sizes
            baseline=small_mb,
            unit="MB",
            baseline_label=f"{small:,} IDs",
            ratio=large_mb / small_mb,
            target=f"growth < {_LIMIT_MB:g} MB",
            passed=growth < _LIMIT_MB,
            note=f"growth {growth:+.2f} MB",
            details={
                "large_ids": large,
                "small_ids": small,
                "large_peak_mb": large_mb,
                "small_peak_mb": small_mb,
                "growth_mb": growth,
            },
        )
    ]
