"""The sans-I/O core: request bytes, reply classification and record decoding, no event loop."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest

import dfs_async
from dfs_async._convert import format_datetime, parse_datetime
from dfs_async._json import PARSERS
from dfs_async._protocol import encode_body, parse_reply

DATA = Path(__file__).parent / "data"
UTC = timezone.utc
ENDPOINT = "/v3/backlinks/errors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


class Reply(Protocol):
    def __call__(
        self, envelope: object, *, status: int = ..., record_type: type[Any] = ...
    ) -> Any: ...


@pytest.fixture(params=sorted(PARSERS))
def reply(request: pytest.FixtureRequest) -> Reply:
    """parse_reply through one of the JSON parsers installed: each case runs under every one."""
    parser = PARSERS[request.param]

    def read(
        envelope: object, *, status: int = 200, record_type: type[Any] = dfs_async.TaskError
    ) -> Any:
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        return parse_reply(
            endpoint=ENDPOINT,
            http_status=status,
            headers={},
            body=body,
            record_type=record_type,
            parser=parser,
        )

    return read


def test_documented_errors_example_decodes_to_exact_records(reply: Reply) -> None:
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


def test_id_list_sample_decodes_offsets_to_utc_and_keeps_nulls(reply: Reply) -> None:
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


def test_unknown_fields_are_tolerated(reply: Reply) -> None:
    """A field the server adds later does not break decoding."""
    envelope = load("errors_example.json")
    envelope["new_top"] = 1
    envelope["tasks"][0]["result"][0]["new_field"] = {"x": 1}
    assert len(reply(envelope).records) == 3


def test_missing_field_names_the_path_and_keeps_raw_text(reply: Reply) -> None:
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


def test_mistyped_field_is_an_error_not_a_coercion(reply: Reply) -> None:
    """A string where an int belongs fails: no silent int("12")."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"][1]["http_code"] = "200"
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == "$.tasks[0].result[1].http_code"
    assert "expected an integer, got str" in str(info.value)


def test_bad_datetime_names_the_field(reply: Reply) -> None:
    """An unreadable datetime names its path and quotes the value."""
    envelope = load("id_list_example.json")
    envelope["tasks"][0]["result"][1]["datetime_posted"] = "31/01/2023"
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope, record_type=dfs_async.TaskId)
    assert info.value.path == "$.tasks[0].result[1].datetime_posted"
    assert "'31/01/2023'" in str(info.value)


def test_null_entries_count_for_paging_but_are_not_records(reply: Reply) -> None:
    """result may hold nulls: they count as received (paging) and are reported, not decoded."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"].insert(1, None)
    page = reply(envelope)
    assert (page.received, page.nulls, len(page.records)) == (4, 1, 3)


def test_error_path_counts_null_entries(reply: Reply) -> None:
    """The path of a bad item is its index in result, nulls included."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"].insert(0, None)
    envelope["tasks"][0]["result"][2]["http_time"] = None
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == "$.tasks[0].result[2].http_time"


def test_null_result_on_ok_task_is_an_empty_page(reply: Reply) -> None:
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
def test_status_codes_map_to_error_classes(
    code: int, error: type[Exception], level: str, reply: Reply
) -> None:
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
def test_http_status_is_checked_first(
    status: int, error: type[Exception], transient: bool, reply: Reply
) -> None:
    """A non-200 HTTP status decides the class, whatever the body says."""
    with pytest.raises(dfs_async.APIError) as info:
        reply(b"<html>Bad Gateway</html>", status=status)
    assert type(info.value) is error
    assert info.value.http_status == status
    assert info.value.status_code is None
    assert info.value.retryable is transient


def test_http_401_keeps_the_json_code_and_message(reply: Reply) -> None:
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
def test_non_json_body_is_a_transient_malformed_reply(body: bytes, reply: Reply) -> None:
    """A body cut short or an HTML page raises MalformedResponseError, keeping the raw text."""
    with pytest.raises(dfs_async.MalformedResponseError) as info:
        reply(body)
    assert info.value.raw == body.decode()
    assert info.value.retryable is True


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
def test_broken_envelope_names_the_field(envelope: dict[str, Any], path: str, reply: Reply) -> None:
    """An envelope of the wrong shape raises DecodeError naming the field (not retried)."""
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(envelope)
    assert info.value.path == path
    assert info.value.retryable is False


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
    status: int, body: dict[str, Any], error: str, code: int | None, reply: Reply
) -> None:
    """A gateway's JSON on a 5xx/429 cannot turn a retryable reply into a permanent one."""
    with pytest.raises(dfs_async.APIError) as info:
        reply(body, status=status)
    assert type(info.value).__name__ == error
    assert info.value.status_code == code
    assert info.value.retryable is (status >= 429 and status != 401)


def test_body_that_is_not_utf8_is_malformed(reply: Reply) -> None:
    """Invalid UTF-8 is not silently replaced: the reply is malformed (and retried)."""
    with pytest.raises(dfs_async.MalformedResponseError):
        reply(b'{"status_code": 20000, "x": "\xff"}')


def errors_body(field: str, value: str) -> bytes:
    """The errors example with the JSON text `value` in place of the first entry's `field`."""
    envelope = load("errors_example.json")
    envelope["tasks"][0]["result"][0][field] = "\x00placeholder"
    return json.dumps(envelope).replace('"\\u0000placeholder"', value, 1).encode()


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("http_time", "NaN", "NaN is not a JSON number"),
        ("http_time", "Infinity", "Infinity is not a JSON number"),
        ("http_time", "-Infinity", "-Infinity is not a JSON number"),
        ("http_time", "1e400", "the number 1e400 is too large for a float"),
        ("http_time", "-2e308", "the number -2e308 is too large for a float"),
        ("http_time", "1" + "0" * 400, "the number 1" + "0" * 39 + "... is too large for a float"),
        ("error_message", r'"\ud800"', r"a string holds the lone surrogate \ud800"),
        ("error_message", r'"x\uDC00\ud800"', r"a string holds the lone surrogate \udc00"),
        ("error_message", r'"\ud83d"', r"a string holds the lone surrogate \ud83d"),
    ],
)
def test_values_that_are_not_json_numbers_or_text_are_refused(
    field: str, value: str, problem: str, reply: Reply
) -> None:
    """NaN, infinite numbers and lone surrogates make the body malformed, naming the problem."""
    body = errors_body(field, value)
    with pytest.raises(dfs_async.MalformedResponseError) as info:
        reply(body)
    assert str(info.value).startswith(
        f"expected a JSON envelope, got a body that is not JSON ({problem}) (HTTP 200): "
    )
    assert info.value.raw == body.decode()
    assert info.value.retryable is True


def test_a_surrogate_pair_is_one_character(reply: Reply) -> None:
    """An escaped surrogate pair is the character it encodes (what orjson reads)."""
    page = reply(errors_body("error_message", r'"smile \ud83d\ude00"'))
    assert page.records[0].error_message == "smile \U0001f600"


@pytest.mark.parametrize(
    ("literal", "field", "expected"),
    [
        ("18446744073709551615", "error_code", 18446744073709551615),
        ("-9223372036854775808", "error_code", -9223372036854775808),
        ("100000000000000000000000000000", "http_time", 1e29),
        ("1.7976931348623157e308", "http_time", 1.7976931348623157e308),
        ("1e-400", "http_time", 0.0),
    ],
)
def test_numbers_at_the_edges_read_the_same(
    literal: str, field: str, expected: float, reply: Reply
) -> None:
    """Integers in the 64-bit range stay integers; others and extreme floats read as floats."""
    record = reply(errors_body(field, literal)).records[0]
    assert getattr(record, field) == expected
    assert type(getattr(record, field)) is type(expected)


def test_an_integer_past_64_bits_is_a_float(reply: Reply) -> None:
    """2**64 reads as a float (as orjson reads it), so an integer field refuses it."""
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(errors_body("error_code", "18446744073709551616"))
    assert info.value.path == "$.tasks[0].result[0].error_code"
    assert "expected an integer, got float" in str(info.value)


def nested(depth: int) -> bytes:
    """An Ok errors envelope whose extra field is `depth` - 1 nested lists (depth in all)."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return (
        '{"status_code": 20000, "deep": ' + inner + ', "tasks": [{"status_code": 20000, '
        '"result": []}]}'
    ).encode()


@pytest.mark.parametrize("depth", [2, 900, 1000, 1024])
def test_nesting_up_to_1024_levels_is_read(depth: int, reply: Reply) -> None:
    """Up to orjson's 1024 levels, both parsers read the reply, whatever the caller's stack."""
    assert reply(nested(depth)).received == 0


@pytest.mark.parametrize("depth", [1025, 100_000])
def test_nesting_deeper_than_1024_levels_is_refused(depth: int, reply: Reply) -> None:
    """Deeper nesting is a malformed body naming the limit, never a RecursionError."""
    with pytest.raises(dfs_async.MalformedResponseError) as info:
        reply(nested(depth))
    assert "not JSON (nested deeper than 1024 levels)" in str(info.value)
    assert len(str(info.value)) < 500


def test_a_body_in_utf16_is_not_read_as_json(reply: Reply) -> None:
    """A UTF-16 body (valid UTF-8 byte by byte, NULs between) is refused, not guessed at."""
    body = json.dumps(load("errors_example.json")).encode("utf-16-le")
    with pytest.raises(dfs_async.MalformedResponseError) as info:
        reply(body)
    assert "not JSON (Expecting property name enclosed in double quotes" in str(info.value)


@pytest.mark.parametrize(
    ("item", "kind"), [("1", "int"), ('"x"', "str"), ("[1]", "list"), ("true", "bool")]
)
def test_an_item_that_is_not_an_object_names_its_place(item: str, kind: str, reply: Reply) -> None:
    """A scalar or list in result is refused at its own path, $.tasks[0].result[i]."""
    body = (
        '{"status_code": 20000, "tasks": [{"status_code": 20000, "result": [null, ' + item + "]}]}"
    ).encode()
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(body, record_type=dfs_async.TaskId)
    assert info.value.path == "$.tasks[0].result[1]"
    assert str(info.value) == (
        f"cannot decode TaskId: expected an object, got {kind} @ $.tasks[0].result[1]; "
        f"item: {item} ({ENDPOINT})"
    )


def test_a_deeply_nested_bad_item_is_quoted_briefly(reply: Reply) -> None:
    """A bad item nested 1000 levels deep gives a DecodeError quoting at most 200 characters."""
    item = "[" * 1000 + "]" * 1000
    body = '{"status_code": 20000, "tasks": [{"status_code": 20000, "result": [' + item + "]}]}"
    with pytest.raises(dfs_async.DecodeError) as info:
        reply(body.encode(), record_type=dfs_async.TaskId)
    assert info.value.path == "$.tasks[0].result[0]"
    assert str(info.value).startswith(
        "cannot decode TaskId: expected an object, got list @ $.tasks[0].result[0]; item: [[[["
    )
    assert len(str(info.value)) < 320


@pytest.mark.parametrize(
    "text",
    ["2026-01-01", "2023-01-15T12:57:46", "2023-01-15 12:57:46Z", "2023-01-15 12:57:46 +0200"],
)
def test_datetimes_of_other_shapes_are_refused(text: str) -> None:
    """Only the documented shapes parse: no bare dates, T, Z or compact offsets."""
    with pytest.raises(ValueError, match="not a datetime in the form"):
        parse_datetime(text)
