"""The exceptions dfs-async raises, grouped by how a caller reacts to them.

    DataForSEOError
    ├── InvalidArgumentError (also ValueError)   bad arguments; raised before any call
    ├── ClientClosedError (also RuntimeError)    the client was closed or used from another loop
    ├── TransportError                       R   no usable HTTP reply: connection, timeout
    │   ├── RequestTimeoutError              R   no reply within the client's timeout
    │   └── MalformedResponseError           R   not JSON at all (cut short, an HTML page)
    ├── DecodeError                              the reply was not what the contract describes
    │   └── ReplyTooLargeError                   larger than max_reply_bytes
    ├── APIError                                 the server answered with an error code
    │   ├── AuthenticationError                  credentials or account
    │   ├── InvalidRequestError                  the request was refused
    │   ├── RateLimitedError                 R   over the quota: wait, then retry
    │   └── ServerError                      R   transient trouble on the server
    └── RedisBackendError                        Redis refused the shared limit's command
        └── RedisUnavailableError                Redis was unreachable for all of retry_for

R: `retryable` is True, the client tries the call again (within its `Retry` policy) before it
raises the error; what reaches a caller after that is the last one. Every other class is
raised at once. The attribute is on each class, so ``exc.retryable`` answers for any
`DataForSEOError` without a list of classes to keep in step.

Standard library only (nothing at all is imported): the command line loads this module to word
an error without loading aiohttp or attrs.

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
    "StoreError",
    "StoreLockedError",
    "TransportError",
]

# How much of a raw body an exception message quotes; the whole text stays on `.raw`.
_EXCERPT = 200


def excerpt(text: str) -> str:
    """At most a couple of hundred characters of `text`, for messages."""
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


class DataForSEOError(Exception):
    """Base class of every error dfs-async raises on purpose.

    `retryable` says whether the client tries a call again after this error (within its
    `Retry` policy) before raising it: True for transport trouble, replies that are not JSON,
    rate limits and server errors; False for everything else, which retrying cannot fix.
    """

    retryable: bool = False
    """Whether the client retries a call that failed with this error (set on each class)."""

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickles as cls(*args), which the keyword-only constructors refuse: rebuild
        # from the message and the attributes instead (pickle, copy, a process pool's result).
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[DataForSEOError], args: tuple[object, ...], state: dict[str, object]
) -> DataForSEOError:
    """An error as `DataForSEOError.__reduce__` took it apart, without its constructor."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidArgumentError(DataForSEOError, ValueError):
    """An argument cannot be sent; raised before any network call."""


class ClientClosedError(DataForSEOError, RuntimeError):
    """The client is closed, or is used from an event loop it does not belong to."""


class TransportError(DataForSEOError):
    """No usable HTTP reply arrived: the connection failed, dropped or timed out.

    Transient (`retryable`): the client retries these before giving up with this error.
    """

    retryable = True

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(f"{message} ({endpoint})")
        self.endpoint = endpoint


class RequestTimeoutError(TransportError):
    """The reply did not arrive within the client's timeout."""


class MalformedResponseError(TransportError):
    """The body is not a JSON envelope at all (cut short, a proxy's HTML page).

    Transient (`retryable`): such replies come from the path between us and the API, so they
    are retried, and so this is a `TransportError`, not a `DecodeError` (which is not
    retried). `raw` keeps the text, `http_status` the HTTP status; `path` is ``"$"``.
    """

    #: Where in the reply the trouble is: the whole body.
    path = "$"

    def __init__(self, message: str, *, endpoint: str, http_status: int, raw: str) -> None:
        super().__init__(f"{message} (HTTP {http_status}): {excerpt(raw)!r}", endpoint=endpoint)
        self.http_status = http_status
        self.raw = raw


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
    """The server says the quota is spent; `retry_after` is how long the client waits.

    Retried (`retryable`) once the limiter's pause is over, not after a backoff.
    """

    retryable = True

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
    """Transient trouble on the server (internal error, update in progress, HTTP 5xx).

    Retried (`retryable`) after a backoff.
    """

    retryable = True


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


class StoreError(DataForSEOError):
    """A store file cannot be used: not a dfs-async store, a newer schema, or closed."""


class StoreLockedError(StoreError):
    """Another process is writing the store: a file has one writer at a time."""
