"""The emulator's request rules, as pure functions: routes, auth, bodies, each task refusal."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfs_async._calendar import months_before
from dfs_async.testing._requests import (
    ErrorsQuery,
    IdListQuery,
    Invalid,
    authorized,
    read_tasks,
    route,
    validate_errors,
    validate_id_list,
    without,
)

UTC = timezone.utc
NOW = datetime(2024, 8, 31, 12, 0, 0, tzinfo=UTC)
CREDENTIALS = b"login:s3cret"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def basic(text: bytes) -> str:
    return "Basic " + base64.b64encode(text).decode()


def window(**changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "datetime_from": stamp(NOW - timedelta(days=30)),
        "datetime_to": stamp(NOW),
    }
    task.update(changes)
    return {name: value for name, value in task.items() if value is not None}


def field(name: str) -> Invalid:
    return Invalid(40501, f"Invalid Field: '{name}'.")


# -- routes and auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v3/backlinks/id_list", ("backlinks", "id_list")),
        ("POST", "/v3/serp/errors", ("serp", "errors")),
        ("POST", "/v3/content_analysis/id_list", ("content_analysis", "id_list")),
        ("POST", "/v3/content_analysis/errors", None),  # the one API without errors
        ("POST", "/v3/appendix/webhook_resend", ("appendix", "webhook_resend")),
        ("POST", "/v3/appendix/errors", None),
        ("POST", "/v3/nope/id_list", None),
        ("POST", "/v3/backlinks/id_list/", None),
        ("POST", "/v2/backlinks/id_list", None),
        ("POST", "v3/backlinks/id_list", None),
        ("GET", "/v3/backlinks/id_list", None),
    ],
)
def test_route_names_only_the_served_endpoints(
    method: str, path: str, expected: tuple[str, str] | None
) -> None:
    """A POST to an API that has the function is routed; anything else is None (40400)."""
    assert route(method, path) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic(CREDENTIALS), True),
        ("basic " + base64.b64encode(CREDENTIALS).decode(), True),  # the scheme is case-free
        (basic(CREDENTIALS) + "  ", True),
        (basic(b"login:s3cret!"), False),
        (basic(b"login:"), False),
        ("Bearer " + base64.b64encode(CREDENTIALS).decode(), False),
        ("Basic not*base64", False),
        ("Basic", False),
        ("", False),
        (None, False),
    ],
)
def test_authorized_takes_exactly_the_basic_credentials(header: str | None, expected: bool) -> None:
    """Only Basic auth with exactly login:password passes."""
    assert authorized(header, CREDENTIALS) is expected


# -- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", Invalid(40502, "POST Data Is Empty.")),
        (b" \r\n\t", Invalid(40502, "POST Data Is Empty.")),
        (b"[]", Invalid(40502, "POST Data Is Empty.")),
        (b"[{", Invalid(40503, "Invalid POST data.")),
        (b'{"limit": 1}', Invalid(40503, "Invalid POST data.")),
        (b"[1]", Invalid(40503, "Invalid POST data.")),
        (b'[{"limit": 1}, null]', Invalid(40503, "Invalid POST data.")),
        (b"\xff", Invalid(40503, "Invalid POST data.")),
        (b'[{"limit": 1}, {}]', [{"limit": 1}, {}]),
    ],
)
def test_read_tasks_refuses_a_body_that_is_not_an_array_of_objects(
    raw: bytes, expected: Invalid | list[dict[str, Any]]
) -> None:
    """An empty body is 40502, a non-array or a non-object task 40503; else the tasks."""
    assert read_tasks(raw) == expected


def test_without_drops_the_field_from_the_first_task_only() -> None:
    """A server ignoring `offset` reads the first task without it; other bodies stay as sent."""
    assert without(b'[{"offset": 5, "limit": 2}]', "offset") == b'[{"limit": 2}]'
    assert without(b"not json", "offset") == b"not json"
    assert without(b"[]", "offset") == b"[]"


# -- id_list tasks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            {**window(), "foo": 1, "bar": 2},
            Invalid(40506, "Unknown Fields in POST Data: foo, bar."),
        ),
        # An unknown field is reported before a broken known one.
        ({"limit": 0, "x": 1}, Invalid(40506, "Unknown Fields in POST Data: x.")),
        (window(datetime_from=None), field("datetime_from")),
        (window(datetime_to=None), field("datetime_to")),
        (window(datetime_from="2024-08-01T00:00:00Z"), field("datetime_from")),
        (window(datetime_from="2024-08-01 00:00:00"), field("datetime_from")),
        (window(datetime_from="2024-08-01 00:00:00 +0000"), field("datetime_from")),
        (window(datetime_to="2024-02-30 00:00:00 +00:00"), field("datetime_to")),
        (window(datetime_to=1725105600), field("datetime_to")),
        (window(limit=0), field("limit")),
        (window(limit=1001), field("limit")),
        (window(limit="10"), field("limit")),
        (window(limit=10.0), field("limit")),
        (window(limit=True), field("limit")),
        (window(offset=-1), field("offset")),
        (window(offset=False), field("offset")),
        (window(sort="up"), field("sort")),
        (window(include_metadata="true"), field("include_metadata")),
        (window(include_metadata=1), field("include_metadata")),
        (window(tag=5), field("tag")),
        (window(datetime_to=stamp(NOW + timedelta(seconds=1))), field("datetime_to")),
        # 2024-02-29 12:00 is six calendar months before 2024-08-31 12:00 (clamped).
        (window(datetime_from="2024-02-29 11:59:59 +00:00"), field("datetime_from")),
        # 2024-07-31 12:00 is one calendar month before it.
        (
            window(datetime_from="2024-07-31 11:59:59 +00:00", include_metadata=True),
            field("datetime_from"),
        ),
        (window(datetime_from=stamp(NOW)), field("datetime_from")),  # an empty window
        # The same instant in another offset is still an empty window.
        (window(datetime_from="2024-08-31 14:00:00 +02:00"), field("datetime_from")),
        # Several faults at once: the first of the order above is the one reported.
        (window(limit=0, sort="up", datetime_to=None), field("datetime_to")),
        (window(sort="up", tag=5, datetime_from=stamp(NOW)), field("sort")),
    ],
)
def test_validate_id_list_refuses_with_the_apis_code_and_message(
    task: dict[str, Any], expected: Invalid
) -> None:
    """Each id_list refusal has the API's code and exact message; the first fault wins."""
    assert validate_id_list(task, NOW) == expected


def test_validate_id_list_reads_an_accepted_task_into_epochs_and_defaults() -> None:
    """The window's ends become epoch seconds; limit 1000, offset 0, asc, no metadata by default."""
    assert validate_id_list(
        {
            "datetime_from": "2024-02-29 12:00:00 +00:00",
            "datetime_to": "2024-08-31 14:00:00 +02:00",
        },
        NOW,
    ) == IdListQuery(
        start=1709208000, end=1725105600, limit=1000, offset=0, descending=False, metadata=False
    )
    task = window(
        datetime_from="2024-07-31 12:00:00 +00:00",
        limit=1,
        offset=7,
        sort="desc",
        include_metadata=True,
        tag="mine",
    )
    assert validate_id_list(task, NOW) == IdListQuery(
        start=1722427200, end=1725105600, limit=1, offset=7, descending=True, metadata=True
    )


@given(
    now=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
    ).map(lambda moment: moment.replace(microsecond=0)),
    back=st.integers(min_value=1, max_value=200 * 86400),
    metadata=st.booleans(),
)
def test_validate_id_list_reaches_back_exactly_the_shared_calendar_months(
    now: datetime, back: int, metadata: bool
) -> None:
    """On any date, a start is refused iff it is before the shared calendar rule's limit."""
    start = now - timedelta(seconds=back)
    task = {"datetime_from": stamp(start), "datetime_to": stamp(now), "include_metadata": metadata}
    earliest = months_before(now, 1 if metadata else 6)
    result = validate_id_list(task, now)
    if start < earliest:
        assert result == field("datetime_from")
    else:
        assert isinstance(result, IdListQuery)
        assert result.start == int(start.timestamp())


# -- errors tasks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"datetime": stamp(NOW)}, Invalid(40506, "Unknown Fields in POST Data: datetime.")),
        ({"tag": "x", "sort": "asc"}, Invalid(40506, "Unknown Fields in POST Data: tag, sort.")),
        ({"limit": 0}, field("limit")),
        ({"limit": 1001}, field("limit")),
        ({"offset": -5}, field("offset")),
        ({"filtered_function": 3}, field("filtered_function")),
        ({"filtered_function": None}, field("filtered_function")),
        ({"datetime_from": "yesterday"}, field("datetime_from")),
        ({"datetime_to": stamp(NOW)[:-1]}, field("datetime_to")),
        ({"datetime_from": stamp(NOW - timedelta(days=7, seconds=1))}, field("datetime_from")),
        ({"datetime_to": stamp(NOW + timedelta(seconds=1))}, field("datetime_to")),
        (
            {"datetime_from": stamp(NOW), "datetime_to": stamp(NOW - timedelta(hours=1))},
            field("datetime_from"),
        ),
        ({"datetime_from": stamp(NOW), "datetime_to": stamp(NOW)}, field("datetime_from")),
        # Paging is checked before the function and the window.
        ({"offset": -1, "filtered_function": 3, "datetime_from": "x"}, field("offset")),
    ],
)
def test_validate_errors_refuses_with_the_apis_code_and_message(
    task: dict[str, Any], expected: Invalid
) -> None:
    """Each errors refusal has the API's code and exact message; the first fault wins."""
    assert validate_errors(task, NOW) == expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({}, ErrorsQuery(limit=1000, offset=0, function=None, start=None, end=None)),
        (
            {
                "limit": 5,
                "offset": 10,
                "filtered_function": "backlinks/live",
                "datetime_from": stamp(NOW - timedelta(days=7)),  # exactly seven days is in reach
                "datetime_to": stamp(NOW),
            },
            ErrorsQuery(
                limit=5,
                offset=10,
                function="backlinks/live",
                start=1724500800,
                end=1725105600,
            ),
        ),
        (
            {"datetime_from": stamp(NOW - timedelta(hours=1))},
            ErrorsQuery(limit=1000, offset=0, function=None, start=1725102000, end=None),
        ),
    ],
)
def test_validate_errors_reads_an_accepted_task(
    task: dict[str, Any], expected: ErrorsQuery
) -> None:
    """An errors task's filters are optional; its window ends become epoch seconds."""
    assert validate_errors(task, NOW) == expected
