"""dfs-async: an asyncio client for DataForSEO's task bookkeeping endpoints.

async with dfs_async.Client(login, password) as client:
    async for task in client.backlinks.id_list(datetime_from, datetime_to):
        print(task.id, task.datetime_done)
"""

from importlib.metadata import PackageNotFoundError, version

from ._client import DEFAULT_BASE_URL, SANDBOX_BASE_URL, Client, Stats
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
    TransportError,
)
from ._follow import FollowState
from ._follower import Follower
from ._models import FailedWebhook, Page, TaskError, TaskId, WebhookResendOutcome
from ._pager import Pager
from ._pagination import PagerState
from ._ratelimit import Limiter, LimiterBackend, LocalBackend, Permit, RateLimit
from ._redis import RedisBackend
from ._resend import WebhookResend
from ._retry import Retry
from ._store import Store, StoreError, StoreLockedError, StoreWrite, read_store
from ._webhooks import MAX_IDS as WEBHOOK_RESEND_MAX_IDS

try:
    __version__ = version("dfs-async")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
    "read_store",
]
