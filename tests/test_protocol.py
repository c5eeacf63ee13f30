"""The sans-I/O core: request bytes, reply classification and record decoding, no event loop."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import dfs_async
from dfs_async._convert import format_datetime, parse_datetime
from dfs_async._protocol import encode_body, is_transient, parse_reply

DATA = Path(__file__).parent / "data"
UTC = timezone.utc
ENDPOINT = "/v3/backlinks/errors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def reply(
    envelope: object, *, status: int = 200, record_type: type[Any] = dfs_async.TaskError
) -> Any:
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return parse_reply(
        endpoint=ENDPOINT, http_status=status, headers={}, body=body, record_type=record_type
    )


def test_documented_errors_example_decodes_to_exact_records() -> None:
    """The errors page's own example decodes field by field, offset-less times read as UTC."""
    page = reply(load("errors_example.json"))
    assert page.received == 3
    assert page.nulls == 0
    assert page.task_id == "03271254-0001-0409-1000-b101eca0e218"
    assert page.cost == 0.0
    assert page.time == "0.0477 sec."
    assert page.records[0] == dfs_async.TaskError(
        id="03271154-0001-0267-0000-0770a8d8e073",
        datetime=datetime(2022, 3, 27, 11, 54, 52, tzinfo=UTC),
        function="backlinks/content_duplicates",
        error_code=50000,
        error_message="Internal Error.",
        http_url="https://api.dataforseo.com/v3/backlinks/content_duplicates",
        http_method="POST",
        http_code=200,
        http_time=0.0,
        http_response="Internal Error.",
    )
    assert [(r.id, r.error_code, r.http_code) for r in page.records] == [
        ("03271154-0001-0267-0000-0770a8d8e073", 50000, 200),
        ("03271154-0001-0267-0000-0770a8d8e073", 40506, 40506),
        ("03261654-0001-0267-0000-0b003ad3b985", 50000, 200),
    ]
    assert all(type(r.http_time) is float for r in page.records)


def test_id_list_sample_decodes_offsets_to_utc_and_keeps_nulls() -> None:
    """id_list items: +02:00 becomes UTC, a null datetime_done and metadata stay None."""
    page = reply(load("id_list_example.json"), record_type=dfs_async.TaskId)
    first, second = page.records
    assert first.datetime_posted == datetime(2023, 1, 31, 11, 57, 46, tzinfo=UTC)
    assert first.datetime_posted.tzinfo is UTC
    assert first.datetime_done == datetime(2023, 1, 31, 11, 57, 47, tzinfo=UTC)
    assert first.metadata == {
        "api": "backlinks",
        "function": "summary",
        "target": "dataforseo.com",
        "internal_list_limit": 10,
    }
    assert first.cost == 0.02003
    assert second.datetime_done is None
    assert second.metadata is None
    assert second.status == "Task In Queue."


def test_unknown_fields_are_tolerated() -> None:
    """A field the server adds later does not break decoding."""
    envelope = load("errors_example.json")
    envelope["new_top"] = 1
    envelope["tasks"][0]["result"][0]["new_field"] = {"x": 1}
    assert len(reply(envelope).records) == 3


def test_missing_field_names_the_path_and_keeps_raw_text() -> None:
    """A missing required field raises DecodeError with the JSON path and the whole body."""
    envelope = load("errors_example.json")
    del envelope["tasks"][0]["result"][2]["error_code"]
    body = json.dumps(envelope).encode()
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(body)
    assert info.value.path == "$.tasks[0].result[2].error_code"
    assert info.value.raw == body.decode()
    assert "required field missing @ $.tasks[0].result[2].error_code" in str(info.value)
    assert info.value.endpoint == ENDPOINT


def test_mistyped_field_is_an_error_not_a_coercion() -> None:
    """A string where an int belongs fails: no silent int("12")."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"][1]["http_code"] = "200"
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == "$.tasks[0].result[1].http_code"
    assert "expected an integer, got str" in str(info.value)


def test_bad_datetime_names_the_field() -> None:
    """An unreadable datetime names its path and quotes the value."""
    envelope = load("id_list_example.json")
    envelope["tasks"][0]["result"][1]["datetime_posted"] = "31/01/2023"
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope, record_type=dfs_async.TaskId)
    assert info.value.path == "$.tasks[0].result[1].datetime_posted"
    assert "'31/01/2023'" in str(info.value)


def test_null_entries_count_for_paging_but_are_not_records() -> None:
    """result may hold nulls: they count as received (paging) and are reported, not decoded."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"].insert(1, None)
    page = reply(envelope)
    assert (page.received, page.nulls, len(page.records)) == (4, 1, 3)


def test_error_path_counts_null_entries() -> None:
    """The path of a bad item is its index in result, nulls included."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"].insert(0, None)
    envelope["tasks"][0]["result"][2]["http_time"] = None
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == "$.tasks[0].result[2].http_time"


def test_null_result_on_ok_task_is_an_empty_page() -> None:
    """An Ok task with result null is a page with nothing in it."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"] = None
    page = reply(envelope)
    assert (page.received, page.records) == (0, [])


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (40202, dfs_async.RateLimitedError),
        (40209, dfs_async.RateLimitedError),
        (50000, dfs_async.ServerError),
        (50303, dfs_async.ServerError),
        (40101, dfs_async.ServerError),
        (59999, dfs_async.ServerError),
        (40100, dfs_async.AuthenticationError),
        (40200, dfs_async.AuthenticationError),
        (40207, dfs_async.AuthenticationError),
        (40000, dfs_async.InvalidRequestError),
        (40501, dfs_async.InvalidRequestError),
        (40506, dfs_async.InvalidRequestError),
        (40402, dfs_async.InvalidRequestError),
        (10000, dfs_async.APIError),
    ],
)
@pytest.mark.parametrize("level", ["envelope", "task"])
def test_status_codes_map_to_error_classes(code: int, error: type[Exception], level: str) -> None:
    """Each documented code raises its class, at the envelope or the task level."""
    envelope = load("errors_example.json")
    target = envelope if level == "envelope" else envelope["tasks"][0]
    target["status_code"] = code
    target["status_message"] = "Some message."
    if level == "envelope":
        envelope["tasks"] = None
    with pytest.raises(dfs_async.APIError) as info:
        reply(envelope)
    assert type(info.value) is error
    assert info.value.status_code == code
    assert info.value.status_message == "Some message."
    assert info.value.http_status == 200
    assert info.value.endpoint == ENDPOINT
    assert str(info.value) == f"{code} Some message. (HTTP 200, {ENDPOINT})"


@pytest.mark.parametrize(
    ("status", "error", "transient"),
    [
        (401, dfs_async.AuthenticationError, False),
        (402, dfs_async.AuthenticationError, False),
        (404, dfs_async.InvalidRequestError, False),
        (429, dfs_async.RateLimitedError, True),
        (500, dfs_async.ServerError, True),
        (502, dfs_async.ServerError, True),
        (503, dfs_async.ServerError, True),
        (504, dfs_async.ServerError, True),
    ],
)
def test_http_status_is_checked_first(status: int, error: type[Exception], transient: bool) -> None:
    """A non-200 HTTP status decides the class, whatever the body says."""
    with pytest.raises(dfs_async.APIError) as info:
        reply(b"<html>Bad Gateway</html>", status=status)
    assert type(info.value) is error
    assert info.value.http_status == status
    assert info.value.status_code is None
    assert is_transient(info.value) is transient


def test_http_401_keeps_the_json_code_and_message() -> None:
    """A 401 with a JSON envelope reports the API's own code and message."""
    body = {"status_code": 40100, "status_message": "You are not authorized.", "tasks": None}
    with pytest.raises(dfs_async.AuthenticationError) as info:
        reply(body, status=401)
    assert (info.value.status_code, info.value.status_message) == (40100, "You are not authorized.")


@pytest.mark.parametrize(
    "body",
    [
        b'{"version": "0.1", "status_code": 20000, "tasks": [{"id',
        b"<html><body>502</body></html>",
        b"",
    ],
)
def test_non_json_body_is_a_transient_malformed_reply(body: bytes) -> None:
    """A body cut short or an HTML page raises MalformedResponseError, keeping the raw text."""
    with pytest.raises(dfs_async.MalformedResponseError) as info:
        reply(body)
    assert info.value.raw == body.decode()
    assert is_transient(info.value)


@pytest.mark.parametrize(
    ("envelope", "path"),
    [
        ({"status_code": "20000"}, "$.status_code"),
        ({"status_code": 20000, "tasks": []}, "$.tasks"),
        (
            {"status_code": 20000, "tasks": [{"status_code": 20000, "result": {}}]},
            "$.tasks[0].result",
        ),
        ({"status_code": 20000, "tasks": [{"result": []}]}, "$.tasks[0].status_code"),
    ],
)
def test_broken_envelope_names_the_field(envelope: dict[str, Any], path: str) -> None:
    """An envelope of the wrong shape raises DecodeError naming the field (not retried)."""
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == path
    assert not is_transient(info.value)


def test_body_is_one_task_array() -> None:
    """The POST body is a JSON array holding exactly the one task given."""
    task = {"datetime_from": "2026-11-01 00:00:00 +00:00", "limit": 1000, "offset": 0}
    assert json.loads(encode_body(task)) == [task]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-01-15 12:57:46 +00:00", datetime(2023, 1, 15, 12, 57, 46, tzinfo=UTC)),
        ("2023-01-15 12:57:46 +02:00", datetime(2023, 1, 15, 10, 57, 46, tzinfo=UTC)),
        ("2023-01-15 00:30:00 -05:30", datetime(2023, 1, 15, 6, 0, 0, tzinfo=UTC)),
        ("2022-03-27 11:54:52", datetime(2022, 3, 27, 11, 54, 52, tzinfo=UTC)),
    ],
)
def test_datetimes_parse_to_aware_utc(text: str, expected: datetime) -> None:
    """Both documented forms parse; the result is aware and in UTC."""
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_datetimes_format_in_the_request_form() -> None:
    """Requests carry 'YYYY-MM-DD HH:MM:SS +00:00', converted to UTC, seconds only."""
    moment = datetime(2026, 11, 1, 2, 3, 4, 567, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(moment) == "2026-11-01 00:03:04 +00:00"


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (503, {"status_code": 503, "status_message": "Service Unavailable"}, "ServerError", None),
        (
            429,
            {"status_code": 429, "status_message": "Too Many Requests"},
            "RateLimitedError",
            None,
        ),
        (502, {"status_code": 20000, "status_message": "Ok."}, "ServerError", None),
        (500, {"status_code": 40501, "status_message": "Invalid Field."}, "ServerError", 40501),
        (
            401,
            {"status_code": 40100, "status_message": "Not authorized."},
            "AuthenticationError",
            40100,
        ),
    ],
)
def test_http_status_decides_the_class_even_with_a_json_body(
    status: int, body: dict[str, Any], error: str, code: int | None
) -> None:
    """A gateway's JSON on a 5xx/429 cannot turn a retryable reply into a permanent one."""
    with pytest.raises(dfs_async.APIError) as info:
        reply(body, status=status)
    assert type(info.value).__name__ == error
    assert info.value.status_code == code
    assert is_transient(info.value) is (status >= 429 and status != 401)


def test_body_that_is_not_utf8_is_malformed() -> None:
    """Invalid UTF-8 is not silently replaced: the reply is malformed (and retried)."""
    with pytest.raises(dfs_async.MalformedResponseError):
        reply(b'{"status_code": 20000, "x": "\xff"}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    """A cost of NaN is not silently a float: the body is malformed, with or without orjson."""
    text = json.dumps(load("errors_example.json")).replace('"cost": 0', f'"cost": {constant}', 1)
    with pytest.raises(dfs_async.MalformedResponseError):
        reply(text.encode())


def test_stdlib_fallback_parses_like_orjson() -> None:
    """The stdlib parser used without orjson gives the same envelope and refuses NaN."""
    from dfs_async import _protocol

    body = (DATA / "id_list_example.json").read_bytes()
    assert _protocol._json_loads(body) == json.loads(body)
    with pytest.raises(ValueError, match="NaN is not JSON"):
        _protocol._json_loads(b'{"cost": NaN}')


@pytest.mark.parametrize(
    "text",
    ["2026-01-01", "2023-01-15T12:57:46", "2023-01-15 12:57:46Z", "2023-01-15 12:57:46 +0200"],
)
def test_datetimes_of_other_shapes_are_refused(text: str) -> None:
    """Only the documented shapes parse: no bare dates, T, Z or compact offsets."""
    with pytest.raises(ValueError, match="not a datetime in the form"):
        parse_datetime(text)
