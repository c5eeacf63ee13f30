"""Bad arguments are refused with an InvalidArgumentError saying what to change, before any
network call (the emulator's request log stays empty)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import dfs_async
from dfs_async.testing import Emulator

LOGIN = "worker@example.com"
PASSWORD = "validation-password"
PLUS5 = timezone(timedelta(hours=5))
MINUS5 = timezone(timedelta(hours=-5))


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=10, n_errors=10, seed=1) as emulator:
        yield emulator


async def refused(emu: Emulator, **kwargs: Any) -> str:
    """The message of the error a stream with these arguments raises; no request was made."""
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        with pytest.raises(dfs_async.InvalidArgumentError) as info:
            async for _task in client.backlinks.id_list(**kwargs):
                pass
    assert emu.requests == []
    return str(info.value)


async def test_datetime_min_with_a_positive_offset(emu: Emulator) -> None:
    """datetime.min at +05:00 has no UTC form: refused, not a raw OverflowError."""
    message = await refused(emu, datetime_from=datetime.min.replace(tzinfo=PLUS5))
    assert message == (
        "datetime_from 0001-01-01 00:00:00+05:00 cannot be expressed in UTC; "
        "pass a date within years 1-9999 in UTC"
    )


async def test_datetime_max_with_a_negative_offset(emu: Emulator) -> None:
    """datetime.max at -05:00 has no UTC form: refused, not a raw OverflowError."""
    now = datetime.now(timezone.utc)
    message = await refused(
        emu,
        datetime_from=now - timedelta(days=1),
        datetime_to=datetime.max.replace(tzinfo=MINUS5),
    )
    assert message.startswith("datetime_to 9999-12-31 23:59:59.999999-05:00 cannot be expressed")


@pytest.mark.parametrize("resume", ["x", {"api": "backlinks"}, 3])
async def test_resume_must_be_a_pager_state(emu: Emulator, resume: object) -> None:
    """resume= of another type is refused, not a raw AttributeError."""
    message = await refused(emu, resume=resume)
    assert message == (
        "resume must be a PagerState (PagerState.from_json(...) reads a saved one), "
        f"got {type(resume).__name__}"
    )


async def test_errors_resume_must_be_a_pager_state(emu: Emulator) -> None:
    """The errors endpoint refuses a bad resume= the same way."""
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        with pytest.raises(dfs_async.InvalidArgumentError, match="resume must be a PagerState"):
            async for _error in client.backlinks.errors(resume="x"):  # type: ignore[arg-type]
                pass
    assert emu.requests == []


@pytest.mark.parametrize("timeout", [math.inf, math.nan, -math.inf, 0, 86_401, "5", True])
def test_timeout_must_be_finite_and_positive(timeout: object) -> None:
    """inf (an OverflowError mid-stream) and nan (no timeout at all) are refused up front."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, timeout=timeout)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"timeout must be a finite number of seconds, above 0 and at most 86400 (a day), "
        f"got {timeout!r}"
    )


async def test_a_day_of_timeout_is_accepted() -> None:
    """The largest accepted timeout is kept as given."""
    async with dfs_async.Client(LOGIN, PASSWORD, timeout=86_400) as client:
        assert client.timeout == 86_400.0


def test_non_ascii_host_is_refused() -> None:
    """A non-ASCII host is refused with a hint at the IDNA form, not a raw ValueError."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, base_url="https://äpi.dataforseo.com")
    assert str(info.value) == (
        "base_url's host must be ASCII: write an international domain name in its IDNA form "
        "(xn--...), got 'https://äpi.dataforseo.com'"
    )


@pytest.mark.parametrize("port", ["99999", "0", "65536", "x"])
def test_port_out_of_range_is_refused(port: str) -> None:
    """Port 99999 is refused now, not retried later as a transport error."""
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, base_url=url)
    assert str(info.value) == f"base_url's port must be a number from 1 to 65535, got {url!r}"


def test_bytes_password_is_refused() -> None:
    """A bytes password would be sent as "b'...'": refused, saying to decode it."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD.encode())  # type: ignore[arg-type]
    assert str(info.value) == (
        "login and password must be str (decode bytes first), got str and bytes"
    )
    assert PASSWORD not in repr(info.value)


def test_bytes_login_is_refused() -> None:
    """A bytes login is refused the same way."""
    with pytest.raises(dfs_async.InvalidArgumentError, match=r"got bytes and str$"):
        dfs_async.Client(LOGIN.encode(), PASSWORD)  # type: ignore[arg-type]


def test_login_with_a_colon_is_refused() -> None:
    """Basic auth splits at the first ':', so such a login cannot be sent unambiguously."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client("team:worker", PASSWORD)
    assert str(info.value) == "login must not contain ':' (Basic auth cannot carry it)"


async def test_a_password_with_a_colon_is_fine() -> None:
    """Only the login is split on: a ':' in the password is sent and accepted."""
    async with Emulator(LOGIN, "pa:ss", n_tasks=10, seed=1) as other:
        async with dfs_async.Client(LOGIN, "pa:ss", base_url=other.url) as client:
            since = datetime.now(timezone.utc) - timedelta(days=100)
            got = [task async for task in client.backlinks.id_list(since)]
        assert [r.authorization_ok for r in other.requests] == [True]
    assert len(got) <= 10
