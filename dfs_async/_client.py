"""The session manager: one aiohttp session, one limiter per endpoint, retries around each call."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import math
import os
import random
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import attrs

from . import _transport
from ._calls import ensure_open
from ._endpoints import Api
from ._errors import (
    ClientClosedError,
    DataForSEOError,
    InvalidArgumentError,
    RateLimitedError,
    ReplyTooLargeError,
    RequestTimeoutError,
    TransportError,
)
from ._models import TaskError, TaskId
from ._protocol import RawPage, describe, encode_body, read_reply
from ._ratelimit import Limiter, LimiterBackend, Permit, RateLimit, default_backend
from ._resend import WebhookResend
from ._retry import Retry
from ._urls import DEFAULT_BASE_URL
from ._webhooks import check_task_ids

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Client", "Stats"]

R = TypeVar("R", TaskId, TaskError)
T = TypeVar("T")

logger = logging.getLogger("dfs_async")


@attrs.frozen(kw_only=True)
class Stats:
    """Counters over the client's life, for logs and dashboards."""

    #: HTTP calls made (retries included).
    calls: int = 0
    #: Calls made again after a transient failure.
    retries: int = 0
    #: Replies that said the quota was spent (40202, 40209, HTTP 429).
    rate_limited: int = 0
    #: Times a call had to wait for the rate limiter.
    rate_limit_waits: int = 0
    #: Seconds spent waiting: for the rate limiter and in backoff.
    seconds_waited: float = 0.0


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.username is not None or parts.password is not None:
        raise InvalidArgumentError("base_url must not carry credentials; pass login and password")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidArgumentError(f"base_url must be an https:// URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise InvalidArgumentError("base_url must not have a query or fragment")
    if not parts.hostname.isascii():
        raise InvalidArgumentError(
            "base_url's host must be ASCII: write an international domain name in its "
            f"IDNA form (xn--...), got {base_url!r}"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 and parts.netloc.rpartition("]")[2].count(":") > 0:
        raise InvalidArgumentError(
            f"base_url's port must be a number from 1 to 65535, got {base_url!r}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InvalidArgumentError(
            "base_url must use https:// (plain http:// is allowed only for a loopback host, "
            f"as in tests against the emulator), got {base_url!r}"
        )
    return base_url.rstrip("/")


# Above a day, asyncio's timers overflow for some values (inf) and no call is that slow.
_MAX_TIMEOUT = 86_400.0
# Below this not even an error envelope fits.
_MIN_REPLY_BYTES = 1024


def _check_credentials(login: object, password: object) -> None:
    if not isinstance(login, str) or not isinstance(password, str):
        raise InvalidArgumentError(
            "login and password must be str (decode bytes first), got "
            f"{type(login).__name__} and {type(password).__name__}"
        )
    if ":" in login:
        # Basic auth joins them with ':' and the server splits at the first one.
        raise InvalidArgumentError("login must not contain ':' (Basic auth cannot carry it)")


def _check_proxy(proxy: object) -> str:
    if not isinstance(proxy, str):
        raise InvalidArgumentError(
            f"proxy must be a URL string such as 'http://host:3128', got {type(proxy).__name__}"
        )
    parts = urlsplit(proxy)
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        parts = None  # type: ignore[assignment]
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # The URL may carry credentials: never repeat it.
        raise InvalidArgumentError(
            "proxy must be an http:// or https:// URL with a host, "
            "such as 'http://user:password@host:3128'"
        )
    return proxy


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """An asyncio client for DataForSEO's task bookkeeping endpoints.

    ``async with Client(login, password) as client:`` opens one HTTP session (created inside
    the running loop at the first call) and one rate limiter per endpoint, shared by every
    stream using the client. Credentials default to the environment variables
    ``DATAFORSEO_LOGIN`` and ``DATAFORSEO_PASSWORD``.

    A `session` passed in is used as is and never closed by the client. A client belongs to
    the event loop it is first used in.
    """

    def __init__(
        self,
        login: str | None = None,
        password: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        rate_limit: RateLimit = RateLimit(),  # noqa: B008 - frozen, so sharing is safe
        retry: Retry = Retry(),  # noqa: B008 - frozen, so sharing is safe
        timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
        limiter: LimiterBackend | None = None,
        prefetch: int = 1,
        now: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        max_reply_bytes: int = _transport.DEFAULT_MAX_REPLY_BYTES,
        proxy: str | None = None,
    ) -> None:
        self._closed = True  # until fully built, so __del__ of a failed init stays quiet
        login = login if login is not None else os.environ.get("DATAFORSEO_LOGIN")
        password = password if password is not None else os.environ.get("DATAFORSEO_PASSWORD")
        if not login or not password:
            raise InvalidArgumentError(
                "no DataForSEO credentials: pass login= and password=, or set the "
                "DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD environment variables"
            )
        if not isinstance(rate_limit, RateLimit):
            raise InvalidArgumentError(f"rate_limit must be a RateLimit, got {rate_limit!r}")
        if not isinstance(retry, Retry):
            raise InvalidArgumentError(f"retry must be a Retry, got {retry!r}")
        _check_credentials(login, password)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or not 0 < timeout <= _MAX_TIMEOUT
        ):
            raise InvalidArgumentError(
                f"timeout must be a finite number of seconds, above 0 and at most "
                f"{_MAX_TIMEOUT:g} (a day), got {timeout!r}"
            )
        if (
            isinstance(max_reply_bytes, bool)
            or not isinstance(max_reply_bytes, int)
            or max_reply_bytes < _MIN_REPLY_BYTES
        ):
            raise InvalidArgumentError(
                f"max_reply_bytes must be an int of at least {_MIN_REPLY_BYTES}, "
                f"got {max_reply_bytes!r}"
            )
        if prefetch not in (0, 1) or isinstance(prefetch, bool):
            raise InvalidArgumentError(f"prefetch must be 0 or 1 (pages ahead), got {prefetch!r}")
        self.base_url = _check_base_url(base_url)
        self.max_reply_bytes = max_reply_bytes
        # Chosen once: the proxy= argument, else HTTPS_PROXY/HTTP_PROXY unless NO_PROXY
        # names the host. Kept as a Secret: a proxy URL may carry credentials.
        chosen = _check_proxy(proxy) if proxy is not None else _transport.env_proxy(base_url)
        self._proxy = None if chosen is None else _transport.Secret(chosen)
        self.login = login
        token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
        self._authorization = _transport.Secret(f"Basic {token}")
        self.rate_limit = rate_limit
        self.retry = retry
        self.timeout = float(timeout)
        self.prefetch = prefetch
        self._now = now if now is not None else _utc_now
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        # In-process limiters are shared by every client of this process (per account and
        # endpoint), so two clients with one login still make 10 calls a minute together.
        self._backend: LimiterBackend = limiter if limiter is not None else default_backend()
        self._limiters: dict[str, Limiter] = {}
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats = Stats()
        self._apis: dict[str, Api] = {}
        #: Set by aclose(): what a follower waiting for its next poll waits on too.
        self._closing = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        # getattr: a half-built client (its __init__ raised) may be shown in a traceback.
        state = "closed" if self._closed else "open"
        base_url = getattr(self, "base_url", "?")
        return f"<dfs_async.Client {base_url} login={getattr(self, 'login', None)!r} {state}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Stop prefetched calls and close the session the client created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # Let go of the limiters: one nobody holds no longer blocks another RateLimit for
            # the same account (see LocalBackend), while its history still counts.
            self._limiters.clear()
            if self._owns_session and self._session is not None:
                await self._session.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self!r} was never closed; "
                "use 'async with Client(...)' or 'await client.aclose()'",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    def _check_open(self) -> None:
        ensure_open(self)

    # -- endpoints -------------------------------------------------------------------------

    @property
    def backlinks(self) -> Api:
        """The Backlinks API's ``id_list`` and ``errors``."""
        return self.api("backlinks")

    def api(self, name: str) -> Api:
        """The same two endpoints of another DataForSEO API (``"serp"``, ``"merchant"``, ...)."""
        found = self._apis.get(name)
        if found is None:
            found = self._apis[name] = Api(self, name)
        return found

    def webhook_resend(self, task_ids: Iterable[str]) -> WebhookResend:
        """Deliver these tasks' webhooks (pingback or postback) again, free of charge.

        ``await client.webhook_resend(ids)`` gives one `WebhookResendOutcome` per distinct id:
        resent, or refused with the task-level code and message (a refusal concerns that id
        alone). Ids go 100 a call (``POST /v3/appendix/webhook_resend``) through their own
        limiter and the client's retries; no id, no call. The ids are checked now, before any
        call. A call retried after it got no reply may deliver its webhooks twice.
        """
        return WebhookResend(self, check_task_ids(task_ids))

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters."""
        return self._stats

    def now(self) -> datetime:
        """The current time as the client sees it (aware, UTC)."""
        return self._now()

    # -- calls -----------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a call in the background; the client cancels it if closed first."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or raise ClientClosedError as soon as the client closes."""
        ensure_open(self)
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return
        raise ClientClosedError("the client was closed while a follower waited to poll")

    def _bind_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise ClientClosedError(
                "this client belongs to another event loop; create one client per event loop"
            )
        if self._session is None:
            self._session = _transport.new_session()
        return self._session

    def _limiter(self, path: str) -> Limiter:
        found = self._limiters.get(path)
        if found is None:
            found = self._limiters[path] = self._backend.limiter(
                f"{self.login}:{path}", self.rate_limit
            )
        return found

    async def _release(self, limiter: Limiter, permit: Permit) -> None:
        """Stamp a call; a limiter failing to do so must not cost the page already read."""
        try:
            await limiter.release(permit)
        except Exception as exc:  # a shared limiter's own trouble (Redis): logged, not fatal
            logger.warning("rate limiter could not record a call: %s: %s", type(exc).__name__, exc)

    def _count(self, **changes: float) -> None:
        stats = self._stats
        self._stats = attrs.evolve(
            stats, **{name: getattr(stats, name) + value for name, value in changes.items()}
        )

    async def _fetch(self, path: str, task: Mapping[str, Any]) -> RawPage:
        """One page: the reply is checked down to its result list; the pager builds the records."""

        def read(status: int, headers: Mapping[str, str], raw: bytes) -> RawPage:
            return read_reply(endpoint=path, http_status=status, headers=headers, body=raw)

        return await self._call(
            path,
            encode_body(task),
            read,
            label=f"offset={task.get('offset')}",
            done=lambda page: f" limit={task.get('limit')}: {page.received} records",
        )

    async def _call(
        self,
        path: str,
        body: bytes,
        read: Callable[[int, Mapping[str, str], bytes], T],
        *,
        label: str,
        done: Callable[[T], str],
    ) -> T:
        """One call: wait for the limiter, send, retry transient failures per the policy.

        `read` turns the reply into a result or raises the error it reports; `label` names the
        call in log lines, `done` sums up its result for the debug log.
        """
        self._check_open()
        session = self._bind_loop()
        limiter = self._limiter(path)
        url = self.base_url + path
        loop = asyncio.get_running_loop()
        first_try = loop.time()
        attempt = 0
        while True:
            attempt += 1
            self._check_open()  # before taking a slot: a closed client makes no more calls
            permit = await limiter.acquire()
            if permit.waited > 0:
                self._count(rate_limit_waits=1, seconds_waited=permit.waited)
            self._count(calls=1)
            sent = loop.time()
            try:
                status, reply_headers, raw = await _transport.post(
                    session,
                    url,
                    body,
                    authorization=self._authorization,
                    timeout=self.timeout,
                    endpoint=path,
                    max_reply_bytes=self.max_reply_bytes,
                    proxy=self._proxy,
                )
            except TransportError as exc:
                # No reply arrived (or none that counts): the call is stamped now.
                await self._release(limiter, permit)
                error: DataForSEOError = exc
            except ReplyTooLargeError as exc:
                # A reply did arrive (too much of it): the call is stamped.
                await self._release(limiter, permit)
                error = exc
            except BaseException:
                # Cancelled (or a bug): the slot is still stamped, the call may have reached
                # the server.
                await self._release(limiter, permit)
                raise
            else:
                # The reply has arrived: this is the call's stamp.
                await self._release(limiter, permit)
                try:
                    reply = read(status, reply_headers, raw)
                except DataForSEOError as exc:
                    error = exc
                else:
                    logger.debug("%s %s%s in %.3f s", path, label, done(reply), loop.time() - sent)
                    return reply
            if self._closed:
                raise ClientClosedError("the client was closed during this call") from error
            if isinstance(error, RateLimitedError):
                self._count(rate_limited=1)
                error.retry_after = self.rate_limit.period
                await limiter.pause()
            elif isinstance(error, RequestTimeoutError):
                # No reply, so no upper bound on when the server counted the call (it may
                # still be running there): hold the quota for a period rather than guess.
                await limiter.pause()
            if not error.retryable:
                raise error
            if attempt >= self.retry.attempts:
                logger.error("%s: giving up after %d attempts: %s", path, attempt, describe(error))
                raise error
            # A refused call waits for the limiter (paused above), not for a backoff.
            wait = (
                0.0
                if isinstance(error, RateLimitedError)
                else self.retry.backoff(attempt, self._rng.random())
            )
            if loop.time() + wait - first_try > self.retry.deadline:
                logger.error(
                    "%s: giving up, the retry deadline of %g s would pass: %s",
                    path,
                    self.retry.deadline,
                    describe(error),
                )
                raise error
            logger.warning(
                "%s %s: %s; retry %d/%d in %.2f s",
                path,
                label,
                describe(error),
                attempt,
                self.retry.attempts - 1,
                wait,
            )
            self._count(retries=1, seconds_waited=wait)
            await asyncio.sleep(wait)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
