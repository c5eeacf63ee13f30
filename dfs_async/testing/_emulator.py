"""An aiohttp server that answers DataForSEO's id_list and errors endpoints as the docs describe.

One handler serves every path. For each request, in this order: count it (1-based number), take
the loop time, route it, check Basic auth, look up an injected fault, decide whether it takes a
slot in the rate-limit window, and only then read and validate the body. Everything up to the
window decision runs without awaiting, so concurrent requests are counted in arrival order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import collections
import hmac
import json
import random
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final

import attrs
from aiohttp import web

from dfs_async._endpoints import months_before

from . import _data, _live, _webhooks

__all__ = ["Emulator", "Fault", "LoggedRequest"]

VERSION: Final = "0.1.20240801"

_ID_LIST_APIS: Final = frozenset(
    {
        "backlinks",
        "serp",
        "keywords_data",
        "dataforseo_labs",
        "on_page",
        "business_data",
        "domain_analytics",
        "merchant",
        "app_data",
        "content_analysis",
    }
)
_ERRORS_APIS: Final = _ID_LIST_APIS - {"content_analysis"}

_ID_LIST_FIELDS: Final = frozenset(
    {"datetime_from", "datetime_to", "limit", "offset", "sort", "include_metadata", "tag"}
)
_ERRORS_FIELDS: Final = frozenset(
    {"limit", "offset", "filtered_function", "datetime_from", "datetime_to"}
)
_ITEM_FIELDS: Final = ("id", "url", "datetime_posted", "datetime_done", "status", "cost")

_SEVEN_DAYS: Final = timedelta(days=7)

_REQUEST_DATETIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{2}:[0-9]{2}"
)

# Two loop times closer than this count as equal: an exact period computed as `t - tau` in floats
# may come out a few ulps short, and must still leave the window.
_TIME_TOLERANCE: Final = 1e-7

_NOT_FOUND: Final = (40400, "Not Found.")
_UNAUTHORIZED: Final = (40100, "You are not authorized to access this resource.")
_RATE_LIMITED: Final = (40202, "Rate limit per minute exceeded. Please, try again later.")
_EMPTY: Final = (40502, "POST Data Is Empty.")
_INVALID_POST: Final = (40503, "Invalid POST data.")
_ONE_TASK: Final = (40000, "You can set only one task at a time.")
_RESULT_TAIL: Final = b"null}]}"

_PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

Route = tuple[str, str]  # (api, function)


_FAULT_NAMES: Final = (
    "reset_before_headers",
    "reset_during_body",
    "delay",
    "http_status",
    "truncated_json",
    "html",
    "envelope_error",
    "task_error",
    "rate_limited",
    "insert_head",
    "malformed_status_line",
    "huge_body",
    "gzip_bomb",
    "ignore_offset",
    "ignore_limit",
)


@attrs.frozen(kw_only=True)
class Fault:
    """A misbehaviour the emulator plays for one request number, built by the class methods."""

    name: str = attrs.field(validator=attrs.validators.in_(_FAULT_NAMES))
    seconds: float = 0.0
    status: int = 0
    code: int = 0
    message: str = ""
    count: int = 0

    @classmethod
    def reset_before_headers(cls) -> Fault:
        """Close the connection without answering."""
        return cls(name="reset_before_headers")

    @classmethod
    def reset_during_body(cls) -> Fault:
        """Send the headers (full Content-Length) and half the body, then close the connection."""
        return cls(name="reset_during_body")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait `seconds` on the loop clock, then answer normally."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return cls(name="delay", seconds=float(seconds))

    @classmethod
    def http_status(cls, code: int) -> Fault:
        """Answer this HTTP status with a short plain-text body."""
        if not 100 <= code <= 599:
            raise ValueError("code must be an HTTP status")
        return cls(name="http_status", status=code)

    @classmethod
    def truncated_json(cls) -> Fault:
        """A complete HTTP 200 message whose JSON body is cut in the middle."""
        return cls(name="truncated_json")

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page such as a proxy in front of the API sends."""
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        return cls(name="html", status=status)

    @classmethod
    def envelope_error(cls, code: int = 50000, message: str = "Internal Error.") -> Fault:
        """This DataForSEO status at the envelope, `tasks` null."""
        return cls(name="envelope_error", code=code, message=message)

    @classmethod
    def task_error(cls, code: int = 50000, message: str = "Internal Error.") -> Fault:
        """Envelope 20000 whose only task carries this status and a null result."""
        return cls(name="task_error", code=code, message=message)

    @classmethod
    def rate_limited(cls) -> Fault:
        """40202 at the envelope whatever the window holds; the request takes no slot."""
        return cls(name="rate_limited")

    @classmethod
    def insert_head(cls, n: int) -> Fault:
        """Add `n` records newer than all others to the endpoint's data set, then answer."""
        if n < 1:
            raise ValueError("n must be >= 1")
        return cls(name="insert_head", count=n)

    @classmethod
    def malformed_status_line(cls) -> Fault:
        """Answer with a status line that is not HTTP (``HTTP/1.1 2OO OK``), then close."""
        return cls(name="malformed_status_line")

    @classmethod
    def huge_body(cls, size: int, *, declared: bool = True) -> Fault:
        """A 200 reply of `size` bytes, streamed; with ``declared=False`` it is chunked, with
        no Content-Length to warn the client."""
        if size < 1:
            raise ValueError("size must be >= 1")
        return cls(name="huge_body", count=size, status=1 if declared else 0)

    @classmethod
    def gzip_bomb(cls, inflated: int) -> Fault:
        """A chunked ``Content-Encoding: gzip`` reply that inflates to `inflated` bytes of
        zeros (about a thousand times what is sent)."""
        if inflated < 1:
            raise ValueError("inflated must be >= 1")
        return cls(name="gzip_bomb", count=inflated)

    @classmethod
    def ignore_offset(cls) -> Fault:
        """Answer as if the request had no ``offset``: the first page, whatever was asked."""
        return cls(name="ignore_offset")

    @classmethod
    def ignore_limit(cls) -> Fault:
        """Answer as if the request had no ``limit``: up to 1000 records, whatever was asked."""
        return cls(name="ignore_limit")


@attrs.frozen(kw_only=True)
class LoggedRequest:
    """What the emulator saw of one request and what it answered; never the credentials."""

    number: int
    time: float
    path: str
    body: Any
    authorization_ok: bool
    accepted: bool
    status_code: int | None
    http_status: int | None
    fault: str | None


@attrs.frozen(kw_only=True)
class _IdListQuery:
    start: int
    end: int
    limit: int
    offset: int
    descending: bool
    metadata: bool


@attrs.frozen(kw_only=True)
class _ErrorsQuery:
    limit: int
    offset: int
    function: str | None
    start: int | None
    end: int | None


@attrs.frozen
class _Invalid:
    code: int
    message: str

    @property
    def error(self) -> tuple[int, str]:
        return self.code, self.message


@attrs.define
class _RollingWindow:
    """Accepted arrival times per path; at most `calls` of them in any period-long window.

    Strategy: a request at loop time t is accepted iff fewer than `calls` accepted requests have
    arrival times tau with t - tau < period, i.e. in (t - period, t]. Times arrive in increasing
    order (they are read before the handler first awaits), so each path keeps a deque and drops
    from the left whatever has left the window.
    """

    calls: int
    period: float
    _times: dict[str, collections.deque[float]] = attrs.Factory(dict)

    def _current(self, path: str, now: float) -> collections.deque[float]:
        times = self._times.setdefault(path, collections.deque())
        while times and now - times[0] >= self.period - _TIME_TOLERANCE:
            times.popleft()
        return times

    def try_acquire(self, path: str, now: float) -> bool:
        times = self._current(path, now)
        if len(times) >= self.calls:
            return False
        times.append(now)
        return True

    def force(self, path: str, now: float) -> None:
        self._current(path, now).append(now)

    def remaining(self, path: str, now: float) -> int:
        return max(0, self.calls - len(self._current(path, now)))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _epoch(value: datetime | str) -> int:
    if isinstance(value, str):
        return _data.parse_api_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def _envelope(code: int, message: str, started: float) -> bytes:
    """An envelope-level answer: this status, no tasks."""
    return _encode(
        {
            "version": VERSION,
            "status_code": code,
            "status_message": message,
            "time": _elapsed(started),
            "cost": 0,
            "tasks_count": 0,
            "tasks_error": 0,
            "tasks": None,
        }
    )


@attrs.frozen
class _Answer:
    """A normal answer: HTTP status, the envelope's DataForSEO code and the encoded body."""

    status: int
    code: int
    body: bytes


def _refusal(status: int, error: tuple[int, str], started: float) -> _Answer:
    """An answer with this status at the envelope and no tasks."""
    return _Answer(status, error[0], _envelope(*error, started))


def _elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.4f} sec."


def _encode_text(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _encode(document: Any) -> bytes:
    return _encode_text(document).encode()


def _parse_for_log(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _without(raw: bytes, field: str) -> bytes:
    """The posted body with `field` dropped from its task, as a server ignoring it reads it."""
    posted = _parse_for_log(raw)
    if isinstance(posted, list) and posted and isinstance(posted[0], dict):
        posted[0].pop(field, None)
        return json.dumps(posted).encode()
    return raw


def _request_datetime(task: Mapping[str, Any], name: str) -> datetime | _Invalid | None:
    if name not in task:
        return None
    value = task[name]
    if not isinstance(value, str) or _REQUEST_DATETIME.fullmatch(value) is None:
        return _invalid_field(name)
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return _invalid_field(name)


def _invalid_field(name: str) -> _Invalid:
    return _Invalid(40501, f"Invalid Field: '{name}'.")


def _paging(task: Mapping[str, Any]) -> tuple[int, int] | _Invalid:
    limit = task.get("limit", 1000)
    if type(limit) is not int or not 1 <= limit <= 1000:
        return _invalid_field("limit")
    offset = task.get("offset", 0)
    if type(offset) is not int or offset < 0:
        return _invalid_field("offset")
    return limit, offset


def _unknown_fields(task: Mapping[str, Any], allowed: frozenset[str]) -> _Invalid | None:
    unknown = [name for name in task if name not in allowed]
    if unknown:
        return _Invalid(40506, f"Unknown Fields in POST Data: {', '.join(unknown)}.")
    return None


def _validate_id_list(task: Mapping[str, Any], now: datetime) -> _IdListQuery | _Invalid:
    unknown = _unknown_fields(task, _ID_LIST_FIELDS)
    if unknown is not None:
        return unknown
    start = _request_datetime(task, "datetime_from")
    if not isinstance(start, datetime):
        return start or _invalid_field("datetime_from")
    end = _request_datetime(task, "datetime_to")
    if not isinstance(end, datetime):
        return end or _invalid_field("datetime_to")
    paging = _paging(task)
    if isinstance(paging, _Invalid):
        return paging
    sort = task.get("sort", "asc")
    if sort not in ("asc", "desc"):
        return _invalid_field("sort")
    metadata = task.get("include_metadata", False)
    if not isinstance(metadata, bool):
        return _invalid_field("include_metadata")
    if "tag" in task and not isinstance(task["tag"], str):
        return _invalid_field("tag")
    if end > now:
        return _invalid_field("datetime_to")
    # Calendar months, the client's own reading of the documentation's "six months" (one
    # with metadata), so a window the client accepts is never refused here.
    if start < months_before(now, 1 if metadata else 6):
        return _invalid_field("datetime_from")
    if start >= end:
        return _invalid_field("datetime_from")
    return _IdListQuery(
        start=int(start.timestamp()),
        end=int(end.timestamp()),
        limit=paging[0],
        offset=paging[1],
        descending=sort == "desc",
        metadata=metadata,
    )


def _validate_errors(task: Mapping[str, Any], now: datetime) -> _ErrorsQuery | _Invalid:
    unknown = _unknown_fields(task, _ERRORS_FIELDS)
    if unknown is not None:
        return unknown
    paging = _paging(task)
    if isinstance(paging, _Invalid):
        return paging
    function = task.get("filtered_function")
    if "filtered_function" in task and not isinstance(function, str):
        return _invalid_field("filtered_function")
    start = _request_datetime(task, "datetime_from")
    if isinstance(start, _Invalid):
        return start
    end = _request_datetime(task, "datetime_to")
    if isinstance(end, _Invalid):
        return end
    if end is not None and end > now:
        return _invalid_field("datetime_to")
    if start is not None and start < now - _SEVEN_DAYS:
        return _invalid_field("datetime_from")
    if start is not None and end is not None and start >= end:
        return _invalid_field("datetime_from")
    return _ErrorsQuery(
        limit=paging[0],
        offset=paging[1],
        function=function,
        start=None if start is None else int(start.timestamp()),
        end=None if end is None else int(end.timestamp()),
    )


def _item(record: Mapping[str, Any], metadata: bool) -> dict[str, Any]:
    item = {name: record.get(name) for name in _ITEM_FIELDS}
    if metadata:
        item["metadata"] = record.get("metadata")
    return item


class Emulator:
    """DataForSEO's `/v3/{api}/id_list`, `/v3/{api}/errors` (and webhook_resend) on loopback.

    Use it as `async with Emulator() as emu:` and point a client at `emu.url`. Faults can be
    injected for given request numbers; every request is logged in `emu.requests`.

    `now` is its clock (default: the real time). Generated tasks lie over the `data_days`
    before `data_now` (default: `now()` when it is made), errors over the six days before it.
    """

    def __init__(
        self,
        login: str = "login",
        password: str = "password",  # noqa: S107 -- the documentation's placeholder, not a secret
        *,
        tasks: Sequence[Mapping[str, Any]] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        n_tasks: int = 2500,
        n_errors: int = 300,
        seed: int = 0,
        rate_limit: tuple[int, float] | None = (10, 60.0),
        now: Callable[[], datetime] | None = None,
        data_now: datetime | None = None,
        data_days: int = 150,
        rate_limit_headers: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        live: _live.Live | None = None,
    ) -> None:
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ValueError("rate_limit must be (calls >= 1, period > 0) or None")
        self._credentials = f"{login}:{password}".encode()
        #: Live mode (`_live.Live`): id_list and errors answer from it, on its clock.
        self.live = live
        self._now = now or (live.now if live is not None else _utc_now)
        self._host = host
        self._port = port
        self._window = None if rate_limit is None else _RollingWindow(*rate_limit)
        self._rate_limit_headers = rate_limit_headers
        self._faults: dict[int, Fault] = {}
        self._received = 0
        self._answered = 0
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        self._closed = False
        self._closing = asyncio.Event()
        self._insert_rng = random.Random(f"dfs-async-insert-{seed}")
        self.requests: list[LoggedRequest] = []

        # The generated data lies over the `data_days` before this moment; a caller that must
        # see the same records again later (a resumed demo) passes the moment it used first.
        created = self._now() if data_now is None else data_now
        self._tasks: list[dict[str, Any]] | _data.TaskSequence
        self._task_keys: list[int] | Sequence[int]
        if tasks is None:
            # Kept lazy whatever its size: pages are served from the generator's JSON text.
            generated = _data.TaskSequence(n_tasks, seed=seed, now=created, days=data_days)
            self._tasks = generated
            self._task_keys = generated.posted_keys
        else:
            # Keep the caller's order among equal times (sorted() is stable).
            pairs = sorted(
                ((_data.parse_api_datetime(t["datetime_posted"]), t) for t in tasks),
                key=lambda pair: pair[0],
            )
            self._tasks = [dict(record) for _, record in pairs]
            self._task_keys = [key for key, _ in pairs]

        source = (
            _data.generate_errors(n_errors, seed=seed, now=created) if errors is None else errors
        )
        pairs_e = sorted(
            ((_data.parse_api_datetime(e["datetime"]), e) for e in source),
            key=lambda pair: -pair[0],
        )
        self._errors: list[dict[str, Any]] = [dict(entry) for _, entry in pairs_e]
        # Negated times, so the newest-first list is ascending for bisect.
        self._error_keys: list[int] = [-key for key, _ in pairs_e]
        #: Tasks with webhooks, their failed deliveries, webhook_resend and its log.
        self.webhooks = _webhooks.Webhooks(
            add_error=self._add_error, now=self._now, new_task_id=self._task_id, seed=seed
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free port of the host (idempotent)."""
        if self._closed:
            raise RuntimeError("the emulator is closed")
        if self._runner is not None:
            return
        runner = web.ServerRunner(
            web.Server(self._handle, access_log=None),
            shutdown_timeout=5.0,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        port = runner.addresses[0][1]
        self._url = f"http://{self._host}:{port}"

    async def close(self) -> None:
        """Stop listening, cut delayed answers short and close every connection (idempotent)."""
        self._closed = True
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- public view ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` once started."""
        if self._url is None:
            raise RuntimeError("the emulator is not started")
        return self._url

    @property
    def tasks(self) -> Sequence[dict[str, Any]]:
        """The id_list data set, oldest first, records as the API returns them with metadata."""
        return self._tasks

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The errors data set, newest first."""
        return self._errors

    def inject(self, number: int, fault: Fault) -> None:
        """Play `fault` for the request with this 1-based number (counting every request)."""
        self.script({number: fault})

    def script(self, faults: Mapping[int, Fault]) -> None:
        """`inject` several faults at once: {request number: fault}."""
        for number in faults:
            if number < 1:
                raise ValueError("request numbers start at 1")
            if number <= self._received:
                raise ValueError(f"request {number} was already received")
        self._faults.update(faults)

    def expected_id_list(
        self,
        datetime_from: datetime | str,
        datetime_to: datetime | str,
        sort: str = "asc",
        include_metadata: bool = False,
    ) -> list[dict[str, Any]]:
        """Every item id_list pages would return for this range now, in order."""
        lo, hi = self._task_range(_epoch(datetime_from), _epoch(datetime_to))
        indices = range(hi - 1, lo - 1, -1) if sort == "desc" else range(lo, hi)
        return [_item(self._tasks[i], include_metadata) for i in indices]

    def expected_errors(
        self,
        filtered_function: str | None = None,
        datetime_from: datetime | str | None = None,
        datetime_to: datetime | str | None = None,
    ) -> list[dict[str, Any]]:
        """Every entry errors pages would return for these filters now, newest first."""
        start = None if datetime_from is None else _epoch(datetime_from)
        end = None if datetime_to is None else _epoch(datetime_to)
        return [dict(entry) for entry in self._select_errors(filtered_function, start, end)]

    def max_calls_in_window(self, path: str, period: float) -> int:
        """The most accepted requests to `path` inside any window (t - period, t], from the log."""
        times = [r.time for r in self.requests if r.accepted and r.path == path]
        best = 0
        left = 0
        for right, now in enumerate(times):
            while now - times[left] >= period - _TIME_TOLERANCE:
                left += 1
            best = max(best, right - left + 1)
        return best

    # -- data ----------------------------------------------------------------------------------

    def _task_range(self, start: int, end: int) -> tuple[int, int]:
        return (
            bisect.bisect_left(self._task_keys, start),
            bisect.bisect_right(self._task_keys, end),
        )

    def _select_errors(
        self, function: str | None, start: int | None, end: int | None
    ) -> list[dict[str, Any]]:
        """The stored entries in [start, end] of this function, newest first."""
        lo = 0 if end is None else bisect.bisect_left(self._error_keys, -end)
        hi = len(self._errors) if start is None else bisect.bisect_right(self._error_keys, -start)
        window = self._errors[lo:hi]
        if function is None:
            return window
        return [entry for entry in window if entry.get("function") == function]

    def _add_error(self, entry: dict[str, Any]) -> None:
        """Store one more errors entry where its datetime puts it (newest first)."""
        key = -_data.parse_api_datetime(entry["datetime"])
        index = bisect.bisect_left(self._error_keys, key)
        self._errors.insert(index, entry)
        self._error_keys.insert(index, key)

    def _insert_head(self, function: str, count: int) -> None:
        if function == "id_list":
            self._insert_tasks(count)
        else:
            self._insert_errors(count)

    def _insert_tasks(self, count: int) -> None:
        keys = self._task_keys
        posted = keys[-1] + 1 if len(keys) else int(self._now().timestamp()) - 60
        if isinstance(self._tasks, _data.TaskSequence):
            self._tasks.add_newer(count, posted)
            return
        assert isinstance(keys, list)
        key = self._insert_rng.getrandbits(64)
        size = len(self._tasks)
        self._tasks.extend(_data.make_task(key, size + i, posted) for i in range(count))
        keys.extend([posted] * count)

    def _insert_errors(self, count: int) -> None:
        epoch = -self._error_keys[0] + 1 if self._errors else int(self._now().timestamp()) - 60
        entries = [_data.make_error(self._insert_rng, epoch) for _ in range(count)]
        self._errors[:0] = entries
        self._error_keys[:0] = [-epoch] * count

    # -- HTTP ----------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route | None:
        parts = path.split("/")
        if method != "POST" or len(parts) != 4 or parts[0] or parts[1] != "v3":
            return None
        api, function = parts[2], parts[3]
        if function == "id_list" and api in _ID_LIST_APIS:
            return api, function
        if function == "errors" and api in _ERRORS_APIS:
            return api, function
        if (api, function) == _webhooks.ROUTE:
            return _webhooks.ROUTE
        return None

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, self._credentials)

    def _admit(
        self, route: Route | None, path: str, authorized: bool, fault: Fault | None, now: float
    ) -> bool:
        """Whether this request takes a slot in the window of its path."""
        if fault is not None:
            # A fault stands for "the server took the call, then something broke", so it counts
            # (and is played even when the window is full); rate_limited is the exception.
            if fault.name == "rate_limited":
                return False
            if self._window is not None:
                self._window.force(path, now)
            return True
        if route is None or not authorized:
            return False
        if self._window is None:
            return True
        return self._window.try_acquire(path, now)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        arrival = asyncio.get_running_loop().time()
        self._received += 1
        number = self._received
        path = request.path
        route = self._route(request.method, path)
        authorized = self._authorized(request.headers.get("Authorization"))
        fault = self._faults.pop(number, None)
        accepted = self._admit(route, path, authorized, fault, arrival)
        entry = LoggedRequest(
            number=number,
            time=arrival,
            path=path,
            body=None,
            authorization_ok=authorized,
            accepted=accepted,
            status_code=None,
            http_status=None,
            fault=None if fault is None else fault.name,
        )
        self.requests.append(entry)
        raw = await request.read()
        entry = attrs.evolve(entry, body=_parse_for_log(raw))
        self.requests[number - 1] = entry

        headers: dict[str, str] = {}
        if self._rate_limit_headers and self._window is not None and route and authorized:
            headers["X-RateLimit-Limit"] = str(self._window.calls)
            headers["X-RateLimit-Remaining"] = str(self._window.remaining(path, arrival))

        response, code, status = await self._respond(
            request, fault, route, authorized, accepted, raw, started, headers
        )
        self.requests[number - 1] = attrs.evolve(entry, status_code=code, http_status=status)
        return response

    async def _respond(
        self,
        request: web.BaseRequest,
        fault: Fault | None,
        route: Route | None,
        authorized: bool,
        accepted: bool,
        raw: bytes,
        started: float,
        headers: dict[str, str],
    ) -> tuple[web.StreamResponse, int | None, int | None]:
        """The response to send, the DataForSEO code it carries and its HTTP status."""
        name = None if fault is None else fault.name
        if fault is None or name in ("delay", "insert_head", "ignore_offset", "ignore_limit"):
            if fault is not None and name == "delay" and await self._sleep(fault.seconds):
                return self._drop(request), None, None
            if fault is not None and name == "insert_head" and route is not None:
                self._insert_head(route[1], fault.count)
            if name == "ignore_offset" or name == "ignore_limit":
                raw = _without(raw, name.removeprefix("ignore_"))
            answer = self._answer(route, authorized, accepted, raw, started)
            if route == _webhooks.ROUTE and await self.webhooks.held(self._closing):
                return self._drop(request), None, None
            return self._json(answer.status, answer.body, headers), answer.code, answer.status
        if name == "reset_before_headers":
            return self._drop(request), None, None
        if name == "malformed_status_line":
            if request.transport is not None:
                request.transport.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n")
            return self._drop(request), None, None
        if name == "huge_body" or name == "gzip_bomb":
            assert fault is not None
            return await self._stream_big(request, fault), None, 200
        if name == "reset_during_body":
            answer = self._answer(route, authorized, True, raw, started)
            response = web.StreamResponse(status=answer.status, headers=headers)
            response.content_type = "application/json"
            response.content_length = len(answer.body)
            await response.prepare(request)
            await response.write(answer.body[: len(answer.body) // 2])
            if request.transport is not None:
                request.transport.close()
            return response, None, answer.status
        if name == "truncated_json":
            answer = self._answer(route, authorized, True, raw, started)
            cut = answer.body[: len(answer.body) // 2]
            return self._json(answer.status, cut, headers), None, answer.status
        if name == "http_status" or name == "html":
            assert fault is not None
            phrase = _phrase(fault.status)
            if name == "html":
                page = _PROXY_PAGE.format(status=fault.status, phrase=phrase)
                response = web.Response(status=fault.status, text=page, content_type="text/html")
            else:
                text = f"{fault.status} {phrase}\n"
                response = web.Response(status=fault.status, text=text, content_type="text/plain")
            return response, None, fault.status
        if name == "rate_limited":
            body = _envelope(*_RATE_LIMITED, started)
            return self._json(200, body, headers), _RATE_LIMITED[0], 200
        if name == "envelope_error":
            assert fault is not None
            body = _envelope(fault.code, fault.message, started)
            return self._json(200, body, headers), fault.code, 200
        if name == "task_error":
            assert fault is not None
            body = self._task_error(request.path, route, raw, fault, started)
            return self._json(200, body, headers), 20000, 200
        raise ValueError(f"unknown fault {name!r}")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the loop clock; True if the emulator started closing meanwhile."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    async def _stream_big(request: web.BaseRequest, fault: Fault) -> web.StreamResponse:
        """Stream a huge body (or a gzip bomb) until done or the client hangs up."""
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        block = 1 << 20
        if fault.name == "huge_body":
            head = b'{"status_code": 20000, "padding": "'
            pieces = _padding(head, fault.count, block)
            if fault.status:
                response.content_length = fault.count
        else:
            response.headers["Content-Encoding"] = "gzip"
            pieces = _gzip_zeros(fault.count, block)
        try:
            await response.prepare(request)
            for piece in pieces:
                await response.write(piece)
                # Loopback buffers take megabytes without blocking: yield, so a client in
                # this loop gets to read (and hang up) before everything is sent.
                await asyncio.sleep(0)
            await response.write_eof()
        except ConnectionError:
            pass  # the client stopped reading: what the fault is for
        return response

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        # Close the connection before anything is written. aiohttp then fails to send the
        # returned response with a ConnectionError, which it treats as a client disconnection.
        if request.transport is not None:
            request.transport.close()
        return web.Response()

    @staticmethod
    def _json(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        return web.Response(
            status=status,
            body=body,
            headers=headers,
            content_type="application/json",
            charset="utf-8",
        )

    def _task_error(
        self, path: str, route: Route | None, raw: bytes, fault: Fault, started: float
    ) -> bytes:
        parsed = _parse_for_log(raw)
        sent: dict[str, Any] = {}
        if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
            sent = parsed[0]
        if route is None:
            parts = [*path.split("/"), "", "", ""]
            route = parts[2], parts[3]
        error = (fault.code, fault.message)
        return self._document(route, sent, started, error=error, items=None)

    def _answer(
        self,
        route: Route | None,
        authorized: bool,
        within_limit: bool,
        raw: bytes,
        started: float,
    ) -> _Answer:
        """The normal answer to a request, in the order: path, auth, rate limit, body."""
        if route is None:
            return _refusal(404, _NOT_FOUND, started)
        if not authorized:
            return _refusal(401, _UNAUTHORIZED, started)
        if not within_limit:
            return _refusal(200, _RATE_LIMITED, started)
        if not raw.strip():
            return _refusal(200, _EMPTY, started)
        try:
            posted = json.loads(raw)
        except ValueError:
            return _refusal(200, _INVALID_POST, started)
        if not isinstance(posted, list) or not all(isinstance(task, dict) for task in posted):
            return _refusal(200, _INVALID_POST, started)
        if not posted:
            return _refusal(200, _EMPTY, started)
        if route == _webhooks.ROUTE:
            return _Answer(200, *self.webhooks.answer(posted, started))
        if len(posted) > 1:
            return _refusal(200, _ONE_TASK, started)
        task: dict[str, Any] = posted[0]
        items: list[str]
        if route[1] == "id_list":
            query = _validate_id_list(task, self._now())
            if isinstance(query, _Invalid):
                body = self._document(route, task, started, error=query.error, items=None)
                return _Answer(200, 20000, body)
            items = self._id_list(query)
        else:
            errors_query = _validate_errors(task, self._now())
            if isinstance(errors_query, _Invalid):
                body = self._document(route, task, started, error=errors_query.error, items=None)
                return _Answer(200, 20000, body)
            items = self._errors_page(errors_query)
        body = self._document(route, task, started, error=None, items=items)
        return _Answer(200, 20000, body)

    def _id_list(self, query: _IdListQuery) -> list[str]:
        if self.live is not None:
            q = query
            return self.live.id_list(q.start, q.end, q.offset, q.limit, q.descending, q.metadata)
        lo, hi = self._task_range(query.start, query.end)
        if query.descending:
            first = hi - 1 - query.offset
            indices = range(first, max(first - query.limit, lo - 1), -1)
        else:
            first = lo + query.offset
            indices = range(first, min(first + query.limit, hi))
        tasks = self._tasks
        if isinstance(tasks, _data.TaskSequence):
            return [tasks.item_json(i, query.metadata) for i in indices]
        return [_encode_text(_item(tasks[i], query.metadata)) for i in indices]

    def _errors_page(self, query: _ErrorsQuery) -> list[str]:
        if self.live is not None:
            q = query
            return self.live.errors_page(q.function, q.start, q.end, q.offset, q.limit)
        selected = self._select_errors(query.function, query.start, query.end)
        return [
            _encode_text(entry) for entry in selected[query.offset : query.offset + query.limit]
        ]

    def _document(
        self,
        route: Route,
        sent: Mapping[str, Any],
        started: float,
        *,
        error: tuple[int, str] | None,
        items: list[str] | None,
    ) -> bytes:
        """A one-task envelope; `items` are the result's entries, already JSON text."""
        api, function = route
        code, message = error or (20000, "Ok.")
        task = {
            "id": self._task_id(),
            "status_code": code,
            "status_message": message,
            "time": _elapsed(started),
            "cost": 0,
            "result_count": 0 if items is None else len(items),
            "path": ["v3", api, function],
            "data": {"api": api, "function": function, **sent},
            "result": None,
        }
        document = {
            "version": VERSION,
            "status_code": 20000,
            "status_message": "Ok.",
            "time": _elapsed(started),
            "cost": 0,
            "tasks_count": 1,
            "tasks_error": 0 if error is None else 1,
            "tasks": [task],
        }
        encoded = _encode(document)
        if items is None:
            return encoded
        # "result" is the last key of the last task, so the encoded document ends with
        # `null}]}`: splice the pre-encoded items in there instead of encoding them again.
        return b"".join((encoded[: -len(_RESULT_TAIL)], b"[", ",".join(items).encode(), b"]}]}"))

    def _task_id(self) -> str:
        self._answered += 1
        epoch = int(self._now().timestamp())
        return _data.task_id(epoch, self._answered, self._answered + (1 << 40))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _padding(head: bytes, size: int, block: int) -> Iterator[bytes]:
    """`size` bytes: `head`, then spaces, in pieces of at most `block`."""
    first = head[:size]
    yield first
    left = size - len(first)
    filler = b" " * block
    while left > 0:
        yield filler[: min(left, block)]
        left -= block


def _gzip_zeros(size: int, block: int) -> Iterator[bytes]:
    """A gzip member of `size` zero bytes, compressed once per `block` and then repeated.

    After a full flush deflate starts afresh, so each block of zeros compresses to the same
    bytes. The CRC trailer is computed only once all the rest is sent: a client that stops
    early (the point of the fault) costs the emulator no CRC work.
    """
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip header, no name, no time
    zeros = bytes(block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    whole = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    blocks, left = divmod(size, block)
    for _ in range(blocks):
        yield whole
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield last.compress(bytes(left)) + last.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(left), crc)
    yield struct.pack("<II", crc, size & 0xFFFFFFFF)
