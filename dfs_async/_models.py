"""The records the endpoints yield, with the API's own field names and real types."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

__all__ = ["FailedWebhook", "Page", "TaskError", "TaskId", "WebhookResendOutcome"]


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


@attrs.frozen(kw_only=True)
class WebhookResendOutcome:
    """What ``webhook_resend`` did with one task id: resent, or refused with the API's reason."""

    #: The task id as sent.
    id: str
    #: The task-level code: ``20100`` ("Task Created.") when resent, else the refusal's code.
    status_code: int
    status_message: str
    #: The original task's parameters as the reply echoes them (``api``, ``function``, the
    #: webhook URL, ...); ``None`` when the reply has none.
    data: Mapping[str, Any] | None = None

    @property
    def resent(self) -> bool:
        """Whether the API took the resend (any ``2xxxx`` code); otherwise it was refused."""
        return 20000 <= self.status_code < 30000


@attrs.frozen(kw_only=True)
class FailedWebhook:
    """A task whose webhook delivery failed: its latest failure and how many failures there were.

    ``errors`` lists one entry per failed attempt, so a task appears there once per attempt
    (and under both ``pingback_url`` and ``postback_url`` if both failed); this is one per task.
    """

    id: str
    #: The newest failed delivery (``function`` is ``"pingback_url"`` or ``"postback_url"``).
    latest: TaskError
    #: Failed attempts of this task in the window asked for.
    failed_attempts: int
    #: Of those, how many share the latest one's ``datetime`` (1 unless two came within a
    #: second): with the datetime it tells a newer failure from the one already seen.
    attempts_at_latest: int
