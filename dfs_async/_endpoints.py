"""The two endpoints of one DataForSEO API, with every argument checked before any call."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

# The reach rule is shared with the emulator; re-exported (`as`) for the modules that import it
# from here.
from ._calendar import ERRORS_DAYS as ERRORS_DAYS
from ._calendar import ID_LIST_METADATA_MONTHS as ID_LIST_METADATA_MONTHS
from ._calendar import ID_LIST_MONTHS as ID_LIST_MONTHS
from ._calendar import months_before as months_before
from ._convert import format_datetime, parse_datetime
from ._errors import InvalidArgumentError
from ._follow import FollowState
from ._follower import Follower, follow_errors, follow_ids
from ._models import FailedWebhook, TaskError, TaskId
from ._pager import Pager
from ._pagination import PagerState
from ._resend import collect_failed_webhooks
from ._webhooks import webhook_functions

if TYPE_CHECKING:
    from ._calls import Calls

__all__ = ["APIS", "MAX_PAGE_SIZE", "Api"]

MAX_PAGE_SIZE = 1000

#: The APIs that have these endpoints (the official specification), and which of the two.
APIS: Mapping[str, tuple[str, ...]] = {
    "app_data": ("id_list", "errors"),
    "backlinks": ("id_list", "errors"),
    "business_data": ("id_list", "errors"),
    "content_analysis": ("id_list",),
    "dataforseo_labs": ("id_list", "errors"),
    "domain_analytics": ("id_list", "errors"),
    "keywords_data": ("id_list", "errors"),
    "merchant": ("id_list", "errors"),
    "on_page": ("id_list", "errors"),
    "serp": ("id_list", "errors"),
}


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(
            f"{name} must be timezone-aware, e.g. datetime(2026, 11, 1, tzinfo=timezone.utc); "
            f"got the naive {value.isoformat(' ')}"
        )
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        # datetime.min with a positive offset (or max with a negative one) has no UTC form.
        raise InvalidArgumentError(
            f"{name} {value.isoformat(' ')} cannot be expressed in UTC; "
            "pass a date within years 1-9999 in UTC"
        ) from None
    return value


def _whole(name: str, value: object, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidArgumentError(f"{name} must be a whole number {span}, got {value!r}")
    return value


def _check_window(
    *,
    datetime_from: datetime | None,
    datetime_to: datetime | None,
    now: datetime,
    earliest: datetime,
    reach: str,
) -> None:
    # What is checked is what is sent: format_datetime keeps whole seconds, so a window valid
    # to the microsecond could still arrive empty, or a fraction of a second too old.
    start = None if datetime_from is None else _sent(datetime_from)
    end = None if datetime_to is None else _sent(datetime_to)
    if end is not None and end > now:
        raise InvalidArgumentError(
            f"datetime_to ({format_datetime(end)}) is in the future; the API accepts "
            f"at most the current time ({format_datetime(now)}); pass None for 'now'"
        )
    last = end if end is not None else _sent(now)  # an open window is closed at now, so sent
    if start is not None and start >= last:
        same = datetime_from is not None and datetime_from < (datetime_to or now)
        raise InvalidArgumentError(
            f"datetime_from ({format_datetime(start)}) must be before "
            f"datetime_to ({format_datetime(last)})"
            + (": the API takes whole seconds, and both fall in the same one" if same else "")
        )
    for name, value in (("datetime_from", start), ("datetime_to", end)):
        if value is not None and value < earliest:
            raise InvalidArgumentError(
                f"{name} ({format_datetime(value)}) is more than {reach} ago; the earliest the API "
                f"accepts now is {format_datetime(_next_second(earliest))}"
            )


def _sent(value: datetime) -> datetime:
    """A datetime as the API receives it: UTC, whole seconds (all format_datetime keeps)."""
    return value.astimezone(timezone.utc).replace(microsecond=0)


def _next_second(value: datetime) -> datetime:
    """The first whole second at or after `value`: the earliest that can be sent."""
    whole = value.replace(microsecond=0)
    return whole if whole == value else whole + timedelta(seconds=1)


class Api:
    """``id_list`` and ``errors`` of one API: ``client.backlinks``, ``client.api("serp")``."""

    def __init__(self, client: Calls, name: str) -> None:
        if name not in APIS:
            raise InvalidArgumentError(
                f"unknown API {name!r}; these have id_list/errors: {', '.join(sorted(APIS))}"
            )
        self._client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<dfs_async.Api {self.name}>"

    def _check_function(self, function: str) -> None:
        if function not in APIS[self.name]:
            raise InvalidArgumentError(f"the {self.name} API has no {function} endpoint")

    def id_list(
        self,
        datetime_from: datetime | None = None,
        datetime_to: datetime | None = None,
        *,
        sort: str = "asc",
        include_metadata: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        max_items: int | None = None,
        resume: PagerState | None = None,
    ) -> Pager[TaskId]:
        """Every task of the account between two times, oldest first (``sort="desc"``: newest).

        `datetime_to` None means now, fixed when iteration starts. The window may reach six
        months back (one month with ``include_metadata=True``). `resume` continues a stream
        from a saved ``pager.state``; other arguments, if given, must match it.
        """
        self._check_function("id_list")
        if resume is not None:
            # The saved request wins; arguments passed along must agree with it. The window is
            # not checked against the clock again: it was when the stream started.
            _check_passed(
                resume,
                datetime_from=_given("datetime_from", datetime_from),
                datetime_to=_given("datetime_to", datetime_to),
                sort=None if sort == "asc" else sort,
                include_metadata=include_metadata or None,
                page_size=None if page_size == MAX_PAGE_SIZE else page_size,
                max_items=max_items,
            )
            return self._resume(resume, "id_list", TaskId)
        if datetime_from is None:
            raise InvalidArgumentError("id_list needs datetime_from (or resume=)")
        start = _aware("datetime_from", datetime_from)
        end = _aware("datetime_to", datetime_to) if datetime_to is not None else None
        if sort not in ("asc", "desc"):
            raise InvalidArgumentError(f"sort must be 'asc' or 'desc', got {sort!r}")
        if not isinstance(include_metadata, bool):
            raise InvalidArgumentError(
                f"include_metadata must be True or False, got {include_metadata!r}"
            )
        page_size = _whole("page_size", page_size, 1, MAX_PAGE_SIZE)
        if max_items is not None:
            max_items = _whole("max_items", max_items, 1)
        now = self._client.now()
        months = ID_LIST_METADATA_MONTHS if include_metadata else ID_LIST_MONTHS
        _check_window(
            datetime_from=start,
            datetime_to=end,
            now=now,
            earliest=months_before(now, months),
            reach="one month (the limit with include_metadata=True)"
            if include_metadata
            else "six months",
        )
        params: dict[str, Any] = {"datetime_from": format_datetime(start)}
        if end is not None:
            params["datetime_to"] = format_datetime(end)
        if sort != "asc":
            params["sort"] = sort
        if include_metadata:
            params["include_metadata"] = True
        state = self._state("id_list", params, page_size, max_items)
        return Pager(
            client=self._client,
            record_type=TaskId,
            state=state,
            fix_datetime_to=self._fixed_now if end is None else None,
        )

    def errors(
        self,
        filtered_function: str | None = None,
        *,
        datetime_from: datetime | None = None,
        datetime_to: datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_items: int | None = None,
        resume: PagerState | None = None,
    ) -> Pager[TaskError]:
        """Tasks that answered with an error recently, newest first.

        `filtered_function` keeps one function's errors (``"backlinks/live"``). The optional
        window must lie within the last seven days; `datetime_to` None means now, fixed when
        iteration starts, so errors that arrive meanwhile cannot shift the pages.
        """
        self._check_function("errors")
        if resume is not None:
            _check_passed(
                resume,
                filtered_function=filtered_function,
                datetime_from=_given("datetime_from", datetime_from),
                datetime_to=_given("datetime_to", datetime_to),
                page_size=None if page_size == MAX_PAGE_SIZE else page_size,
                max_items=max_items,
            )
            return self._resume(resume, "errors", TaskError)
        if filtered_function is not None and (
            not isinstance(filtered_function, str) or not filtered_function.strip()
        ):
            raise InvalidArgumentError(
                f"filtered_function must be a function name such as 'backlinks/live', "
                f"got {filtered_function!r}"
            )
        start = _aware("datetime_from", datetime_from) if datetime_from is not None else None
        end = _aware("datetime_to", datetime_to) if datetime_to is not None else None
        page_size = _whole("page_size", page_size, 1, MAX_PAGE_SIZE)
        if max_items is not None:
            max_items = _whole("max_items", max_items, 1)
        now = self._client.now()
        _check_window(
            datetime_from=start,
            datetime_to=end,
            now=now,
            earliest=now - timedelta(days=ERRORS_DAYS),
            reach=f"{ERRORS_DAYS} days",
        )
        params: dict[str, Any] = {}
        if filtered_function is not None:
            params["filtered_function"] = filtered_function
        if start is not None:
            params["datetime_from"] = format_datetime(start)
        if end is not None:
            params["datetime_to"] = format_datetime(end)
        state = self._state("errors", params, page_size, max_items)
        # The errors list grows at its head as tasks fail; a window closed now keeps the
        # offsets stable while we page (the current specification takes datetime_to here).
        return Pager(
            client=self._client,
            record_type=TaskError,
            state=state,
            fix_datetime_to=self._fixed_now if end is None else None,
        )

    def follow_ids(
        self,
        datetime_from: datetime | None = None,
        *,
        poll_interval: float = 60.0,
        include_metadata: bool = False,
        lookback: float = 120.0,
        resume: FollowState | None = None,
    ) -> Follower[TaskId]:
        """Every task since `datetime_from`, then each new task and each change, forever.

        Yields a `TaskId` at its first sighting and again whenever its ``datetime_done``,
        ``status``, ``cost`` or ``metadata`` changed; ``follower.state`` resumes it. See
        ``dfs_async._follow`` for the strategy and the cost of a poll.
        """
        return follow_ids(
            self,
            datetime_from,
            poll_interval=poll_interval,
            include_metadata=include_metadata,
            lookback=lookback,
            resume=resume,
        )

    def follow_errors(
        self,
        filtered_function: str | None = None,
        *,
        datetime_from: datetime | None = None,
        poll_interval: float = 60.0,
        lookback: float = 120.0,
        resume: FollowState | None = None,
    ) -> Follower[TaskError]:
        """Every errors entry (since `datetime_from`, else the last 7 days), each once, forever."""
        return follow_errors(
            self,
            filtered_function,
            datetime_from=datetime_from,
            poll_interval=poll_interval,
            lookback=lookback,
            resume=resume,
        )

    async def failed_webhooks(
        self,
        *,
        kind: str = "both",
        datetime_from: datetime | None = None,
        datetime_to: datetime | None = None,
    ) -> list[FailedWebhook]:
        """The tasks whose webhook delivery failed, one `FailedWebhook` per task, newest first.

        Reads ``errors`` for ``pingback_url``, ``postback_url`` or both (`kind`), where a task
        appears once per failed attempt, and keeps each task's latest failure with the count.
        The window is the one of `errors` (the last seven days; `datetime_to` None is now,
        fixed once for both kinds). The arguments are checked before any call.
        """
        functions = webhook_functions(kind)
        end = datetime_to if datetime_to is not None else self._client.now()
        # Every stream is built (so every argument checked) before the first call.
        pagers = [
            self.errors(function, datetime_from=datetime_from, datetime_to=end)
            for function in functions
        ]
        return await collect_failed_webhooks(pagers)

    def _fixed_now(self) -> str:
        """The API form of the current time, for closing an open window when a stream starts."""
        return format_datetime(self._client.now())

    def _state(
        self, function: str, params: dict[str, Any], page_size: int, max_items: int | None
    ) -> PagerState:
        return PagerState(
            api=self.name,
            function=function,
            params=params,
            page_size=page_size,
            max_items=max_items,
            offset=0,
            yielded=0,
            seen=(),
        )

    def _resume(
        self,
        state: PagerState,
        function: str,
        record_type: type[Any],
    ) -> Pager[Any]:
        if not isinstance(state, PagerState):
            raise InvalidArgumentError(
                "resume must be a PagerState (PagerState.from_json(...) reads a saved one)"
            )
        if (state.api, state.function) != (self.name, function):
            raise InvalidArgumentError(
                f"this resume state is for /v3/{state.api}/{state.function}, "
                f"not /v3/{self.name}/{function}"
            )
        for name in ("datetime_from", "datetime_to"):
            if name in state.params:
                try:
                    parse_datetime(state.params[name])
                except ValueError as exc:
                    raise InvalidArgumentError(f"resume state: bad {name}: {exc}") from None
        return Pager(
            client=self._client, record_type=record_type, state=state, fix_datetime_to=None
        )


def _given(name: str, value: datetime | None) -> str | None:
    """A datetime passed along with resume=, in the form the saved request holds it."""
    return None if value is None else format_datetime(_aware(name, value))


def _check_passed(state: PagerState, **passed: Any) -> None:
    """With resume=, each argument actually passed (not None) must match the saved request."""
    if not isinstance(state, PagerState):
        raise InvalidArgumentError(
            "resume must be a PagerState (PagerState.from_json(...) reads a saved one), "
            f"got {type(state).__name__}"
        )
    saved = {
        **state.params,
        "page_size": state.page_size,
        "max_items": state.max_items,
        "sort": state.params.get("sort", "asc"),
        "include_metadata": state.params.get("include_metadata", False),
    }
    for name, value in passed.items():
        if value is not None and saved.get(name) != value:
            raise InvalidArgumentError(
                f"the resume state is for a different request: {name} is "
                f"{saved.get(name)!r} there, {value!r} here"
            )
