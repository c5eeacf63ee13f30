"""The exceptions dfs-async raises, grouped by how a caller reacts to them.

    DataForSEOError
    ├── InvalidArgumentError (also ValueError)   bad arguments; raised before any call
    ├── ClientClosedError (also RuntimeError)    the client was closed or used from another loop
    ├── TransportError                           no usable HTTP reply: connection, timeout
    │   └── RequestTimeoutError
    ├── DecodeError                              the reply was not what the contract describes
    │   ├── MalformedResponseError               not JSON at all (cut short, an HTML page)
    │   └── ReplyTooLargeError                   larger than max_reply_bytes; not retried
    ├── APIError                                 the server answered with an error code
    │   ├── AuthenticationError                  credentials or account: do not retry
    │   ├── InvalidRequestError                  the request was refused: do not retry
    │   ├── RateLimitedError                     over the quota: wait, then retry
    │   └── ServerError                          transient trouble on the server: retry
    └── RedisBackendError                        Redis refused the shared limit's command
        └── RedisUnavailableError                Redis was unreachable for all of retry_for

No exception carries the password, the Authorization header or the request headers, nor has
one in its ``__cause__``/``__context__`` chain or in the local variables of its traceback.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "DataForSEOError",
    "DecodeError",
    "InvalidArgumentError",
    "InvalidRequestError",
    "MalformedResponseError",
    "RateLimitedError",
    "RedisBackendError",
    "RedisUnavailableError",
    "ReplyTooLargeError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
]

# How much of a raw body an exception message quotes; the whole text stays on `.raw`.
_EXCERPT = 200


def excerpt(text: str) -> str:
    """At most a couple of hundred characters of `text`, for messages."""
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


class DataForSEOError(Exception):
    """Base class of every error dfs-async raises on purpose."""


class InvalidArgumentError(DataForSEOError, ValueError):
    """An argument cannot be sent; raised before any network call."""


class ClientClosedError(DataForSEOError, RuntimeError):
    """The client is closed, or is used from an event loop it does not belong to."""


class TransportError(DataForSEOError):
    """No usable HTTP reply arrived: the connection failed, dropped or timed out.

    Transient: the client retries these before giving up with this error.
    """

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(f"{message} ({endpoint})")
        self.endpoint = endpoint


class RequestTimeoutError(TransportError):
    """The reply did not arrive within the client's timeout."""


class DecodeError(DataForSEOError):
    """The reply does not have the shape the contract describes.

    `path` names the field (``$.tasks[0].result[3].datetime_done``), `raw` keeps the text
    that failed to decode, so nothing about the reply is lost.
    """

    def __init__(self, message: str, *, endpoint: str, path: str, raw: str) -> None:
        super().__init__(f"{message} ({endpoint})")
        self.endpoint = endpoint
        self.path = path
        self.raw = raw


class MalformedResponseError(DecodeError):
    """The body is not a JSON envelope at all (cut short, a proxy's HTML page).

    Transient: such replies come from the path between us and the API, so they are retried.
    """

    def __init__(self, message: str, *, endpoint: str, http_status: int, raw: str) -> None:
        super().__init__(
            f"{message} (HTTP {http_status}): {excerpt(raw)!r}",
            endpoint=endpoint,
            path="$",
            raw=raw,
        )
        self.http_status = http_status


class ReplyTooLargeError(DecodeError):
    """The reply grew past the client's `max_reply_bytes` (received or decompressed).

    Reading stopped there, so memory stays bounded; `raw` holds only the first couple of
    hundred characters. Not retried: the same request would get the same reply, and
    reading it again would cost the same download.
    """

    def __init__(
        self, message: str, *, endpoint: str, http_status: int, limit: int, raw: str
    ) -> None:
        super().__init__(f"{message} (HTTP {http_status})", endpoint=endpoint, path="$", raw=raw)
        self.http_status = http_status
        self.limit = limit


class APIError(DataForSEOError):
    """The server answered with an error status.

    `status_code` is DataForSEO's own code (``40501``), `http_status` the HTTP one, and
    `endpoint` the path that answered (``/v3/backlinks/id_list``).
    """

    def __init__(
        self, *, status_code: int | None, status_message: str, http_status: int, endpoint: str
    ) -> None:
        code = "no status code" if status_code is None else str(status_code)
        super().__init__(f"{code} {status_message} (HTTP {http_status}, {endpoint})")
        self.status_code = status_code
        self.status_message = status_message
        self.http_status = http_status
        self.endpoint = endpoint


class AuthenticationError(APIError):
    """Credentials or account trouble (not authorized, payment, IP not whitelisted)."""


class InvalidRequestError(APIError):
    """The server refused the request as it was sent (invalid field, unknown path)."""


class RateLimitedError(APIError):
    """The server says the quota is spent; `retry_after` is how long the client waits."""

    def __init__(
        self,
        *,
        status_code: int | None,
        status_message: str,
        http_status: int,
        endpoint: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            status_code=status_code,
            status_message=status_message,
            http_status=http_status,
            endpoint=endpoint,
        )
        self.retry_after = retry_after


class ServerError(APIError):
    """Transient trouble on the server (internal error, update in progress, HTTP 5xx)."""


class RedisBackendError(DataForSEOError):
    """Redis could not be used for the shared rate limit; `url` has no password in it.

    Raised as is when Redis refused a command for a reason that retrying cannot fix (a key of
    the wrong type, no permission, failed authentication); see `RedisUnavailableError` for an
    unreachable Redis.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class RedisUnavailableError(RedisBackendError):
    """Redis could not be reached for the whole `retry_for`; `url` has no password in it."""
