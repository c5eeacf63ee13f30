"""The records the endpoints yield, with the API's own field names and real types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["Page", "TaskError", "TaskId"]


@attrs.frozen(kw_only=True)
class TaskId:
    """One task from ``id_list``: a task the account ran, whatever its outcome."""

    id: str
    url: str
    datetime_posted: datetime
    #: ``None`` while the task has not completed (the endpoint lists uncompleted tasks too).
    datetime_done: datetime | None
    #: The API's informational text for the task; opaque, sources disagree on its form.
    status: str
    cost: float
    #: The task's parameters; present only when asked for with ``include_metadata=True``.
    metadata: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class TaskError:
    """One entry of ``errors``: a task that answered with an error.

    The same task `id` may appear in several entries (one per failed attempt), so an entry
    is identified by all its fields, not by `id`.
    """

    id: str
    datetime: datetime
    function: str
    error_code: int
    error_message: str
    http_url: str
    http_method: str
    http_code: int
    http_time: float
    http_response: str


R = TypeVar("R", TaskId, TaskError)


@attrs.frozen(kw_only=True)
class Page(Generic[R]):
    """One page of a stream, as :meth:`Pager.pages` yields it."""

    #: The records of this page not seen before, in the server's order.
    records: tuple[R, ...]
    #: The offset this page was asked at, and how many records were asked for.
    offset: int
    limit: int
    #: How many entries the server sent (including any dropped as overlap).
    received: int
    #: Records dropped because an earlier page already yielded them (offsets shifted).
    duplicates: int
    #: The task's own fields from the reply.
    task_id: str | None
    cost: float | None
    time: str | None
