"""Proxies: the proxy= argument and HTTPS_PROXY/HTTP_PROXY/NO_PROXY are honoured by the
client's own session, a proxy's credentials are never shown, and ~/.netrc is never read."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_secrets import leaks, rendered

import dfs_async
from dfs_async._transport import env_proxy
from dfs_async.testing import Emulator

LOGIN = "worker@example.com"
PASSWORD = "proxy-test-password"
PROXY_USER = "squid-user"
PROXY_PASSWORD = "squid-secret-7"
ONCE = dfs_async.Retry(attempts=1)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


class ForwardProxy:
    """A tiny HTTP forward proxy on 127.0.0.1 that records each request it forwards."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            first, *lines = head.rstrip("\r\n").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines)
            self.seen.append((first, headers))
            method, target, _version = first.split(" ")
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            url = urlsplit(target)
            assert url.hostname is not None
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
            kept = {
                name: value
                for name, value in headers.items()
                if not name.lower().startswith("proxy-") and name.lower() != "connection"
            }
            # One upstream connection per request: the reply ends when upstream closes.
            kept["Connection"] = "close"
            request = f"{method} {url.path} HTTP/1.1\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in kept.items()
            )
            up_writer.write(request.encode("latin-1") + b"\r\n" + body)
            reply = await up_reader.read()
            up_writer.close()
            await up_writer.wait_closed()
            writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No proxy variable or .netrc of the machine running the tests gets in."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(LOGIN, PASSWORD, n_tasks=30, n_errors=30, seed=2) as emulator:
        yield emulator


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as forward:
        yield forward


async def stream(client: dfs_async.Client) -> int:
    since = datetime.now(timezone.utc) - timedelta(days=100)
    return len([task async for task in client.backlinks.id_list(since)])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_proxy_argument_is_used_with_its_credentials(
    emu: Emulator, proxy: ForwardProxy
) -> None:
    """proxy="http://user:pass@host:port" sends every call through it, with Proxy-Authorization."""
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, proxy=url) as client:
        got = await stream(client)
    assert got > 0
    expected = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert [line for line, _ in proxy.seen] == [
        f"POST {emu.url}/v3/backlinks/id_list HTTP/1.1" for _ in emu.requests
    ]
    assert {headers.get("Proxy-Authorization") for _, headers in proxy.seen} == {
        f"Basic {expected}"
    }
    assert all(request.authorization_ok for request in emu.requests)


async def test_http_proxy_variable_is_honoured(
    emu: Emulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY (for an http:// base_url) routes the calls through the proxy."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        await stream(client)
    assert len(proxy.seen) == len(emu.requests) >= 1


async def test_no_proxy_bypasses_the_proxy(
    emu: Emulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY naming the host: calls go straight to it, the proxy sees nothing."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        await stream(client)
    assert proxy.seen == []
    assert len(emu.requests) >= 1


async def test_proxy_argument_wins_over_no_proxy(
    emu: Emulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit proxy= is used as given, whatever the environment says."""
    monkeypatch.setenv("NO_PROXY", "*")
    url = f"http://127.0.0.1:{proxy.port}"
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, proxy=url) as client:
        await stream(client)
    assert len(proxy.seen) == len(emu.requests) >= 1


def test_env_proxy_follows_the_standard_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY for https://, HTTP_PROXY for http://, NO_PROXY by domain suffix."""
    monkeypatch.setenv("HTTPS_PROXY", "http://corp:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3128")
    assert env_proxy("https://api.dataforseo.com") == "http://corp:3128"
    assert env_proxy("http://127.0.0.1:8080") == "http://plain:3128"
    monkeypatch.setenv("NO_PROXY", ".dataforseo.com")
    assert env_proxy("https://api.dataforseo.com") is None
    assert env_proxy("http://127.0.0.1:8080") == "http://plain:3128"


def test_no_variable_means_no_proxy() -> None:
    """With no proxy variable set, calls go direct."""
    assert env_proxy("https://api.dataforseo.com") is None


def client_via_dead_proxy(emu: Emulator) -> dfs_async.Client:
    """A client whose proxy (with credentials) refuses connections; the URL stays in here,
    so the test's own frame (part of the traceback) does not hold it."""
    url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, proxy=url, retry=ONCE)


async def test_proxy_credentials_never_shown(emu: Emulator) -> None:
    """An unreachable proxy: the error, its chain, its traceback and the repr hide the password."""
    async with client_via_dead_proxy(emu) as client:
        assert PROXY_PASSWORD not in repr(client)
        with pytest.raises(dfs_async.TransportError) as info:
            await stream(client)
    text = rendered(info.value)
    assert "ClientProxyConnectionError: Cannot connect to host 127.0.0.1:" in str(info.value)
    assert "in post" in text  # the library's frames, with their locals, are in the text
    assert PROXY_PASSWORD not in text
    assert PROXY_USER not in text
    assert leaks(info.value) == []
    assert emu.requests == []


@pytest.mark.parametrize("bad", ["ftp://u:secret-x@h:21", "secret-x", "http://:secret-x@", 3])
def test_bad_proxy_is_refused_without_echoing_it(bad: object) -> None:
    """A proxy that is not an http(s) URL with a host is refused; the message omits it."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        dfs_async.Client(LOGIN, PASSWORD, proxy=bad)  # type: ignore[arg-type]
    assert "secret-x" not in str(info.value)
    assert str(info.value).startswith("proxy must be ")


async def test_netrc_credentials_are_never_sent(
    emu: Emulator, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc for the API host and the proxy changes nothing: only our own credentials go."""
    netrc = tmp_path / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login netrc-user password netrc-password\n", encoding="utf-8"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    async with dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url) as client:
        await stream(client)
    ours = "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    assert {headers.get("Authorization") for _, headers in proxy.seen} == {ours}
    assert {headers.get("Proxy-Authorization") for _, headers in proxy.seen} == {None}
    assert all(request.authorization_ok for request in emu.requests)
