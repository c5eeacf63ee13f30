"""The only module that talks to aiohttp: send bytes, return ``(status, headers, body)``.

aiohttp's exceptions are translated here, at the boundary, so none reaches a caller: not as
the error itself, nor in its ``__cause__`` or ``__context__``. aiohttp's exceptions hold the
request (``request_info.headers`` carries the Authorization header) and their tracebacks hold
aiohttp's frames, whose local variables hold the headers too; an error tracker that records
the chain with local variables would record the password. So each failure becomes a text
(the exception's type name and message, with anything secret-looking removed) and a fresh
`TransportError` is raised *after* the ``except`` block, with no cause and no context.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from ._errors import (
    ClientClosedError,
    ReplyTooLargeError,
    RequestTimeoutError,
    TransportError,
)

__all__ = ["DEFAULT_MAX_REPLY_BYTES", "Secret", "env_proxy", "new_session", "post"]

_USER_AGENT = "dfs-async"

#: The largest reply body read, counted both as received (compressed) and once decompressed.
#: A real page of 1000 records with its metadata is under 1 MiB; 32 MiB leaves a wide margin.
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024

# Bodies are read in pieces of this size, so an oversized reply is stopped after at most one
# piece more than the limit (aiohttp also inflates gzip in bounded pieces as it streams).
_CHUNK = 64 * 1024

# `user:password@` in any URL an error message may quote (a proxy's URL).
_USERINFO = re.compile(r"//[^/@\s]*@")


class Secret:
    """Holds a secret (the Authorization header value, a proxy URL); repr and str never show it.

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
        # trust_env=True would also make aiohttp read ~/.netrc and send its credentials. The
        # proxy variables are honoured by `env_proxy` instead, so .netrc is never read.
        trust_env=False,
        raise_for_status=False,
    )


def env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY (or lower case) name for `url`, unless NO_PROXY
    excludes its host: the rules curl and the standard library follow."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    # proxy_bypass reads NO_PROXY (the same variables) when any proxy variable is set.
    if parts.hostname is None or not proxies or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxies.get(parts.scheme)


def safe_text(exc: BaseException, secrets: tuple[Secret | None, ...] = ()) -> str:
    """`exc` as "TypeName: message", without credentials.

    aiohttp's messages name the host, the status and the failure, never the headers; in case
    one quotes a URL with credentials (a proxy's), user info and every known secret go.
    """
    text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), "***")
    return _USERINFO.sub("//***@", text)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    authorization: Secret,
    timeout: float,
    endpoint: str,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    proxy: Secret | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST `body`; the whole reply is read before returning, so the connection is released.

    Raises `TransportError` (no usable reply) or `ReplyTooLargeError`; neither has a cause or
    a context, so no aiohttp object is reachable from it.
    """
    if session.closed:
        raise ClientClosedError("the aiohttp session given to the client is closed")
    failure: Exception
    try:
        reply = await _exchange(
            session, url, body, authorization, timeout, endpoint, max_reply_bytes, proxy
        )
    except TimeoutError:
        failure = RequestTimeoutError(f"no reply within {timeout:g} s", endpoint=endpoint)
    except aiohttp.ClientError as exc:
        failure = TransportError(safe_text(exc, (authorization, proxy)), endpoint=endpoint)
    else:
        if isinstance(reply, ReplyTooLargeError):
            failure = reply
        else:
            return reply
    # Raised here, outside the except blocks: so `__context__` stays None.
    raise failure


async def _exchange(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    authorization: Secret,
    timeout: float,
    endpoint: str,
    limit: int,
    proxy: Secret | None,
) -> tuple[int, Mapping[str, str], bytes] | ReplyTooLargeError:
    """One request; an oversized reply is *returned* as its error, for `post` to raise it
    outside this frame (whose `response` holds the request's headers)."""
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
        proxy=None if proxy is None else proxy.reveal(),
    ) as response:
        status = response.status
        declared = response.content_length
        if declared is not None and declared > limit:
            return _too_large(endpoint, status, limit, f"Content-Length is {declared}", b"")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            received = response.content.total_raw_bytes
            if size > limit or received > limit:
                # Only the head is kept for .raw: joining everything would double the peak.
                head = b"".join(piece[:_HEAD] for piece in [*chunks[:_HEAD], chunk])[:_HEAD]
                what = f"over {limit} bytes ({received} received, {size} decompressed)"
                return _too_large(endpoint, status, limit, what, head)
            chunks.append(chunk)
        return status, response.headers, b"".join(chunks)


# How much of an oversized body its error keeps on `.raw`.
_HEAD = 200


def _too_large(
    endpoint: str, status: int, limit: int, what: str, head: bytes
) -> ReplyTooLargeError:
    return ReplyTooLargeError(
        f"the reply is larger than max_reply_bytes={limit}: {what}",
        endpoint=endpoint,
        http_status=status,
        limit=limit,
        raw=head[:_HEAD].decode("utf-8", "replace"),
    )
