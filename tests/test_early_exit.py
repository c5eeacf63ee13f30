"""Leaving a stream early, by break or by cancellation, is quiet: asyncio logs nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import pytest

import dfs_async
from dfs_async.testing import Emulator

LOGIN = "user@example.com"
PASSWORD = "s3cret-Pa55word"
NOW = datetime(2026, 12, 1, 0, 0, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=150)


def now() -> datetime:
    return NOW


class Records(logging.Handler):
    """Keeps every record logged to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def asyncio_log() -> Iterator[list[logging.LogRecord]]:
    """What the asyncio logger receives during the test ("Task exception was never retrieved")."""
    handler = Records()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, rate_limit=None, now=now) as emu:
        yield emu


def client_for(emu: Emulator) -> dfs_async.Client:
    # The quota lifted: these tests are about leaving streams, not waiting for the limiter.
    return dfs_async.Client(
        LOGIN,
        PASSWORD,
        base_url=emu.url,
        now=now,
        rate_limit=dfs_async.RateLimit(calls=1_000_000, period=1.0),
    )


async def settle(client: dfs_async.Client) -> None:
    """Collect what was dropped, run what collecting scheduled, and collect the tasks after."""
    for _ in range(3):
        gc.collect()
        for _ in range(20):
            await asyncio.sleep(0)
    gc.collect()
    assert not [task for task in client._tasks if not task.done()]


async def test_fifty_streams_left_by_break_log_nothing(
    emulator: Emulator, asyncio_log: list[logging.LogRecord]
) -> None:
    """50 streams left with break (records and pages views) give no asyncio log record at all."""
    async with client_for(emulator) as client:
        for number in range(50):
            if number % 2:
                async for _ in client.backlinks.id_list(START, page_size=100):
                    break
            else:
                async for _ in client.backlinks.id_list(START, page_size=100).pages():
                    break
        await settle(client)
    assert [record.getMessage() for record in asyncio_log] == []


async def test_random_cancellations_log_nothing(
    emulator: Emulator, asyncio_log: list[logging.LogRecord]
) -> None:
    """100 consumers cancelled after a random number of loop turns give no asyncio log record."""
    rng = random.Random(20261201)
    got: list[int] = []
    cancelled = 0

    async def consume(client: dfs_async.Client, pages: bool) -> None:
        stream = client.backlinks.id_list(START, page_size=100)
        if pages:
            async for page in stream.pages():
                for _ in page.records:
                    got.append(1)
                    await asyncio.sleep(0)
        else:
            async for _ in stream:
                got.append(1)
                await asyncio.sleep(0)

    async with client_for(emulator) as client:
        for _ in range(100):
            consumer = asyncio.create_task(consume(client, rng.random() < 0.5))
            for _ in range(rng.randrange(1, 300)):
                await asyncio.sleep(0)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            cancelled += consumer.cancelled()
        await settle(client)
    assert [record.getMessage() for record in asyncio_log] == []
    # Each consumer takes a loop turn per record, 2500 in all: every one was cut short, some
    # while waiting for a page, others while holding a record.
    assert cancelled == 100
    assert 0 < len(got) < 100 * 2500
