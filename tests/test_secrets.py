"""No error that reaches a caller lets the credentials be recovered: not its text, its
attributes, its __cause__/__context__ chain, nor the local variables of its traceback's frames."""

from __future__ import annotations

import asyncio
import base64
import socket
import traceback
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import dfs_async
from dfs_async._transport import Secret
from dfs_async.testing import Emulator, Fault

LOGIN = "worker@example.com"
PASSWORD = "Pa55-w0rd-that-must-never-leak"
TOKEN = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
FORBIDDEN = (PASSWORD, TOKEN, "Basic ")
ONCE = dfs_async.Retry(attempts=1)

# Every fault the emulator can play, and the error the caller gets from it.
FAULTS = [
    (Fault.reset_before_headers(), dfs_async.TransportError),
    (Fault.reset_during_body(), dfs_async.TransportError),
    (Fault.malformed_status_line(), dfs_async.TransportError),
    (Fault.delay(30.0), dfs_async.RequestTimeoutError),
    (Fault.http_status(500), dfs_async.ServerError),
    (Fault.http_status(401), dfs_async.AuthenticationError),
    (Fault.truncated_json(), dfs_async.MalformedResponseError),
    (Fault.html(502), dfs_async.ServerError),
    (Fault.envelope_error(40100, "You are not authorized."), dfs_async.AuthenticationError),
    (Fault.task_error(40501, "Invalid Field."), dfs_async.InvalidRequestError),
    (Fault.rate_limited(), dfs_async.RateLimitedError),
    (Fault.huge_body(64 * 1024), dfs_async.ReplyTooLargeError),
    (Fault.huge_body(64 * 1024, declared=False), dfs_async.ReplyTooLargeError),
    (Fault.gzip_bomb(8 << 20), dfs_async.ReplyTooLargeError),
]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=30, n_errors=30, seed=5) as emulator:
        yield emulator


def _children(obj: Any) -> Iterator[Any]:
    """Everything an error tracker (or a curious caller) can reach from `obj` in one step."""
    if isinstance(obj, BaseException):
        yield obj.__cause__
        yield obj.__context__
        yield obj.args
        tb = obj.__traceback__
        while tb is not None:
            yield dict(tb.tb_frame.f_locals)
            tb = tb.tb_next
    if isinstance(obj, Mapping):
        yield from obj.keys()
        yield from obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj
    if hasattr(obj, "__dict__"):
        yield from vars(obj).values()
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                yield getattr(obj, name)
    for name in ("request_info", "headers", "real_url", "url", "history"):
        if not isinstance(obj, type) and hasattr(type(obj), name):
            try:
                yield getattr(obj, name)
            except Exception:  # noqa: S112 - a property that cannot be read holds nothing
                continue


def leaks(root: BaseException) -> list[str]:
    """Each forbidden text found anywhere reachable from `root`, with how it was reached."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(root, "exc")]
    while stack:
        obj, where = stack.pop()
        if obj is None or id(obj) in seen or isinstance(obj, (int, float, type)):
            continue
        seen.add(id(obj))
        if isinstance(obj, Secret):
            # The one holder of the token by design: its repr, which is what a tracker
            # records, must not show it (a caller's own frames hold the client, and so it).
            text = repr(obj)
        elif isinstance(obj, (bytes, bytearray)):
            text = bytes(obj).decode("latin-1")
        elif isinstance(obj, str):
            text = obj
        else:
            try:
                text = repr(obj)
            except Exception:  # a broken repr shows nothing
                text = ""
        found += [f"{secret!r} at {where}" for secret in FORBIDDEN if secret in text]
        if isinstance(obj, (str, bytes, bytearray, Secret)) or where.count(".") > 12:
            continue
        if isinstance(obj, asyncio.AbstractEventLoop):
            # The loop reaches every object of the process, the in-process emulator's own copy
            # of each request it received included; a tracker records reprs, not the loop's graph.
            continue
        stack += [(child, f"{where}.{type(child).__name__}") for child in _children(obj)]
    return found


def rendered(exc: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


def assert_no_leak(exc: BaseException) -> None:
    text = rendered(exc)
    assert "Traceback" in text
    for secret in FORBIDDEN:
        assert secret not in text
    assert leaks(exc) == []


async def first_error(client: dfs_async.Client) -> BaseException:
    """Run one stream to its first error and return it, caught as a caller would."""
    since = datetime.now(timezone.utc) - timedelta(days=30)
    try:
        async for _task in client.backlinks.id_list(since):
            pass
    except dfs_async.DataForSEOError as exc:
        return exc
    raise AssertionError("the stream did not fail")


def test_the_walk_finds_a_token_in_a_chained_frame() -> None:
    """The checker itself: a token in a cause's frame locals is found."""

    def fails() -> None:
        headers = {"Authorization": f"Basic {TOKEN}"}
        raise OSError(str(len(headers)))

    def wraps() -> None:
        try:
            fails()
        except OSError as inner:
            raise dfs_async.TransportError("x", endpoint="/e") from inner

    with pytest.raises(dfs_async.TransportError) as info:
        wraps()
    found = {line.partition(" at ")[0] for line in leaks(info.value)}
    assert found == {repr(TOKEN), repr("Basic ")}


@pytest.mark.parametrize(("fault", "error"), FAULTS, ids=lambda f: getattr(f, "name", ""))
async def test_no_fault_lets_the_credentials_be_recovered(
    emu: Emulator, fault: Fault, error: type[Exception]
) -> None:
    """For every fault the emulator plays, the caller's error holds no trace of the token."""
    emu.inject(1, fault)
    timeout = 0.5 if fault.name == "delay" else 30.0
    async with dfs_async.Client(
        LOGIN, PASSWORD, base_url=emu.url, retry=ONCE, timeout=timeout, max_reply_bytes=4096
    ) as client:
        exc = await first_error(client)
    assert type(exc) is error
    assert_no_leak(exc)


async def test_connection_refused_does_not_leak() -> None:
    """Nothing listening at the port: a TransportError with no chain to aiohttp's frames."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with dfs_async.Client(
        LOGIN, PASSWORD, base_url=f"http://127.0.0.1:{port}", retry=ONCE
    ) as client:
        exc = await first_error(client)
    assert type(exc) is dfs_async.TransportError
    assert exc.__cause__ is None
    assert exc.__context__ is None
    assert "ClientConnectorError" in str(exc)
    assert_no_leak(exc)


async def test_a_transport_error_after_retries_does_not_leak(emu: Emulator) -> None:
    """The error given up with after several retries is as clean as a first one."""
    emu.script({n: Fault.malformed_status_line() for n in (1, 2, 3)})
    retry = dfs_async.Retry(attempts=3, initial=0.01, maximum=0.01)
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, retry=retry) as client:
        exc = await first_error(client)
    assert isinstance(exc, dfs_async.TransportError)
    assert len(emu.requests) == 3
    assert_no_leak(exc)


async def test_closing_during_a_failing_call_does_not_leak(emu: Emulator) -> None:
    """ClientClosedError raised from a transport failure chains only our clean error."""
    emu.inject(1, Fault.reset_before_headers())
    client = dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, retry=ONCE)
    exc = await first_error(client)
    await client.aclose()
    assert isinstance(exc, dfs_async.TransportError)
    assert_no_leak(exc)
