"""The command line's --proxy (issue 10, item 8): every call goes through it, and its
credentials, or those of a proxy in the environment, are never printed: not in the error line,
the --debug log or the traceback, even when the proxy's own error page repeats them."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from test_cli import (
    LOGIN,
    PASSWORD,
    ago,
    api_env,
    expected_task,
    read_jsonl,
    run_cli,
    run_cli_async,
    sent_datetime_to,
)

import dfs_async
from dfs_async.cli.exits import classify
from dfs_async.cli.secrets import proxy_secrets, redact
from dfs_async.testing import Emulator

PROXY_USER, PROXY_PASSWORD = "puser", "p@ss:w0rd"
PROXY_USERINFO = "puser:p%40ss%3Aw0rd"  # as it is written in a URL
PROXY_TOKEN = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
#: What would give the proxy's password away, in each form it can take.
PROXY_SECRETS = (PROXY_PASSWORD, "p%40ss%3Aw0rd", PROXY_TOKEN)
#: Nothing answers on port 9 (discard) here: a call that reaches it fails.
NOWHERE = "http://127.0.0.1:9"
PROCESS_LIST_WARNING = (
    "dfs-async: warning: other users of this machine can read the password in --proxy in the "
    "process list; HTTPS_PROXY in the environment keeps it out of sight"
)


def env(**extra: str) -> dict[str, str]:
    """The fixtures' credentials, no proxy variable of the machine's, plus `extra`."""
    variables = {
        name: value
        for name, value in api_env().items()
        if name.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    return {**variables, **extra}


class ForwardProxy:
    """A plain-HTTP forward proxy on 127.0.0.1 that records what it is asked.

    `answer` decides per request: None forwards it, a (status, body) pair is sent instead.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.answer: Callable[[web.Request], tuple[int, str] | None] = lambda request: None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((str(request.url), request.headers.get("Proxy-Authorization")))
        answer = self.answer(request)
        if answer is not None:
            return web.Response(status=answer[0], text=answer[1])
        forwarded = {
            key: value
            for key, value in request.headers.items()
            if key.lower() not in {"host", "proxy-authorization", "content-length"}
        }
        async with (
            aiohttp.ClientSession() as upstream,
            upstream.post(request.url, data=await request.read(), headers=forwarded) as reply,
        ):
            body = await reply.read()
            return web.Response(status=reply.status, body=body, content_type=reply.content_type)

    def url(self, userinfo: str = PROXY_USERINFO) -> str:
        return f"http://{userinfo}@127.0.0.1:{self.port}"


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    """A running ForwardProxy."""
    forward = ForwardProxy()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    forward.port = runner.addresses[0][1]
    try:
        yield forward
    finally:
        await runner.cleanup()


def echo_credentials(status: int) -> Callable[[web.Request], tuple[int, str]]:
    """A proxy answer that repeats its credentials back, as a careless proxy's page might."""

    def answer(request: web.Request) -> tuple[int, str]:
        header = request.headers.get("Proxy-Authorization", "")
        return status, f"refused {header} for {PROXY_USER}:{PROXY_PASSWORD} ({PROXY_USERINFO})"

    return answer


def leaked(text: str) -> list[str]:
    """The forms of the proxy's password found in `text` (none, or the test fails)."""
    return [secret for secret in PROXY_SECRETS if secret in text]


async def test_proxy_carries_every_call_with_its_credentials(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """--proxy http://USER:PASSWORD@HOST:PORT: every call goes through it, authenticated."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=2500, seed=3, rate_limit=None) as emu:
        start = ago(170)
        code, out, err = await run_cli_async(
            "id-list", "--from", start, "--base-url", emu.url, "--proxy", proxy.url(),
            "-o", "tasks.jsonl", "--debug", cwd=tmp_path, env=env(),
        )  # fmt: skip
        expected = emu.expected_id_list(start, sent_datetime_to(emu))
        calls = len(emu.requests)
    assert (code, out) == (0, ""), err
    assert read_jsonl(tmp_path / "tasks.jsonl") == [expected_task(item) for item in expected]
    assert proxy.seen == [(f"{emu.url}/v3/backlinks/id_list", f"Basic {PROXY_TOKEN}")] * 3
    assert calls == 3
    assert err.splitlines()[0] == PROCESS_LIST_WARNING
    assert leaked(err) == []


async def test_a_proxys_error_page_never_shows_its_credentials(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """A proxy that echoes its credentials: not in the error, the --debug log or traceback."""
    proxy.answer = echo_credentials(502)
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(10), "--base-url", NOWHERE, "--proxy", proxy.url(),
        "--retries", "1", "--debug", "-o", "tasks.jsonl", cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert (code, out) == (4, "")
    assert len(proxy.seen) == 2
    assert "Traceback (most recent call last)" in err  # --debug: printed, with the page
    assert "giving up after 2 attempts" in err
    assert err.splitlines()[-1] == (
        "dfs-async: error: server trouble outlasted the retries: no status code HTTP 502: "
        "'refused Basic *** for puser:*** (puser:***)' (HTTP 502, /v3/backlinks/id_list)"
    )
    assert leaked(err) == []
    assert os.listdir(tmp_path) == ["tasks.jsonl.lock"]  # no output: no page came


async def test_a_proxy_from_the_environment_is_redacted_too(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """HTTP_PROXY with credentials (the client honours it): they are never printed either."""
    proxy.answer = echo_credentials(502)
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(10), "--base-url", NOWHERE, "--retries", "0", "--debug",
        cwd=tmp_path, env=env(HTTP_PROXY=proxy.url()),
    )  # fmt: skip
    assert (code, out) == (4, "")
    assert len(proxy.seen) == 1
    assert "refused Basic *** for puser:*** (puser:***)" in err.splitlines()[-1]
    assert PROCESS_LIST_WARNING not in err  # the environment is not the process list
    assert leaked(err) == []


async def test_a_proxy_that_refuses_its_credentials_is_exit_3(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """HTTP 407 from the proxy: exit 3 (credentials), saying which, never quoting its page."""
    proxy.answer = echo_credentials(407)
    code, out, err = await run_cli_async(
        "id-list", "--from", ago(10), "--base-url", NOWHERE, "--proxy", proxy.url(), "-q",
        cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert (code, out) == (3, "")
    assert err.splitlines() == [
        PROCESS_LIST_WARNING,
        "dfs-async: error: the proxy refused the request (HTTP 407 Proxy Authentication "
        "Required): check its credentials (--proxy, or HTTPS_PROXY in the environment)",
    ]
    assert len(proxy.seen) == 1


async def test_resend_webhooks_goes_through_the_proxy_too(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """resend-webhooks takes --proxy as well (the account options are shared)."""
    proxy.answer = echo_credentials(407)
    code, out, err = await run_cli_async(
        "resend-webhooks", "--api", "serp", "--base-url", NOWHERE, "--proxy",
        proxy.url(PROXY_USER), "--dry-run", cwd=tmp_path, env=env(),
    )  # fmt: skip
    assert (code, out) == (3, "")
    assert err.splitlines()[-1].startswith("dfs-async: error: the proxy refused the request")
    assert proxy.seen == [(f"{NOWHERE}/v3/serp/errors", f"Basic {_token(PROXY_USER, '')}")]
    assert PROXY_USER not in err  # without a password, the user name is the secret


def _token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--proxy", "socks5://puser:hunter2@proxy.example:1080"],
            "--proxy must be an http:// or https:// URL with a host, such as "
            "'http://user:password@host:3128'",
        ),
        (
            ["--proxy", "http://puser:hunter2@proxy.example:99999"],
            "--proxy must be an http:// or https:// URL with a host, such as "
            "'http://user:password@host:3128'",
        ),
        (
            ["--emulate", "--proxy", "http://puser:hunter2@proxy.example:3128"],
            "--proxy and --emulate do not go together (see 'dfs-async id-list --help')",
        ),
    ],
)
def test_a_bad_proxy_is_exit_2_without_its_password(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """A --proxy that cannot be used is exit 2 before any call, its password not repeated."""
    result = run_cli("id-list", "--from", "30d", *args, cwd=tmp_path, env=env())
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == f"dfs-async: error: {message}"
    assert "hunter2" not in result.stderr


def test_the_help_names_proxy(tmp_path: Path) -> None:
    """--help of id-list shows --proxy and says its credentials are never printed."""
    result = run_cli("id-list", "--help", cwd=tmp_path)
    text = " ".join(result.stdout.split())
    assert "--proxy URL send the calls through this HTTP proxy" in text
    assert "its credentials are never printed" in text


def test_proxy_secrets_cover_every_form_of_the_password() -> None:
    """The password raw and decoded, the token; from --proxy and from the environment."""
    url = f"http://{PROXY_USERINFO}@proxy.example:3128"
    assert set(proxy_secrets(url, {})) == {*PROXY_SECRETS, _token(PROXY_USER, PROXY_PASSWORD)}
    assert set(proxy_secrets(None, {"https_proxy": url, "PATH": "/bin"})) == set(
        proxy_secrets(url, {})
    )
    assert proxy_secrets("http://proxy.example:3128", {"NO_PROXY": "x"}) == ()
    assert proxy_secrets("tok%2Fen@proxy.example", {}) == (
        _token("tok/en", ""),
        "tok%2Fen",
        "tok/en",
    )
    text = f"a {PROXY_USER}:{PROXY_PASSWORD} b {PROXY_TOKEN} c {PROXY_USERINFO}"
    assert redact(text, proxy_secrets(url, {})) == "a puser:*** b *** c puser:***"


def test_http_407_is_exit_3() -> None:
    """A 407 (only a proxy sends one) is the credentials' exit code, not a refused request."""
    exc = dfs_async.InvalidRequestError(
        status_code=None, status_message="x", http_status=407, endpoint="/e"
    )
    assert classify(exc)[0] == 3
