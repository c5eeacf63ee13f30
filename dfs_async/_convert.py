"""The one cattrs converter: JSON values -> records, strictly typed, unknown fields tolerated.

Strategy: decoding runs on a converter built without detailed validation, which is the fast
path for the common case of a well-formed page. Only when that fails is the same item decoded
again with a detailed converter, whose error `cattrs.transform_error` turns into a readable path
(``$.tasks[0].result[3].datetime_done: invalid value ...``). Correct pages pay nothing for the
good error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import cattrs

from ._models import TaskError, TaskId

__all__ = ["DecodeFailure", "format_datetime", "parse_datetime", "structure_records"]

T = TypeVar("T", TaskId, TaskError)

_UTC = timezone.utc


def parse_datetime(value: object) -> datetime:
    """Parse the API's ``YYYY-MM-DD HH:MM:SS +HH:MM`` (or offset-less, meaning UTC) to aware UTC."""
    if not isinstance(value, str):
        raise TypeError(f"expected a datetime string, got {type(value).__name__}")
    # The documented forms are 19 characters (no offset) or 25 with " +HH:MM"; fromisoformat
    # reads both once the blank before the offset is gone, and is far faster than strptime.
    text = value[:19] + value[20:] if len(value) == 25 and value[19] == " " else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a datetime in the form 'YYYY-MM-DD HH:MM:SS +00:00': {value!r}"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    if parsed.utcoffset():
        return parsed.astimezone(_UTC)
    return parsed if parsed.tzinfo is _UTC else parsed.replace(tzinfo=_UTC)


def format_datetime(value: datetime) -> str:
    """The API's request form of an aware datetime: ``YYYY-MM-DD HH:MM:SS +00:00`` in UTC."""
    return value.astimezone(_UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


# Strict scalars: cattrs' defaults call int()/float()/str(), which would turn "12" into 12 or
# 1.7 into 1 and hide a server that changed a type. A mistyped field must fail instead.
def _strict_str(value: object, _: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _strict_int(value: object, _: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _strict_float(value: object, _: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _datetime_hook(value: object, _: object) -> datetime:
    return parse_datetime(value)


def _build(*, detailed: bool) -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=detailed)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(datetime, _datetime_hook)
    return converter


def _describe(exc: BaseException, type_: Any) -> str:
    # Our hooks' own messages say what was expected and what came; keep them.
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


_FAST = _build(detailed=False)
_DETAILED = _build(detailed=True)
_HOOKS: dict[type[Any], Callable[[Any, Any], Any]] = {
    cls: _FAST.get_structure_hook(cls) for cls in (TaskId, TaskError)
}


class DecodeFailure(Exception):
    """Internal: which item failed and cattrs' readable path within it."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(detail)
        self.index = index
        self.detail = detail


def structure_records(items: Sequence[Any], record_type: type[T]) -> list[T]:
    """Decode JSON objects to records, raising `DecodeFailure` for the first bad one."""
    hook = _HOOKS[record_type]
    try:
        return [hook(item, record_type) for item in items]
    except Exception:  # noqa: S110 - any failure is diagnosed again by the detailed converter
        pass
    for index, item in enumerate(items):
        try:
            _DETAILED.structure(item, record_type)
        except Exception as exc:  # cattrs raises ClassValidationError, and hooks their own
            messages = cattrs.transform_error(exc, path="", format_exception=_describe)
            raise DecodeFailure(index, "; ".join(messages)) from exc
    raise AssertionError("the fast converter failed where the detailed one succeeded")
