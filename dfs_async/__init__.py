"""dfs-async: an asyncio client for DataForSEO's task bookkeeping endpoints.

async with dfs_async.Client(login, password) as client:
    async for task in client.backlinks.id_list(datetime_from, datetime_to):
        print(task.id, task.datetime_done)
"""

# Lazy: a name's module is imported on first use (PEP 562), so that the command line's
# `--help` (dfs_async.cli) answers without importing the client and aiohttp. Type checkers
# and readers see the plain imports below.

from __future__ import annotations

import _thread
import importlib

from ._version import __version__

#: typing.TYPE_CHECKING without importing typing (a few ms of every --help); type checkers
#: take any name TYPE_CHECKING as true.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._client import Client, Stats
    from ._endpoints import Api
    from ._errors import (
        APIError,
        AuthenticationError,
        ClientClosedError,
        DataForSEOError,
        DecodeError,
        InvalidArgumentError,
        InvalidRequestError,
        MalformedResponseError,
        RateLimitedError,
        RedisBackendError,
        RedisUnavailableError,
        ReplyTooLargeError,
        RequestTimeoutError,
        ServerError,
        StoreError,
        StoreLockedError,
        TransportError,
    )
    from ._follow import FollowState
    from ._follower import Follower
    from ._models import (
        FailedWebhook,
        Page,
        TaskError,
        TaskId,
        WebhookResendOutcome,
    )
    from ._pager import Pager
    from ._pagination import PagerState
    from ._ratelimit import (
        Limiter,
        LimiterBackend,
        LocalBackend,
        Permit,
        RateLimit,
    )
    from ._redis import RedisBackend
    from ._report import Report, build_report
    from ._resend import WebhookResend
    from ._retry import Retry
    from ._store import Store, StoreWrite, read_store
    from ._urls import DEFAULT_BASE_URL, SANDBOX_BASE_URL
    from ._webhooks import MAX_IDS as WEBHOOK_RESEND_MAX_IDS

#: Each public name and the module (and name there) it comes from.
_LAZY: dict[str, tuple[str, str]] = {
    "APIError": ("._errors", "APIError"),
    "Api": ("._endpoints", "Api"),
    "AuthenticationError": ("._errors", "AuthenticationError"),
    "Client": ("._client", "Client"),
    "ClientClosedError": ("._errors", "ClientClosedError"),
    "DEFAULT_BASE_URL": ("._urls", "DEFAULT_BASE_URL"),
    "DataForSEOError": ("._errors", "DataForSEOError"),
    "DecodeError": ("._errors", "DecodeError"),
    "FailedWebhook": ("._models", "FailedWebhook"),
    "FollowState": ("._follow", "FollowState"),
    "Follower": ("._follower", "Follower"),
    "InvalidArgumentError": ("._errors", "InvalidArgumentError"),
    "InvalidRequestError": ("._errors", "InvalidRequestError"),
    "Limiter": ("._ratelimit", "Limiter"),
    "LimiterBackend": ("._ratelimit", "LimiterBackend"),
    "LocalBackend": ("._ratelimit", "LocalBackend"),
    "MalformedResponseError": ("._errors", "MalformedResponseError"),
    "Page": ("._models", "Page"),
    "Pager": ("._pager", "Pager"),
    "PagerState": ("._pagination", "PagerState"),
    "Permit": ("._ratelimit", "Permit"),
    "RateLimit": ("._ratelimit", "RateLimit"),
    "RateLimitedError": ("._errors", "RateLimitedError"),
    "RedisBackend": ("._redis", "RedisBackend"),
    "RedisBackendError": ("._errors", "RedisBackendError"),
    "RedisUnavailableError": ("._errors", "RedisUnavailableError"),
    "Report": ("._report", "Report"),
    "ReplyTooLargeError": ("._errors", "ReplyTooLargeError"),
    "RequestTimeoutError": ("._errors", "RequestTimeoutError"),
    "Retry": ("._retry", "Retry"),
    "SANDBOX_BASE_URL": ("._urls", "SANDBOX_BASE_URL"),
    "ServerError": ("._errors", "ServerError"),
    "Stats": ("._client", "Stats"),
    "Store": ("._store", "Store"),
    "StoreError": ("._errors", "StoreError"),
    "StoreLockedError": ("._errors", "StoreLockedError"),
    "StoreWrite": ("._store", "StoreWrite"),
    "TaskError": ("._models", "TaskError"),
    "TaskId": ("._models", "TaskId"),
    "TransportError": ("._errors", "TransportError"),
    "WEBHOOK_RESEND_MAX_IDS": ("._webhooks", "MAX_IDS"),
    "WebhookResend": ("._resend", "WebhookResend"),
    "WebhookResendOutcome": ("._models", "WebhookResendOutcome"),
    "build_report": ("._report", "build_report"),
    "read_store": ("._store", "read_store"),
}


if not TYPE_CHECKING:  # mypy sees the imports above; a typo in a user's import stays an error
    # First imports from several threads at once, of modules that import others in turn, can
    # hand a thread a module still half initialized (Python 3.13 raised "cannot import name
    # 'Iterable' from 'collections.abc'" with 8 threads). Every first use takes this lock, so
    # they import one after another; a loaded name is a plain global and never takes it again.
    # (No module the table names uses a lazy name while it is imported, so it cannot deadlock.)
    _loading = _thread.RLock()

    def __getattr__(name: str) -> object:
        try:
            module, attribute = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        with _loading:
            value = getattr(importlib.import_module(module, __name__), attribute)
        globals()[name] = value  # the next lookup is a plain one
        return value


def __dir__() -> list[str]:
    # What a plain module lists (its own dunders, __all__, the submodules imported so far)
    # plus the names not loaded yet: pydoc and completion read dir(), not __all__.
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_BASE_URL",
    "SANDBOX_BASE_URL",
    "WEBHOOK_RESEND_MAX_IDS",
    "APIError",
    "Api",
    "AuthenticationError",
    "Client",
    "ClientClosedError",
    "DataForSEOError",
    "DecodeError",
    "FailedWebhook",
    "FollowState",
    "Follower",
    "InvalidArgumentError",
    "InvalidRequestError",
    "Limiter",
    "LimiterBackend",
    "LocalBackend",
    "MalformedResponseError",
    "Page",
    "Pager",
    "PagerState",
    "Permit",
    "RateLimit",
    "RateLimitedError",
    "RedisBackend",
    "RedisBackendError",
    "RedisUnavailableError",
    "ReplyTooLargeError",
    "Report",
    "RequestTimeoutError",
    "Retry",
    "ServerError",
    "Stats",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreWrite",
    "TaskError",
    "TaskId",
    "TransportError",
    "WebhookResend",
    "WebhookResendOutcome",
    "__version__",
    "build_report",
    "read_store",
]
