"""The documents the emulator answers, as the API shapes them (pure, no aiohttp, no clock).

Every answer is an envelope (`version`, `status_code`, `status_message`, `time`, `cost`, the task
counts, `tasks`). A refusal at the envelope has `tasks` null (`envelope`); an answer to a task has
one task, whose `result` is null when the task is refused (`document`). The time the server
took is passed in as the `time` text (``0.0123 sec.``), and the task's id too, so the same
arguments always give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import attrs

from ._requests import Route

__all__ = [
    "VERSION",
    "Answer",
    "document",
    "encode",
    "encode_text",
    "envelope",
    "item",
    "phrase",
    "proxy_page",
    "refusal",
    "took",
]

VERSION: Final = "0.1.20240801"

#: The fields of an id_list item, in the API's order (``metadata`` follows when asked for).
ITEM_FIELDS: Final = ("id", "url", "datetime_posted", "datetime_done", "status", "cost")

# What the JSON of a document with `"result": null` as its last key ends with.
_RESULT_TAIL: Final = b"null}]}"

_PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@attrs.frozen
class Answer:
    """A normal answer: HTTP status, the envelope's DataForSEO code and the encoded body."""

    status: int
    code: int
    body: bytes


def took(seconds: float) -> str:
    """The `time` field: how long the server took, as the API writes it."""
    return f"{seconds:.4f} sec."


def encode_text(document: Any) -> str:
    """Compact JSON, non-ASCII kept as is, as the API sends it."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def encode(document: Any) -> bytes:
    """`encode_text`, as UTF-8 bytes."""
    return encode_text(document).encode()


def item(record: Mapping[str, Any], metadata: bool) -> dict[str, Any]:
    """An id_list item from a stored task: its fields in order, ``metadata`` only if asked."""
    result = {name: record.get(name) for name in ITEM_FIELDS}
    if metadata:
        result["metadata"] = record.get("metadata")
    return result


def envelope(code: int, message: str, time: str) -> bytes:
    """An envelope-level answer: this status, no tasks."""
    return encode(
        {
            "version": VERSION,
            "status_code": code,
            "status_message": message,
            "time": time,
            "cost": 0,
            "tasks_count": 0,
            "tasks_error": 0,
            "tasks": None,
        }
    )


def refusal(status: int, error: tuple[int, str], time: str) -> Answer:
    """An answer with this HTTP status and this status at the envelope, no tasks."""
    return Answer(status, error[0], envelope(*error, time))


def document(
    route: Route,
    sent: Mapping[str, Any],
    *,
    task_id: str,
    time: str,
    error: tuple[int, str] | None,
    items: Sequence[str] | None,
) -> bytes:
    """A one-task envelope echoing `sent` in ``data``; `items` are the result's entries, already
    JSON text (None, with `error`, for a refused task)."""
    api, function = route
    code, message = error or (20000, "Ok.")
    task = {
        "id": task_id,
        "status_code": code,
        "status_message": message,
        "time": time,
        "cost": 0,
        "result_count": 0 if items is None else len(items),
        "path": ["v3", api, function],
        "data": {"api": api, "function": function, **sent},
        "result": None,
    }
    encoded = encode(
        {
            "version": VERSION,
            "status_code": 20000,
            "status_message": "Ok.",
            "time": time,
            "cost": 0,
            "tasks_count": 1,
            "tasks_error": 0 if error is None else 1,
            "tasks": [task],
        }
    )
    if items is None:
        return encoded
    # "result" is the last key of the last task, so the encoded document ends with
    # `null}]}`: splice the pre-encoded items in there instead of encoding them again.
    return b"".join((encoded[: -len(_RESULT_TAIL)], b"[", ",".join(items).encode(), b"]}]}"))


def phrase(status: int) -> str:
    """The reason phrase of an HTTP status ("Error" for one Python does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def proxy_page(status: int) -> str:
    """The HTML error page an nginx in front of the API sends for this status."""
    return _PROXY_PAGE.format(status=status, phrase=phrase(status))
