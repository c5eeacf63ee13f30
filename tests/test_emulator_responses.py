"""The emulator's response documents as pure functions: the API's envelope, byte for byte."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dfs_async.testing._responses import (
    VERSION,
    document,
    encode_text,
    envelope,
    item,
    phrase,
    proxy_page,
    refusal,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    items=st.lists(st.dictionaries(st.text(), json_values, max_size=4), max_size=5),
    sent=st.dictionaries(st.sampled_from(["limit", "offset", "tag"]), json_values),
)
def test_the_spliced_result_is_the_document_encoded_whole(
    items: list[dict[str, Any]], sent: dict[str, Any]
) -> None:
    """Splicing pre-encoded items gives the bytes of encoding the whole document at once."""
    body = document(
        ("backlinks", "id_list"),
        sent,
        task_id="t-1",
        time="0.0010 sec.",
        error=None,
        items=[encode_text(entry) for entry in items],
    )
    whole = json.loads(body)
    assert whole["tasks"][0]["result"] == items
    assert whole["tasks"][0]["result_count"] == len(items)
    assert body == encode_text(whole).encode()


def test_a_refused_task_has_a_null_result_and_counts_as_an_error() -> None:
    """The one task carries the refusal; the envelope stays 20000 with tasks_error 1."""
    body = document(
        ("serp", "errors"),
        {"limit": 0},
        task_id="t-2",
        time="0.0002 sec.",
        error=(40501, "Invalid Field: 'limit'."),
        items=None,
    )
    assert json.loads(body) == {
        "version": VERSION,
        "status_code": 20000,
        "status_message": "Ok.",
        "time": "0.0002 sec.",
        "cost": 0,
        "tasks_count": 1,
        "tasks_error": 1,
        "tasks": [
            {
                "id": "t-2",
                "status_code": 40501,
                "status_message": "Invalid Field: 'limit'.",
                "time": "0.0002 sec.",
                "cost": 0,
                "result_count": 0,
                "path": ["v3", "serp", "errors"],
                "data": {"api": "serp", "function": "errors", "limit": 0},
                "result": None,
            }
        ],
    }


def test_an_envelope_refusal_has_no_tasks() -> None:
    """A refusal at the envelope keeps the HTTP status apart and `tasks` null."""
    answer = refusal(401, (40100, "You are not authorized to access this resource."), "0.0 sec.")
    assert (answer.status, answer.code) == (401, 40100)
    assert answer.body == envelope(
        40100, "You are not authorized to access this resource.", "0.0 sec."
    )
    assert json.loads(answer.body)["tasks"] is None
    assert json.loads(answer.body)["tasks_count"] == 0


def test_an_item_has_the_apis_fields_in_order_and_metadata_only_when_asked() -> None:
    """id_list items list the six fields in the API's order; metadata follows only on request."""
    record = {"cost": 1, "id": "x", "metadata": {"a": 1}, "extra": True, "url": "u"}
    assert list(item(record, False)) == [
        "id",
        "url",
        "datetime_posted",
        "datetime_done",
        "status",
        "cost",
    ]
    assert item(record, True)["metadata"] == {"a": 1}
    assert item(record, False)["datetime_done"] is None


def test_the_proxy_page_and_phrases() -> None:
    """A proxy page names the status and its phrase; a status Python does not know is 'Error'."""
    assert "<title>502 Bad Gateway</title>" in proxy_page(502)
    assert phrase(599) == "Error"
