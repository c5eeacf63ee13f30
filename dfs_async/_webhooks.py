"""Recovering lost webhooks, the pure part: checking ids, batching them, reading the replies.

Nothing here touches the network or the event loop; `_resend.py` drives it through the client.

Strategy (reading a ``webhook_resend`` reply): a call carries up to 100 task objects, and the
reply has one task per id sent, each with its own status. The envelope is read as for every
endpoint (`read_envelope`: the HTTP status, then the envelope's code, raising the usual errors,
so a 40202 or a 50000 there is retried like any other call). The tasks are then matched to the
ids sent. A task that reports one of our ids (in its ``id``, or in ``data.id``, the echo of what
was posted) is that id's. The documentation does not say which id a *refused* task carries (an
error task may get an id of its own), so the tasks that report none of our ids are given, in
order, to the ids that no task reported; the documentation's example keeps the order sent. A
reply that cannot account for every id exactly once (a task missing, one too many, an id
reported twice) is a `DecodeError` naming the field: an outcome is never guessed.

Strategy (the latest failure per task): ``errors`` lists one entry per failed delivery, newest
first, and a task appears once per attempt and kind. Entries are folded into one group per
task: the count, the newest entry, and how many entries share its datetime. Among entries of
equal datetime the "newest" is the greatest by all their fields, so the result does not depend
on the order the entries arrive in (pingback and postback come from two separate streams).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._errors import DecodeError, InvalidArgumentError, excerpt
from ._models import FailedWebhook, TaskError, WebhookResendOutcome
from ._protocol import read_envelope

__all__ = [
    "MAX_IDS",
    "WEBHOOK_KINDS",
    "WEBHOOK_RESEND_PATH",
    "FailureGroups",
    "batches",
    "check_task_ids",
    "encode_resend_body",
    "latest_failures",
    "read_outcomes",
    "webhook_functions",
]

WEBHOOK_RESEND_PATH = "/v3/appendix/webhook_resend"

#: Ids per ``webhook_resend`` call (the documentation's limit).
MAX_IDS = 100

#: ``kind=`` -> the ``errors`` functions under which the failed deliveries are listed.
WEBHOOK_KINDS: Mapping[str, tuple[str, ...]] = {
    "pingback": ("pingback_url",),
    "postback": ("postback_url",),
    "both": ("pingback_url", "postback_url"),
}

# DataForSEO task ids are UUID-shaped lowercase hex ("03271154-0001-0267-0000-0770a8d8e073"):
# the time, the account, the server, a flag and a random tail.
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EXAMPLE_ID = "03271154-0001-0267-0000-0770a8d8e073"


def check_task_ids(task_ids: object) -> list[str]:
    """The ids to resend, each once, in the order first given; InvalidArgumentError if bad."""
    if isinstance(task_ids, (str, bytes)) or not isinstance(task_ids, Iterable):
        raise InvalidArgumentError(
            "task_ids must be an iterable of task id strings (one id alone: [task_id]), "
            f"got {type(task_ids).__name__}"
        )
    unique: dict[str, None] = {}
    for index, value in enumerate(task_ids):
        if not isinstance(value, str) or _TASK_ID.fullmatch(value) is None:
            shown = repr(excerpt(value)) if isinstance(value, str) else type(value).__name__
            raise InvalidArgumentError(
                f"task_ids[{index}] is not a DataForSEO task id: {shown}; expected 36 "
                f"characters of lowercase hex in the form 8-4-4-4-12, such as {_EXAMPLE_ID}"
            )
        unique.setdefault(value, None)
    return list(unique)


def webhook_functions(kind: object) -> tuple[str, ...]:
    """The ``errors`` functions for ``kind=``; InvalidArgumentError for another value."""
    if not isinstance(kind, str) or kind not in WEBHOOK_KINDS:
        raise InvalidArgumentError(f"kind must be 'pingback', 'postback' or 'both', got {kind!r}")
    return WEBHOOK_KINDS[kind]


def batches(ids: Sequence[str], size: int = MAX_IDS) -> list[list[str]]:
    """`ids` cut into calls of at most `size`, in order; none for no ids."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def encode_resend_body(ids: Sequence[str]) -> bytes:
    """The POST body: one task object per id, as the endpoint asks."""
    return json.dumps([{"id": ident} for ident in ids], separators=(",", ":")).encode()


def _int_code(task: Mapping[str, Any]) -> int | None:
    code = task.get("status_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _reported_id(task: Mapping[str, Any], sent: Mapping[str, int]) -> str | None:
    """Which of the ids sent this task says it is about, if any."""
    ident = task.get("id")
    if isinstance(ident, str) and ident in sent:
        return ident
    data = task.get("data")
    if isinstance(data, dict):
        echoed = data.get("id")
        if isinstance(echoed, str) and echoed in sent:
            return echoed
    return None


def read_outcomes(
    *,
    endpoint: str,
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    sent: Sequence[str],
) -> list[WebhookResendOutcome]:
    """One outcome per id sent, in the order sent; raises what the envelope reports."""
    envelope, text = read_envelope(
        endpoint=endpoint, http_status=http_status, headers=headers, body=body
    )
    tasks = envelope.get("tasks")
    if not isinstance(tasks, list):
        raise DecodeError(
            f"expected a list of {len(sent)} tasks, one per id sent",
            endpoint=endpoint,
            path="$.tasks",
            raw=text,
        )
    if len(tasks) != len(sent):
        raise DecodeError(
            f"expected {len(sent)} tasks, one per id sent, got {len(tasks)}",
            endpoint=endpoint,
            path="$.tasks",
            raw=text,
        )
    position = {ident: index for index, ident in enumerate(sent)}
    owner: list[int | None] = []  # for each task, the index in `sent` of the id it reports
    claimed: dict[int, int] = {}  # index in `sent` -> index of the task reporting it
    for index, task in enumerate(tasks):
        where = f"$.tasks[{index}]"
        if not isinstance(task, dict):
            raise DecodeError("expected a task object", endpoint=endpoint, path=where, raw=text)
        if _int_code(task) is None:
            raise DecodeError(
                "the task has no integer status_code",
                endpoint=endpoint,
                path=f"{where}.status_code",
                raw=text,
            )
        reported = _reported_id(task, position)
        if reported is None:
            owner.append(None)
            continue
        if position[reported] in claimed:
            raise DecodeError(
                f"task id {reported} is reported by two tasks",
                endpoint=endpoint,
                path=f"{where}.id",
                raw=text,
            )
        claimed[position[reported]] = index
        owner.append(position[reported])
    # The tasks that report none of our ids go, in order, to the ids nobody reported; both
    # lists have the same length, since every task is one or the other.
    unclaimed = iter(index for index, who in enumerate(owner) if who is None)
    order = [claimed[k] if k in claimed else next(unclaimed) for k in range(len(sent))]
    outcomes = []
    for ident, index in zip(sent, order, strict=True):
        task = tasks[index]
        code = _int_code(task)
        assert code is not None  # checked above
        message = task.get("status_message")
        data = task.get("data")
        outcomes.append(
            WebhookResendOutcome(
                id=ident,
                status_code=code,
                status_message=message if isinstance(message, str) else "",
                data=data if isinstance(data, dict) else None,
            )
        )
    return outcomes


def _newness(entry: TaskError) -> tuple[Any, ...]:
    """Orders the entries of one task: by datetime, then by every field (a total order)."""
    return (
        entry.datetime,
        entry.function,
        entry.http_code,
        entry.http_url,
        entry.http_response,
        entry.http_method,
        entry.http_time,
        entry.error_code,
        entry.error_message,
    )


class FailureGroups:
    """Folds errors entries into one `FailedWebhook` per task, in memory per task, not entry."""

    def __init__(self) -> None:
        self._latest: dict[str, TaskError] = {}
        self._attempts: dict[str, int] = {}
        self._at_latest: dict[str, int] = {}

    def add(self, entry: TaskError) -> None:
        ident = entry.id
        self._attempts[ident] = self._attempts.get(ident, 0) + 1
        latest = self._latest.get(ident)
        if latest is None or entry.datetime > latest.datetime:
            self._latest[ident] = entry
            self._at_latest[ident] = 1
            return
        if entry.datetime == latest.datetime:
            self._at_latest[ident] += 1
            if _newness(entry) > _newness(latest):
                self._latest[ident] = entry

    def result(self) -> list[FailedWebhook]:
        """One per task, the most recent latest failure first (ties by id)."""
        failed = [
            FailedWebhook(
                id=ident,
                latest=latest,
                failed_attempts=self._attempts[ident],
                attempts_at_latest=self._at_latest[ident],
            )
            for ident, latest in self._latest.items()
        ]
        failed.sort(key=lambda item: item.id)
        failed.sort(key=lambda item: item.latest.datetime, reverse=True)
        return failed


def latest_failures(entries: Iterable[TaskError]) -> list[FailedWebhook]:
    """The errors entries grouped per task: its latest failure and how many there were."""
    groups = FailureGroups()
    for entry in entries:
        groups.add(entry)
    return groups.result()
