"""What a request to the emulator asks for, and whether the API would accept it (pure, no aiohttp).

A request is read in the API's order: the path (`route`), Basic auth (`authorized`), then the
body (`read_tasks`) and its one task (`validate_id_list`, `validate_errors`). A task the API
accepts becomes a query record (`IdListQuery`, `ErrorsQuery`) of plain epochs and numbers; one it
refuses becomes an `Invalid` with the code and message the API answers. Nothing here awaits or
reads a clock: `now` is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from dfs_async._calendar import errors_earliest, id_list_earliest

from . import _webhooks

__all__ = [
    "EMPTY",
    "INVALID_POST",
    "NOT_FOUND",
    "ONE_TASK",
    "RATE_LIMITED",
    "UNAUTHORIZED",
    "ErrorsQuery",
    "IdListQuery",
    "Invalid",
    "Route",
    "authorized",
    "parse_for_log",
    "read_tasks",
    "route",
    "validate_errors",
    "validate_id_list",
    "without",
]

Route = tuple[str, str]  # (api, function)

#: The APIs that have id_list, and those that have errors (all but content_analysis).
ID_LIST_APIS: Final = frozenset(
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
ERRORS_APIS: Final = ID_LIST_APIS - {"content_analysis"}

ID_LIST_FIELDS: Final = frozenset(
    {"datetime_from", "datetime_to", "limit", "offset", "sort", "include_metadata", "tag"}
)
ERRORS_FIELDS: Final = frozenset(
    {"limit", "offset", "filtered_function", "datetime_from", "datetime_to"}
)

# The envelope-level refusals: (status_code, status_message), as the API words them.
NOT_FOUND: Final = (40400, "Not Found.")
UNAUTHORIZED: Final = (40100, "You are not authorized to access this resource.")
RATE_LIMITED: Final = (40202, "Rate limit per minute exceeded. Please, try again later.")
EMPTY: Final = (40502, "POST Data Is Empty.")
INVALID_POST: Final = (40503, "Invalid POST data.")
ONE_TASK: Final = (40000, "You can set only one task at a time.")

_REQUEST_DATETIME: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{2}:[0-9]{2}"
)


@attrs.frozen
class Invalid:
    """A refusal: the DataForSEO status the API answers, at the envelope or in the task."""

    code: int
    message: str

    @property
    def error(self) -> tuple[int, str]:
        """``(status_code, status_message)``."""
        return self.code, self.message


@attrs.frozen(kw_only=True)
class IdListQuery:
    """An accepted id_list task: the window in epoch seconds (both ends included) and paging."""

    start: int
    end: int
    limit: int
    offset: int
    descending: bool
    metadata: bool


@attrs.frozen(kw_only=True)
class ErrorsQuery:
    """An accepted errors task: paging, the function filter and the optional window."""

    limit: int
    offset: int
    function: str | None
    start: int | None
    end: int | None


def route(method: str, path: str) -> Route | None:
    """The ``(api, function)`` a request names, or None where the API answers 40400."""
    parts = path.split("/")
    if method != "POST" or len(parts) != 4 or parts[0] or parts[1] != "v3":
        return None
    api, function = parts[2], parts[3]
    if function == "id_list" and api in ID_LIST_APIS:
        return api, function
    if function == "errors" and api in ERRORS_APIS:
        return api, function
    if (api, function) == _webhooks.ROUTE:
        return _webhooks.ROUTE
    return None


def authorized(header: str | None, credentials: bytes) -> bool:
    """Whether an Authorization header is Basic auth with exactly ``login:password``."""
    if header is None:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    # Constant time, so the emulator does not teach a timing attack it would not survive.
    return hmac.compare_digest(decoded, credentials)


def read_tasks(raw: bytes) -> list[dict[str, Any]] | Invalid:
    """The posted array of tasks, or the envelope-level refusal of the body."""
    if not raw.strip():
        return Invalid(*EMPTY)
    try:
        posted = json.loads(raw)
    except ValueError:
        return Invalid(*INVALID_POST)
    if not isinstance(posted, list) or not all(isinstance(task, dict) for task in posted):
        return Invalid(*INVALID_POST)
    if not posted:
        return Invalid(*EMPTY)
    return posted


def parse_for_log(raw: bytes) -> Any:
    """The body as JSON if it is JSON, else as text (undecodable bytes replaced)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def without(raw: bytes, field: str) -> bytes:
    """The posted body with `field` dropped from its task, as a server ignoring it reads it."""
    posted = parse_for_log(raw)
    if isinstance(posted, list) and posted and isinstance(posted[0], dict):
        posted[0].pop(field, None)
        return json.dumps(posted).encode()
    return raw


def _invalid_field(name: str) -> Invalid:
    return Invalid(40501, f"Invalid Field: '{name}'.")


def _request_datetime(task: Mapping[str, Any], name: str) -> datetime | Invalid | None:
    """The field as an aware datetime, None if absent, Invalid unless `Y-m-d H:M:S +hh:mm`."""
    if name not in task:
        return None
    value = task[name]
    if not isinstance(value, str) or _REQUEST_DATETIME.fullmatch(value) is None:
        return _invalid_field(name)
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")
    except ValueError:  # the shape is right, the date is not (2024-02-30)
        return _invalid_field(name)


def _paging(task: Mapping[str, Any]) -> tuple[int, int] | Invalid:
    limit = task.get("limit", 1000)
    if type(limit) is not int or not 1 <= limit <= 1000:  # type(): a bool is no limit
        return _invalid_field("limit")
    offset = task.get("offset", 0)
    if type(offset) is not int or offset < 0:
        return _invalid_field("offset")
    return limit, offset


def _unknown_fields(task: Mapping[str, Any], allowed: frozenset[str]) -> Invalid | None:
    unknown = [name for name in task if name not in allowed]
    if unknown:
        return Invalid(40506, f"Unknown Fields in POST Data: {', '.join(unknown)}.")
    return None


def validate_id_list(task: Mapping[str, Any], now: datetime) -> IdListQuery | Invalid:
    """An id_list task as a query, or its first refusal in the order the checks below run."""
    unknown = _unknown_fields(task, ID_LIST_FIELDS)
    if unknown is not None:
        return unknown
    start = _request_datetime(task, "datetime_from")
    if not isinstance(start, datetime):
        return start or _invalid_field("datetime_from")  # required
    end = _request_datetime(task, "datetime_to")
    if not isinstance(end, datetime):
        return end or _invalid_field("datetime_to")  # required
    paging = _paging(task)
    if isinstance(paging, Invalid):
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
    if start < id_list_earliest(now, include_metadata=metadata):
        return _invalid_field("datetime_from")
    if start >= end:
        return _invalid_field("datetime_from")
    return IdListQuery(
        start=int(start.timestamp()),
        end=int(end.timestamp()),
        limit=paging[0],
        offset=paging[1],
        descending=sort == "desc",
        metadata=metadata,
    )


def validate_errors(task: Mapping[str, Any], now: datetime) -> ErrorsQuery | Invalid:
    """An errors task as a query, or its first refusal in the order the checks below run."""
    unknown = _unknown_fields(task, ERRORS_FIELDS)
    if unknown is not None:
        return unknown
    paging = _paging(task)
    if isinstance(paging, Invalid):
        return paging
    function = task.get("filtered_function")
    if "filtered_function" in task and not isinstance(function, str):
        return _invalid_field("filtered_function")
    start = _request_datetime(task, "datetime_from")
    if isinstance(start, Invalid):
        return start
    end = _request_datetime(task, "datetime_to")
    if isinstance(end, Invalid):
        return end
    if end is not None and end > now:
        return _invalid_field("datetime_to")
    if start is not None and start < errors_earliest(now):
        return _invalid_field("datetime_from")
    if start is not None and end is not None and start >= end:
        return _invalid_field("datetime_from")
    return ErrorsQuery(
        limit=paging[0],
        offset=paging[1],
        function=function,
        start=None if start is None else int(start.timestamp()),
        end=None if end is None else int(end.timestamp()),
    )
