"""The only module that talks to aiohttp: send bytes, return ``(status, headers, body)``.

aiohttp's exceptions are translated here, at the boundary, so none reaches a caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from ._errors import RequestTimeoutError, TransportError

__all__ = ["new_session", "post"]


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
    headers: Mapping[str, str],
    timeout: float,
    endpoint: str,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST `body`; the whole reply is read before returning, so the connection is released."""
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            # The API never redirects a POST; following one could send the credentials elsewhere.
            allow_redirects=False,
        ) as response:
            return response.status, response.headers, await response.read()
    except asyncio.TimeoutError as exc:
        raise RequestTimeoutError(f"no reply within {timeout:g} s", endpoint=endpoint) from exc
    except aiohttp.ClientError as exc:
        # The text of an aiohttp error names the host and the failure, never the headers.
        raise TransportError(f"{type(exc).__name__}: {exc}", endpoint=endpoint) from exc
