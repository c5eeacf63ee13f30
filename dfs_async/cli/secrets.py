"""Keeping a proxy's credentials out of everything the command line prints.

A proxy URL (``--proxy`` or the environment's ``HTTPS_PROXY``) may carry a user and password;
every line the CLI writes (errors, log lines, tracebacks) passes through `redact` first.
"""

from __future__ import annotations

import base64
import contextlib
import urllib.parse
from collections.abc import Mapping, Sequence

__all__ = ["proxy_secrets", "redact", "userinfo"]

_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def userinfo(url: str) -> str | None:
    """The ``USER:PASSWORD`` of a URL, None without one (plain string work, so a URL too
    broken to parse still has its credentials found)."""
    rest = url.partition("://")[2] or url
    # The authority ends at the first / ? or #, none of which credentials hold unescaped.
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    found, at, _host = rest[:end].rpartition("@")
    return found if at else None


def proxy_secrets(proxy: str | None, environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every text that would give away a proxy's credentials, longest first.

    For --proxy and the proxy variables of the environment (the client may use either): the
    password as written and percent-decoded, and the Proxy-Authorization token made of them,
    since a proxy's error page may quote either. Without a password (``http://TOKEN@host``)
    the user name is the secret.
    """
    urls = [proxy] + [value for name, value in environ.items() if name.lower() in _PROXY_VARIABLES]
    found: set[str] = set()
    for url in urls:
        credentials = None if url is None else userinfo(url)
        if not credentials:
            continue
        user, colon, password = credentials.partition(":")
        secret = password if colon else user
        found.update({secret, urllib.parse.unquote(secret)})
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        for encoding in ("latin-1", "utf-8"):  # aiohttp's, and what else a proxy may expect
            with contextlib.suppress(UnicodeEncodeError):
                found.add(base64.b64encode(pair.encode(encoding)).decode("ascii"))
    return tuple(sorted((text for text in found if text), key=len, reverse=True))


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with each of `secrets` replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
