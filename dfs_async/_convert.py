"""JSON values -> records, strictly typed, unknown fields tolerated.

Strategy: two decoders with one meaning. A page is first decoded by hand-written builders, one
per record type, that take only the plain shapes a JSON decoder produces (``str``, ``int``,
``float``, ``dict``, ``None``); that is nearly every page there is, and it runs at about the
cost of building the records themselves. Anything else -- a missing field, a wrong type, a bad
datetime, a ``str`` subclass -- makes a builder give up, and the whole page is decoded again by
a detailed cattrs converter, which is the reference: it decides whether the page is valid, and
its errors, through `cattrs.transform_error`, name the path
(``$.tasks[0].result[3].datetime_done: invalid value ...``). On decoded JSON the builders accept
exactly what the converter accepts and give the same records, so correct pages pay nothing for
the good error messages, and a page too unusual for the builders still decodes, only slower.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import cattrs

from ._models import TaskError, TaskId

__all__ = ["DecodeFailure", "format_datetime", "parse_datetime", "structure_records"]

T = TypeVar("T", TaskId, TaskError)

_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def parse_datetime(value: object) -> datetime:
    """Parse the API's ``YYYY-MM-DD HH:MM:SS +HH:MM`` (or offset-less, meaning UTC) to aware UTC."""
    # The two forms the API sends, tried first: " +00:00" and no offset, both UTC. Each becomes
    # "...+00:00", which fromisoformat reads straight to an aware UTC datetime; that is several
    # times cheaper than `.replace(tzinfo=UTC)`. Whatever fails here, or lands elsewhere than
    # UTC, takes the general path, which gives the same results and the error messages.
    if type(value) is str and value[10:11] == " ":
        if value[19:] == " +00:00":
            text = value[:19] + "+00:00"
        elif len(value) == 19:
            text = value + "+00:00"
        else:
            return _parse_datetime_general(value)
        try:
            parsed = _fromisoformat(text)
        except ValueError:
            return _parse_datetime_general(value)
        if parsed.tzinfo is _UTC:
            return parsed
    return _parse_datetime_general(value)


def _parse_datetime_general(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected a datetime string, got {type(value).__name__}")
    # "YYYY-MM-DD HH:MM:SS +HH:MM" is 26 characters, the offset-less form 19; fromisoformat
    # wants no blank before the offset (CPython's C parser tolerates one, the pure-Python
    # datetime does not). The shape is checked first: fromisoformat alone would also take a
    # bare date, a "T" or a "Z", which the API does not send.
    size = len(value)
    shaped = (
        (size == 19 or (size == 26 and value[19] == " " and value[20] in "+-" and value[23] == ":"))
        and value[4] == value[7] == "-"
        and value[10] == " "
        and value[13] == value[16] == ":"
    )
    try:
        if not shaped:
            raise ValueError(value)
        parsed = _fromisoformat(value[:19] + value[20:] if size == 26 else value)
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


# -- the fast builders ------------------------------------------------------------------------


class _NotPlain(Exception):
    """A value of another shape than the builders handle: the detailed converter decides."""


# Strategy: building a record through its attrs __init__ costs about half of decoding it: ten
# keyword arguments, then object.__setattr__ once per slot. For a frozen, slotted record with
# no validator, converter or init hook, that __init__ does nothing but set every slot, so the
# builders do exactly that themselves: object.__new__, then each slot's own descriptor (what
# object.__setattr__ ends up calling). `_slot_setters` refuses, at import, a record class for
# which this would skip anything, so a validator added to a record later cannot be bypassed.
def _slot_setters(cls: type[Any], names: Sequence[str]) -> tuple[Callable[[Any, Any], None], ...]:
    fields = attrs.fields(cls)
    slots = [cls.__dict__.get(name) for name in names]
    if (
        sorted(names) != sorted(field.name for field in fields)
        or any(field.validator is not None or field.converter is not None for field in fields)
        or hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
    ):
        raise TypeError(f"{cls.__name__} needs its __init__: the fast builders cannot make it")
    return tuple(slot.__set__ for slot in slots)  # type: ignore[union-attr]


_new = object.__new__
_TASK_ID_SLOTS = _slot_setters(
    TaskId, ("id", "url", "datetime_posted", "datetime_done", "status", "cost", "metadata")
)
_TASK_ERROR_SLOTS = _slot_setters(
    TaskError,
    (
        "id", "datetime", "function", "error_code", "error_message", "http_url", "http_method",
        "http_code", "http_time", "http_response",
    ),
)  # fmt: skip

# One C call fetches every field (a missing one raises KeyError, a non-dict item TypeError:
# either sends the page to the detailed converter, as _NotPlain does).
_TASK_ID_FIELDS = operator.itemgetter(
    "id", "url", "status", "cost", "datetime_posted", "datetime_done"
)
_TASK_ERROR_FIELDS = operator.itemgetter(
    "id", "function", "error_message", "http_url", "http_method", "http_response",
    "error_code", "http_code", "http_time", "datetime",
)  # fmt: skip


def _build_task_id(item: Any) -> TaskId:
    ident, url, status, cost, posted, done = _TASK_ID_FIELDS(item)
    metadata = item.get("metadata")
    if type(ident) is not str or type(url) is not str or type(status) is not str:
        raise _NotPlain
    if type(cost) is not float:
        if type(cost) is not int:
            raise _NotPlain
        cost = float(cost)
    # The converter would copy the metadata into a new dict, checking that its keys are
    # strings; decoded JSON has only string keys, and the dict is the decoder's alone, so the
    # record takes it over as it is.
    if metadata is not None and type(metadata) is not dict:
        raise _NotPlain
    record: TaskId = _new(TaskId)
    set_id, set_url, set_posted, set_done, set_status, set_cost, set_metadata = _TASK_ID_SLOTS
    set_id(record, ident)
    set_url(record, url)
    set_posted(record, parse_datetime(posted))
    set_done(record, None if done is None else parse_datetime(done))
    set_status(record, status)
    set_cost(record, cost)
    set_metadata(record, metadata)
    return record


def _build_task_error(item: Any) -> TaskError:
    (
        ident, function, error_message, http_url, http_method, http_response,
        error_code, http_code, http_time, moment,
    ) = _TASK_ERROR_FIELDS(item)  # fmt: skip
    if (
        type(ident) is not str
        or type(function) is not str
        or type(error_message) is not str
        or type(http_url) is not str
        or type(http_method) is not str
        or type(http_response) is not str
        or type(error_code) is not int
        or type(http_code) is not int
    ):
        raise _NotPlain
    if type(http_time) is not float:
        if type(http_time) is not int:
            raise _NotPlain
        http_time = float(http_time)
    record: TaskError = _new(TaskError)
    (
        set_id, set_datetime, set_function, set_error_code, set_error_message, set_http_url,
        set_http_method, set_http_code, set_http_time, set_http_response,
    ) = _TASK_ERROR_SLOTS  # fmt: skip
    set_id(record, ident)
    set_datetime(record, parse_datetime(moment))
    set_function(record, function)
    set_error_code(record, error_code)
    set_error_message(record, error_message)
    set_http_url(record, http_url)
    set_http_method(record, http_method)
    set_http_code(record, http_code)
    set_http_time(record, http_time)
    set_http_response(record, http_response)
    return record


_BUILDERS: dict[type[Any], Callable[[Any], Any]] = {
    TaskId: _build_task_id,
    TaskError: _build_task_error,
}


# -- the detailed converter -------------------------------------------------------------------


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


def _build_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True)
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


_DETAILED = _build_converter()


class DecodeFailure(Exception):
    """Internal: which item failed, and each problem in it with its path inside the item."""

    def __init__(self, index: int, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{message} @ {path}" for message, path in problems))
        self.index = index
        #: (message, path relative to the item: ``".datetime_done"``, or ``""`` for the item).
        self.problems = tuple(problems)


def structure_records(items: Sequence[Any], record_type: type[T]) -> list[T]:
    """Decode JSON objects to records, raising `DecodeFailure` for the first bad one."""
    build = _BUILDERS[record_type]
    try:
        return [build(item) for item in items]
    except Exception:  # noqa: S110 - any failure is decided again by the detailed converter
        pass
    records: list[T] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            # cattrs would try to read fields out of it and blame each field in turn.
            raise DecodeFailure(index, [(f"expected an object, got {type(item).__name__}", "")])
        try:
            records.append(_DETAILED.structure(item, record_type))
        except Exception as exc:  # cattrs raises ClassValidationError, and hooks their own
            messages = cattrs.transform_error(exc, path="", format_exception=_describe)
            # Each is "<message> @ <path>"; a message may quote a value holding " @ ".
            problems = [tuple(message.rsplit(" @ ", 1)) for message in messages]
            raise DecodeFailure(index, problems) from exc  # type: ignore[arg-type]
    # Only values of unusual shapes (a str subclass, a Mapping that is not a dict) get here.
    return records
