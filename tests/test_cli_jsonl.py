"""JSON Lines output: orjson (the `speed` extra) writes exactly the bytes the stdlib path writes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from enum import IntEnum

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.cli import page_of_task_ids
from dfs_async import TaskError, TaskId
from dfs_async.cli import writers
from dfs_async.cli.resend_rules import ResendRow
from dfs_async.cli.writers import jsonl_bytes, jsonl_lines

pytest.importorskip("orjson")

UTC = timezone.utc

# Every code point, lone surrogates too (orjson refuses them; the stdlib path then fails as it
# does without orjson), the line breaks the writer escapes, and what looks like a boundary
# between two rows of the page (the fast path splits one array at },{"id":).
texts = st.lists(
    st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.sampled_from(["\u2028", "\u2029", "\x85", "\n", '"', "\\", "\x00", "\x7f"]),
        st.sampled_from(["},{", '},{"id":', '"},{"id":"', "{", "}", ":"]),
    ),
    max_size=8,
).map("".join)
# The decoder gives UTC; a record built by hand may hold any zone, none, or an offset of
# seconds (which orjson would cut to minutes).
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
zones: st.SearchStrategy[tzinfo] = st.one_of(st.just(UTC), offsets.map(timezone))
earliest, latest = datetime(1, 1, 1), datetime(9999, 1, 1)
moments = st.one_of(st.datetimes(earliest, latest, timezones=zones), st.datetimes(earliest, latest))


class Code(IntEnum):
    NOT_FOUND = 40400


# An int field may hold a bool or an int subclass (an IntEnum) in a record built by hand.
whole = st.one_of(st.integers(), st.booleans(), st.just(Code.NOT_FOUND))
floats = st.one_of(
    st.floats(),  # NaN, infinities, subnormals, every magnitude
    st.sampled_from([0.0, -0.0, 1e-5, 9.99e-5, 1e-4, 0.0006, 1e15, 1e16, 12345.678]),
)
integers = st.one_of(
    whole,
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2),
)
metadata = st.one_of(
    st.none(), st.dictionaries(st.text(max_size=5), st.one_of(texts, floats, integers), max_size=3)
)
task_ids = st.builds(
    TaskId,
    id=texts,
    url=texts,
    datetime_posted=moments,
    datetime_done=st.one_of(st.none(), moments),
    status=texts,
    cost=floats,
    metadata=metadata,
)
task_errors = st.builds(
    TaskError,
    id=texts,
    datetime=moments,
    function=texts,
    error_code=integers,
    error_message=texts,
    http_url=texts,
    http_method=texts,
    http_code=integers,
    http_time=floats,
    http_response=texts,
)
resend_rows = st.builds(
    ResendRow,
    id=texts,
    outcome=st.sampled_from(["resent", "refused", "would resend"]),
    status_code=st.one_of(st.none(), integers),
    status_message=st.one_of(st.none(), texts),
    function=texts,
    datetime=moments,
    http_url=texts,
    http_code=integers,
    http_response=texts,
    failed_attempts=integers,
)


@attrs.frozen
class Single:
    """A record of one field: its values are read as a 1-tuple too."""

    id: str


Records = list[TaskId] | list[TaskError] | list[ResendRow] | list[Single]


def stdlib_bytes(records: Records) -> bytes | type[Exception]:
    try:
        return jsonl_lines(records).encode("utf-8")
    except UnicodeEncodeError:
        return UnicodeEncodeError


def written(records: Records) -> bytes | type[Exception]:
    try:
        return jsonl_bytes(records)
    except UnicodeEncodeError:
        return UnicodeEncodeError


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.lists(task_ids, max_size=6),
        st.lists(task_errors, max_size=6),
        st.lists(resend_rows, max_size=6),
        st.lists(st.builds(Single, id=texts), max_size=6),
    )
)
def test_orjson_writes_the_stdlib_bytes(records: Records) -> None:
    """Any records, any text, float or integer: the same bytes (or the same failure) either way."""
    assert written(records) == stdlib_bytes(records)


def test_a_usual_page_takes_the_orjson_path() -> None:
    """Records as the API sends them are encoded by orjson, not handed back to the stdlib."""
    page = page_of_task_ids()
    fast = writers._orjson_lines(page)
    assert fast is not None
    assert fast == jsonl_lines(page).encode("utf-8")
    assert fast.count(b"\n") == 1000


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        (0.0006, True),
        (0.0, True),
        (1e15, True),
        (1e-5, False),
        (1e16, False),
        (float("nan"), False),
    ],
)
def test_floats_orjson_spells_otherwise_go_the_stdlib_way(value: float, fast: bool) -> None:
    """orjson writes 1e-5 as 1e-5 where json writes 1e-05: such a page is the stdlib's."""
    record = TaskId(
        id="a",
        url="u",
        datetime_posted=datetime(2026, 11, 1, tzinfo=UTC),
        datetime_done=None,
        status="Ok.",
        cost=value,
    )
    assert (writers._orjson_lines([record]) is not None) is fast
    assert jsonl_bytes([record]) == jsonl_lines([record]).encode("utf-8")


def test_a_record_of_one_field_is_written_whole() -> None:
    """A one-field record's value is the whole string, not its first character."""
    records = [Single(id="abc"), Single(id="def")]
    assert jsonl_bytes(records) == b'{"id":"abc"}\n{"id":"def"}\n'


@pytest.mark.parametrize(
    ("offset", "fast"),
    [
        (timedelta(0), True),
        (timedelta(hours=5, minutes=30), True),
        (timedelta(hours=-3), True),
        (timedelta(hours=5, minutes=30, seconds=15), False),
        (timedelta(seconds=1, microseconds=5), False),
    ],
)
def test_an_offset_orjson_would_cut_goes_the_stdlib_way(offset: timedelta, fast: bool) -> None:
    """isoformat writes +05:30:15 where orjson writes +05:30: such a page is the stdlib's."""
    moment = datetime(2026, 11, 1, 12, 0, 0, 250, tzinfo=timezone(offset))
    record = TaskId(
        id="a",
        url="u",
        datetime_posted=moment,
        datetime_done=moment,
        status="Ok.",
        cost=0.5,
    )
    assert (writers._orjson_lines([record]) is not None) is fast
    assert jsonl_bytes([record]) == jsonl_lines([record]).encode("utf-8")


def test_a_long_page_of_boundary_lookalikes_keeps_one_record_a_line() -> None:
    """5000 records whose every text looks like the row boundary: 5000 lines, the same bytes."""
    lookalike = '"},{"id":"'
    page = [
        TaskId(
            id=lookalike * 3,
            url=lookalike,
            datetime_posted=datetime(2026, 11, 1, tzinfo=UTC),
            datetime_done=None,
            status="},{",
            cost=0.02,
        )
        for _ in range(5000)
    ]
    fast = writers._orjson_lines(page)
    assert fast is not None
    assert fast == jsonl_lines(page).encode("utf-8")
    assert fast.count(b"\n") == 5000


def test_an_empty_page_writes_nothing() -> None:
    """No records, no bytes, on either path."""
    assert jsonl_bytes([]) == b"" == jsonl_lines([]).encode("utf-8")


@attrs.frozen
class Nested:
    """A record whose field's annotation names no float, Mapping or Any, yet holds objects."""

    id: str
    rows: list[dict[str, str]]


#: A record of fields without annotations (field.type is None).
Untyped = attrs.make_class("Untyped", ["id", "rows"], frozen=True)


@pytest.mark.parametrize(
    "record",
    [
        Nested(id="r", rows=[{"id": "a"}, {"id": "b"}]),
        Untyped(id="r", rows=[{"id": "a"}, {"id": "b"}]),
    ],
)
def test_objects_inside_a_field_of_any_annotation_stay_on_the_records_line(
    record: attrs.AttrsInstance,
) -> None:
    """},{"id": inside a nested value is not a row boundary: one line, the stdlib's bytes."""
    assert jsonl_bytes([record, record]) == jsonl_lines([record, record]).encode("utf-8")
