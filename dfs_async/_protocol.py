"""Sans-I/O protocol: request bytes out, ``(status, headers, body)`` in, records or an exception.

Nothing here touches the network or the event loop, so every rule about the wire format and
about what an answer means is testable from recorded replies.

A reply is read in the order the API reports trouble: the HTTP status first, then the
envelope's ``status_code``, then the task's (these endpoints take exactly one task a call).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

import attrs

from ._convert import DecodeFailure, structure_records
from ._errors import (
    APIError,
    AuthenticationError,
    DataForSEOError,
    DecodeError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    TransportError,
    excerpt,
)
from ._json import NotJSON, Parser, default_parser
from ._models import TaskError, TaskId

__all__ = [
    "OK",
    "RawPage",
    "Reply",
    "decode_page",
    "encode_body",
    "parse_reply",
    "read_envelope",
    "read_reply",
]

R = TypeVar("R", TaskId, TaskError)

OK = 20000

# DataForSEO's codes grouped by how a client reacts (facts.md). Codes outside these sets are
# classed by their range below: 5xxxx transient, 401xx/402xx account, other 4xxxx invalid.
_RATE_LIMITED = frozenset({40202, 40209})
_TRANSIENT = frozenset({50000, 50001, 50301, 50302, 50303, 50304, 50401, 50402, 40101, 40103})
_ACCOUNT = frozenset({40100, 40200, 40201, 40203, 40204, 40207})


def encode_body(task: Mapping[str, Any]) -> bytes:
    """The POST body: a JSON array holding the one task these endpoints accept."""
    return json.dumps([task], separators=(",", ":")).encode()


@attrs.frozen(kw_only=True)
class Reply(Generic[R]):
    """A successful page as the server sent it."""

    records: list[R]
    #: Entries in ``result``, null ones included: this is what the paging rule counts.
    received: int
    #: ``null`` entries in ``result``: counted for paging, never yielded.
    nulls: int
    #: Where each record stood in ``result`` when there were nulls (else ``None``: in order).
    positions: list[int] | None
    task_id: str | None
    cost: float | None
    time: str | None


def _error_class(code: int) -> type[APIError]:
    if code in _RATE_LIMITED:
        return RateLimitedError
    if code in _TRANSIENT or 50000 <= code < 60000:
        return ServerError
    if code in _ACCOUNT or 40100 <= code < 40300:
        return AuthenticationError
    if 40000 <= code < 50000:
        return InvalidRequestError
    return APIError


def api_error(code: int | None, message: str, *, http_status: int, endpoint: str) -> APIError:
    """The exception for an error reply: by the HTTP status when it is not 200, else the code."""
    if http_status == 200 and code is not None:
        cls = _error_class(code)
    elif http_status in (401, 402):
        cls = AuthenticationError
    elif http_status == 429:
        cls = RateLimitedError
    elif http_status >= 500:
        cls = ServerError
    else:
        cls = InvalidRequestError
    return cls(status_code=code, status_message=message, http_status=http_status, endpoint=endpoint)


def _own_code(code: int | None) -> int | None:
    """A DataForSEO error code (5 digits, 10000-60000), not a gateway's echo of the status."""
    return code if code is not None and 10000 <= code <= 60000 and code != OK else None


def _status(obj: Mapping[str, Any]) -> tuple[int | None, str]:
    code = obj.get("status_code")
    message = obj.get("status_message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else "",
    )


def parse_reply(
    *,
    endpoint: str,
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    record_type: type[R],
    parser: Parser = default_parser,
) -> Reply[R]:
    """Turn one HTTP reply into a page of records, or raise the error it reports."""
    raw = read_reply(
        endpoint=endpoint, http_status=http_status, headers=headers, body=body, parser=parser
    )
    return decode_page(raw, record_type)


@attrs.frozen(kw_only=True)
class RawPage:
    """An Ok reply, checked down to its ``result`` list, whose records are not built yet."""

    endpoint: str
    task: Mapping[str, Any]
    #: The ``result`` list (null read as empty).
    result: list[Any]
    #: The body as text, for errors.
    text: str

    @property
    def received(self) -> int:
        """Entries in ``result``, nulls included: what the paging rule counts."""
        return len(self.result)


def read_envelope(
    *,
    endpoint: str,
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    parser: Parser = default_parser,
) -> tuple[dict[str, Any], str]:
    """Check the HTTP status and the envelope's ``status_code``; the envelope and the body's text.

    Every endpoint's reply is read this far the same way; what follows depends on how many
    tasks the call carried (one here, up to 100 for ``webhook_resend``). `parser` reads the
    JSON (`dfs_async._json.PARSERS`: orjson or the stdlib, with the same results).
    """
    problem = "it is not UTF-8"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        envelope = None  # a body that is not UTF-8 is not the API's JSON
    else:
        try:
            envelope = parser(body, text)
        except NotJSON as exc:
            envelope, problem = None, str(exc)
    if http_status != 200:
        code, message = _status(envelope) if isinstance(envelope, dict) else (None, "")
        raise api_error(
            _own_code(code),
            message or f"HTTP {http_status}: {excerpt(text)!r}",
            http_status=http_status,
            endpoint=endpoint,
        )
    if not isinstance(envelope, dict):
        what = (
            "a JSON body that is not an object"
            if envelope is not None
            else f"a body that is not JSON ({problem})"
        )
        raise MalformedResponseError(
            f"expected a JSON envelope, got {what}",
            endpoint=endpoint,
            http_status=http_status,
            raw=text,
        )
    code, message = _status(envelope)
    if code is None:
        raise DecodeError(
            "the envelope has no integer status_code",
            endpoint=endpoint,
            path="$.status_code",
            raw=text,
        )
    if code != OK:
        raise api_error(code, message, http_status=http_status, endpoint=endpoint)
    return envelope, text


def read_reply(
    *,
    endpoint: str,
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    parser: Parser = default_parser,
) -> RawPage:
    """Check one HTTP reply down to its ``result`` list, or raise the error it reports.

    Building the records is a separate step (`decode_page`), so that the pager can send the
    next request, whose offset needs only the page's length, before it builds them.
    """
    envelope, text = read_envelope(
        endpoint=endpoint, http_status=http_status, headers=headers, body=body, parser=parser
    )
    tasks = envelope.get("tasks")
    if not isinstance(tasks, list) or not tasks or not isinstance(tasks[0], dict):
        raise DecodeError(
            "expected one task in the envelope", endpoint=endpoint, path="$.tasks", raw=text
        )
    task = tasks[0]
    task_code, task_message = _status(task)
    if task_code is None:
        raise DecodeError(
            "the task has no integer status_code",
            endpoint=endpoint,
            path="$.tasks[0].status_code",
            raw=text,
        )
    if task_code != OK:
        raise api_error(task_code, task_message, http_status=http_status, endpoint=endpoint)
    result = task.get("result")
    if result is None:  # an Ok task with nothing to report
        result = []
    if not isinstance(result, list):
        raise DecodeError(
            "expected a list or null", endpoint=endpoint, path="$.tasks[0].result", raw=text
        )
    return RawPage(endpoint=endpoint, task=task, result=result, text=text)


def decode_page(raw: RawPage, record_type: type[R]) -> Reply[R]:
    """Build the records of a checked reply; a record that does not decode is a DecodeError."""
    task, result, endpoint, text = raw.task, raw.result, raw.endpoint, raw.text
    items = [item for item in result if item is not None]
    try:
        records = structure_records(items, record_type)
    except DecodeFailure as failure:
        index = _original_index(result, failure.index)
        where = f"$.tasks[0].result[{index}]"
        detail = "; ".join(f"{message} @ {where}{path}" for message, path in failure.problems)
        raise DecodeError(
            f"cannot decode {record_type.__name__}: {detail}; item: {_preview(result[index])}",
            endpoint=endpoint,
            path=where + failure.problems[0][1],
            raw=text,
        ) from failure
    task_id = task.get("id")
    cost = task.get("cost")
    time = task.get("time")
    return Reply(
        records=records,
        received=len(result),
        nulls=len(result) - len(items),
        positions=[i for i, item in enumerate(result) if item is not None]
        if len(items) < len(result)
        else None,
        task_id=task_id if isinstance(task_id, str) else None,
        cost=float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        time=time if isinstance(time, str) else None,
    )


def _preview(value: Any) -> str:
    """A few hundred characters of `value` as JSON text, built only that far, at any depth."""
    parts: list[str] = []
    size = 0
    for token in _json_tokens(value):
        parts.append(token)
        size += len(token)
        if size > _PREVIEW:
            break
    return excerpt("".join(parts))


_PREVIEW = 200


def _json_tokens(value: Any) -> Iterator[str]:
    """`json.dumps(value)` piece by piece, with the open containers on a list, not the stack."""
    # Each open container: what is left of it, whether it is an object, its closing bracket,
    # and whether its next item is its first.
    frames: list[tuple[Iterator[Any], bool, str, list[bool]]] = [
        (iter((value,)), False, "", [True])
    ]
    while frames:
        items, is_object, closing, first = frames[-1]
        item: Any = next(items, _END)
        if item is _END:
            frames.pop()
            yield closing
            continue
        if not first[0]:
            yield ", "
        first[0] = False
        if is_object:
            key, item = item
            yield json.dumps(key) + ": "
        if isinstance(item, Mapping):
            yield "{"
            frames.append((iter(item.items()), True, "}", [True]))
        elif isinstance(item, list):
            yield "["
            frames.append((iter(item), False, "]", [True]))
        else:
            yield json.dumps(item)


_END = object()


def _original_index(result: list[Any], index: int) -> int:
    """The position in `result` of the `index`-th non-null entry."""
    seen = -1
    for position, item in enumerate(result):
        if item is not None:
            seen += 1
            if seen == index:
                return position
    raise AssertionError("index out of range")


def describe(exc: DataForSEOError) -> str:
    """A short reason for logs: the class and the code, never a body or a header."""
    if isinstance(exc, TransportError) and not isinstance(exc, MalformedResponseError):
        # Its text names the failure and the host, never a header: "ServerDisconnectedError: ...".
        # (A malformed reply's text quotes the body: it is told by its class and status.)
        return f"{type(exc).__name__}: {exc}"
    code = getattr(exc, "status_code", None)
    http = getattr(exc, "http_status", None)
    parts = [type(exc).__name__]
    if code is not None:
        parts.append(str(code))
    if http is not None and http != 200:
        parts.append(f"HTTP {http}")
    return " ".join(parts)
