"""A reply may not grow past max_reply_bytes, counted as received and as decompressed: reading
stops there, memory stays bounded, the error's .raw is short, and the call is not retried."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone

import pytest

import dfs_async
from dfs_async.testing import Emulator, Fault

LOGIN = "worker@example.com"
PASSWORD = "reply-limits-password"
MiB = 1 << 20
RETRY = dfs_async.Retry(attempts=4, initial=0.01, maximum=0.01)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=20000, n_errors=30, seed=9) as emulator:
        yield emulator


@pytest.fixture
def peak() -> Iterator[list[int]]:
    """Peak traced memory (bytes) while the test ran, read after it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    result: list[int] = []
    try:
        yield result
    finally:
        tracemalloc.stop()


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=20)


async def fail_with(client: dfs_async.Client) -> dfs_async.ReplyTooLargeError:
    with pytest.raises(dfs_async.ReplyTooLargeError) as info:
        async for _task in client.backlinks.id_list(since()):
            pass
    return info.value


async def test_a_declared_huge_body_is_refused_before_reading(
    emu: Emulator, peak: list[int]
) -> None:
    """Content-Length above the default cap (32 MiB): refused at the headers, not retried."""
    emu.inject(1, Fault.huge_body(200 * MiB))
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, retry=RETRY) as client:
        assert client.max_reply_bytes == 32 * MiB
        exc = await fail_with(client)
        used = tracemalloc.get_traced_memory()[1]
    assert str(exc) == (
        f"the reply is larger than max_reply_bytes={32 * MiB}: Content-Length is {200 * MiB} "
        "(HTTP 200) (/v3/backlinks/id_list)"
    )
    assert (exc.raw, exc.path, exc.http_status, exc.limit) == ("", "$", 200, 32 * MiB)
    assert len(emu.requests) == 1
    assert used < 4 * MiB


async def test_an_undeclared_huge_body_stops_at_the_cap(emu: Emulator, peak: list[int]) -> None:
    """A chunked 64 MiB body under a 1 MiB cap: reading stops after the cap, .raw is 200 chars."""
    emu.inject(1, Fault.huge_body(64 * MiB, declared=False))
    async with dfs_async.Client(
        LOGIN, PASSWORD, base_url=emu.url, retry=RETRY, max_reply_bytes=MiB
    ) as client:
        exc = await fail_with(client)
        used = tracemalloc.get_traced_memory()[1]
    assert str(exc).startswith(f"the reply is larger than max_reply_bytes={MiB}: over {MiB} bytes")
    assert exc.raw == '{"status_code": 20000, "padding": "' + " " * 165
    assert len(emu.requests) == 1
    assert used < 6 * MiB


async def test_a_gzip_bomb_is_stopped_with_bounded_memory(emu: Emulator, peak: list[int]) -> None:
    """2 MiB of gzip inflating to 2 GiB, default cap: stopped near 32 MiB, not retried."""
    emu.inject(1, Fault.gzip_bomb(2 << 30))
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, retry=RETRY) as client:
        exc = await fail_with(client)
        used = tracemalloc.get_traced_memory()[1]
    assert f"max_reply_bytes={32 * MiB}: over {32 * MiB} bytes" in str(exc)
    assert exc.raw == "\0" * 200
    assert len(emu.requests) == 1
    # What was kept (the cap) plus a few pieces in flight; 2 GiB would be 64 times the cap.
    assert used < 48 * MiB


async def test_a_gzip_bomb_under_a_small_cap(emu: Emulator, peak: list[int]) -> None:
    """The decompressed count is what stops a bomb: 1 MiB cap, a few MiB of memory."""
    emu.inject(1, Fault.gzip_bomb(1 << 30))
    async with dfs_async.Client(
        LOGIN, PASSWORD, base_url=emu.url, retry=RETRY, max_reply_bytes=MiB
    ) as client:
        exc = await fail_with(client)
        used = tracemalloc.get_traced_memory()[1]
    assert f"max_reply_bytes={MiB}: over {MiB} bytes" in str(exc)
    assert used < 6 * MiB


async def test_real_pages_fit_well_under_the_cap(emu: Emulator) -> None:
    """1000-record pages with metadata pass a 1 MiB cap; the default is 32 times that."""
    async with dfs_async.Client(
        LOGIN, PASSWORD, base_url=emu.url, retry=RETRY, max_reply_bytes=MiB
    ) as client:
        got = [t async for t in client.backlinks.id_list(since(), include_metadata=True)]
    assert len(got) == len({t.id for t in got}) > 1000
    assert all(r.http_status == 200 for r in emu.requests)


@pytest.mark.parametrize("bad", [0, 1023, -1, True, 1.5e6, "32MiB", None])
def test_max_reply_bytes_must_be_a_sane_int(bad: object) -> None:
    """A cap that is not an int of at least 1024 is refused, saying what to pass."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, max_reply_bytes=bad)  # type: ignore[arg-type]
    assert str(info.value) == f"max_reply_bytes must be an int of at least 1024, got {bad!r}"
