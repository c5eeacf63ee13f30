"""JSON Lines output: orjson (the `speed` extra) writes exactly the bytes the stdlib path writes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.cli import page_of_task_ids
from dfs_async import TaskError, TaskId
from dfs_async.cli import writers
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
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
floats = st.one_of(
    st.floats(),  # NaN, infinities, subnormals, every magnitude
    st.sampled_from([0.0, -0.0, 1e-5, 9.99e-5, 1e-4, 0.0006, 1e15, 1e16, 12345.678]),
)
integers = st.one_of(st.integers(), st.integers(min_value=2**63 - 2, max_value=2**64 + 2))
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


def stdlib_bytes(records: list[TaskId] | list[TaskError]) -> bytes | type[Exception]:
    try:
        return jsonl_lines(records).encode("utf-8")
    except UnicodeEncodeError:
        return UnicodeEncodeError


def written(records: list[TaskId] | list[TaskError]) -> bytes | type[Exception]:
    try:
        return jsonl_bytes(records)
    except UnicodeEncodeError:
        return UnicodeEncodeError


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(task_ids, max_size=6), st.lists(task_errors, max_size=6)))
def test_orjson_writes_the_stdlib_bytes(records: list[TaskId] | list[TaskError]) -> None:
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
