"""The only module that talks to aiohttp: send bytes, return ``(status, headers, body)``.

aiohttp's exceptions are translated here, at the boundary, so none reaches a caller.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from ._errors import ClientClosedError, RequestTimeoutError, TransportError

__all__ = ["Secret", "new_session", "post"]

_USER_AGENT = "dfs-async"


class Secret:
    """Holds the Authorization header value; its repr and str never show it.

    It is revealed only inside `post`, straight into the request, so no caller's frame holds
    the token (a traceback printed with local variables shows `<secret>`).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def new_session() -> aiohttp.ClientSession:
    """A session of our own (created inside the running loop)."""
    return aiohttp.ClientSession(
        # No cookies: the API sets none, and a shared jar would leak state between accounts.
        cookie_jar=aiohttp.DummyCookieJar(),
        # No environment proxies or .netrc credentials sneaking into requests.
        trust_env=False,
        raise_for_status=False,
    )


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    authorization: Secret,
    timeout: float,
    endpoint: str,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST `body`; the whole reply is read before returning, so the connection is released."""
    if session.closed:
        raise ClientClosedError("the aiohttp session given to the client is closed")
    try:
        async with session.post(
            url,
            data=body,
            headers={
                "Authorization": authorization.reveal(),
                "Content-Type": "application/json",
                "User-Agent": _USER_AGENT,
            },
            timeout=aiohttp.ClientTimeout(total=timeout),
            # The API never redirects a POST; following one could send the credentials elsewhere.
            allow_redirects=False,
        ) as response:
            return response.status, response.headers, await response.read()
    except TimeoutError as exc:
        raise RequestTimeoutError(f"no reply within {timeout:g} s", endpoint=endpoint) from exc
    except aiohttp.ClientError as exc:
        # The text of an aiohttp error names the host and the failure, never the headers.
        raise TransportError(f"{type(exc).__name__}: {exc}", endpoint=endpoint) from exc
