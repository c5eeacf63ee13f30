"""JSON values -> records, strictly typed, unknown fields tolerated: one cattrs decoder.

Strategy: records are decoded by cattrs, with structure functions generated once, at import
(`cattrs.gen.make_dict_structure_fn`), from a converter whose hooks are strict: a ``str`` field
takes exactly a ``str`` (no subclass), an ``int`` exactly an ``int`` (not a ``bool``), a
``float`` an ``int`` or a ``float`` (not a ``bool``), a datetime only the API's two forms, to
an aware UTC datetime. That converter runs without cattrs' detailed validation, so a correct
page (nearly every page there is) costs one generated function call per record and one hook
call per field. Only when it fails is the page decoded again with detailed validation, whose
errors, through `cattrs.transform_error`, name the path
(``$.tasks[0].result[3].datetime_done: invalid value ...``) and the hooks' own words. That
second pass is the reference: what it accepts, the first one accepts too or hands over to it
(a ``str`` subclass, a ``Mapping`` that is not a ``dict``, which no JSON decoder produces), so
the two give the same records and only a failing page pays for the detail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn

from ._models import TaskError, TaskId

__all__ = ["DecodeFailure", "format_datetime", "parse_datetime", "structure_records"]

T = TypeVar("T", TaskId, TaskError)

_UTC = timezone.utc
_fromisoformat = datetime.fromisoformat


def parse_datetime(value: object, _type: object = None) -> datetime:
    """Parse the API's ``YYYY-MM-DD HH:MM:SS +HH:MM`` (or offset-less, meaning UTC) to aware UTC.

    (`_type` is ignored: it makes this function a cattrs structure hook as it is, one call
    less per datetime on the normal path.)
    """
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


# -- the normal path: generated structure functions, strict hooks ------------------------------


class _NotPlain(TypeError):
    """A value the normal path does not take; the detailed pass decides and words the error."""


def _plain_str(value: Any, _: object) -> str:
    if type(value) is str:
        return value
    raise _NotPlain


def _plain_int(value: Any, _: object) -> int:
    if type(value) is int:
        return value
    raise _NotPlain


def _plain_float(value: Any, _: object) -> float:
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    raise _NotPlain


def _plain_optional_datetime(value: Any, _: object) -> datetime | None:
    return None if value is None else parse_datetime(value)


def _plain_metadata(value: Any, _: object) -> Mapping[str, Any] | None:
    # The detailed pass would copy the metadata into a new dict, checking that its keys are
    # strings; decoded JSON has only string keys, and the dict is the decoder's alone, so the
    # record takes it over as it is.
    if value is None or type(value) is dict:
        return value
    raise _NotPlain


def _build_plain() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    converter.register_structure_hook(str, _plain_str)
    converter.register_structure_hook(int, _plain_int)
    converter.register_structure_hook(float, _plain_float)
    converter.register_structure_hook(datetime, parse_datetime)
    # One hook for the whole optional type, not cattrs' None check around the datetime hook.
    converter.register_structure_hook(datetime | None, _plain_optional_datetime)
    converter.register_structure_hook(Mapping[str, Any] | None, _plain_metadata)
    return converter


_PLAIN = _build_plain()
#: The structure functions, generated once from the strict hooks above.
_STRUCTURE: dict[type[Any], Callable[[Any, Any], Any]] = {
    record_type: make_dict_structure_fn(record_type, _PLAIN) for record_type in (TaskId, TaskError)
}


# -- the detailed pass: the reference, and the words of an error ----------------------------------


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
    structure = _STRUCTURE[record_type]
    try:
        return [structure(item, record_type) for item in items]
    except Exception:  # noqa: S110 - any failure is decided again, in detail, below
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
