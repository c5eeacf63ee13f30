"""The one decoder: cattrs' generated structure functions on the normal path, the same verdicts
and records as its detailed pass, which words the errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dfs_async
from dfs_async import _convert
from dfs_async._convert import DecodeFailure, structure_records

UTC = timezone.utc

#: JSON values of every kind, including the API's datetimes in the forms it may send.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(
        [
            "2026-11-01 12:34:56 +00:00",
            "2026-11-01 12:34:56",
            "2026-11-01 12:34:56 +02:00",
            "2026-11-01 12:34:56 -05:30",
            "2026-11-01T12:34:56+00:00",
            "2026-11-01",
            "2026-13-01 00:00:00 +00:00",
        ]
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)

GOOD: dict[type[Any], dict[str, Any]] = {
    dfs_async.TaskId: {
        "id": "11011200-1535-0216-0000-3d4a57a0c1a8",
        "url": "https://api.dataforseo.com/v3/backlinks/summary/live",
        "datetime_posted": "2026-11-01 12:34:56 +00:00",
        "datetime_done": None,
        "status": "Ok.",
        "cost": 0.02,
        "metadata": {"target": "example.com"},
    },
    dfs_async.TaskError: {
        "id": "11011200-1535-0216-0000-3d4a57a0c1a8",
        "datetime": "2026-11-01 12:34:56 +00:00",
        "function": "backlinks/live",
        "error_code": 40501,
        "error_message": "Invalid Field: 'target'.",
        "http_url": "https://api.dataforseo.com/v3/backlinks/summary/live",
        "http_method": "POST",
        "http_code": 200,
        "http_time": 0.1,
        "http_response": "{}",
    },
}


def detailed(item: Any, record_type: type[Any]) -> Any:
    """The reference verdict: the detailed converter's record, or the exception it raises."""
    try:
        return _convert._DETAILED.structure(item, record_type)
    except Exception as exc:
        return exc


def plain(item: Any, record_type: type[Any]) -> Any:
    """The normal path's verdict."""
    try:
        return _convert._STRUCTURE[record_type](item, record_type)
    except Exception as exc:
        return exc


@settings(max_examples=600, deadline=None)
@given(
    record_type=st.sampled_from([dfs_async.TaskId, dfs_async.TaskError]),
    data=st.data(),
)
def test_property_the_normal_path_agrees_with_the_detailed_pass(
    record_type: type[Any], data: st.DataObject
) -> None:
    """On decoded JSON, any mix of good, mistyped and missing fields: the same records, or both
    refuse. A record's values have the types its fields declare (a float, never an int)."""
    item = dict(GOOD[record_type])
    for name in data.draw(st.sets(st.sampled_from(sorted(item)), max_size=3)):
        if data.draw(st.booleans()):
            item[name] = data.draw(VALUES)
        else:
            del item[name]
    item = json.loads(json.dumps(item))  # exactly what a JSON decoder gives
    reference, ours = detailed(item, record_type), plain(item, record_type)
    if isinstance(reference, Exception):
        assert isinstance(ours, Exception)
        return
    assert ours == reference
    for field in attrs.fields(record_type):
        assert type(getattr(ours, field.name)) is type(getattr(reference, field.name))
    assert structure_records([item], record_type) == [reference]


def test_the_normal_path_is_cattrs_generated_code() -> None:
    """The structure functions come from cattrs.gen, one per record type, made at import."""
    assert {kind: fn.__name__ for kind, fn in _convert._STRUCTURE.items()} == {
        dfs_async.TaskId: "structure_TaskId",
        dfs_async.TaskError: "structure_TaskError",
    }
    assert not hasattr(_convert, "_slot_setters")


def test_a_record_is_built_by_its_own_init() -> None:
    """A decoded record is the one its attrs __init__ makes from the same values."""
    record = structure_records([GOOD[dfs_async.TaskId]], dfs_async.TaskId)[0]
    expected = dfs_async.TaskId(
        id="11011200-1535-0216-0000-3d4a57a0c1a8",
        url="https://api.dataforseo.com/v3/backlinks/summary/live",
        datetime_posted=datetime(2026, 11, 1, 12, 34, 56, tzinfo=UTC),
        datetime_done=None,
        status="Ok.",
        cost=0.02,
        metadata={"target": "example.com"},
    )
    assert record == expected
    assert record.datetime_posted.tzinfo is UTC


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("error_code", True, "expected an integer, got bool"),
        ("http_code", 200.0, "expected an integer, got float"),
        ("http_time", False, "expected a number, got bool"),
        ("function", 7, "expected a string, got int"),
        (
            "datetime",
            "2026-11-01T12:34:56Z",
            "not a datetime in the form 'YYYY-MM-DD HH:MM:SS +00:00': '2026-11-01T12:34:56Z'",
        ),
    ],
)
def test_strict_hooks_refuse_with_their_own_words(field: str, value: Any, message: str) -> None:
    """No bool as a number, no float as an int, no coercion to str, only the API's datetimes."""
    item = {**GOOD[dfs_async.TaskError], field: value}
    with pytest.raises(DecodeFailure) as info:
        structure_records([GOOD[dfs_async.TaskError], item], dfs_async.TaskError)
    assert info.value.index == 1
    assert info.value.problems == ((message, f".{field}"),)


def test_a_str_subclass_is_left_to_the_detailed_pass() -> None:
    """A str subclass (which no JSON decoder makes) is not taken by the normal path."""

    class Text(str):
        pass

    item = {**GOOD[dfs_async.TaskError], "function": Text("backlinks/live")}
    assert isinstance(plain(item, dfs_async.TaskError), Exception)
    record = structure_records([item], dfs_async.TaskError)[0]
    assert record == structure_records([GOOD[dfs_async.TaskError]], dfs_async.TaskError)[0]


def test_an_offset_datetime_becomes_utc() -> None:
    """A datetime with another offset is the same instant in UTC, an aware datetime."""
    item = {**GOOD[dfs_async.TaskError], "datetime": "2026-11-01 12:34:56 +02:00"}
    record = structure_records([item], dfs_async.TaskError)[0]
    assert record.datetime == datetime(2026, 11, 1, 10, 34, 56, tzinfo=UTC)
    assert record.datetime.tzinfo is UTC


@pytest.mark.parametrize("metadata", [{"a": [1]}, None, "absent"])
def test_metadata_given_null_or_absent(metadata: Any) -> None:
    """An entry's metadata is kept as sent, None when null or absent; no other field moves."""
    item = dict(GOOD[dfs_async.TaskId])
    if metadata == "absent":
        del item["metadata"]
    else:
        item["metadata"] = metadata
    record = structure_records([item], dfs_async.TaskId)[0]
    assert record.metadata == (None if metadata == "absent" else metadata)
    assert record == detailed(item, dfs_async.TaskId)
