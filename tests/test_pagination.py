"""The pure paging rules: which page comes next, overlap after head inserts, resume state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfs_async import PagerState, TaskError, TaskId
from dfs_async._pagination import PageRequest, PagingError, StreamCursor, record_key

UTC = timezone.utc


def page(offset: int, limit: int) -> PageRequest:
    return PageRequest(offset=offset, limit=limit)


def fresh(page_size: int = 1000, max_items: int | None = None) -> PagerState:
    return PagerState(
        api="backlinks",
        function="id_list",
        params={"datetime_from": "2026-11-01 00:00:00 +00:00"},
        page_size=page_size,
        max_items=max_items,
        offset=0,
        yielded=0,
        seen=(),
    )


class HeadGrowingList:
    """A server-side list that grows at the head, as errors and a desc id_list do."""

    def __init__(self, size: int) -> None:
        self.items = [f"old-{i}" for i in range(size)]
        self.inserted = 0

    def insert_head(self, count: int) -> None:
        new = [f"new-{self.inserted + i}" for i in range(count)]
        self.inserted += count
        self.items[:0] = new

    def page(self, request: PageRequest) -> list[str]:
        return self.items[request.offset : request.offset + request.limit]


class OffsetIgnoringList(HeadGrowingList):
    """A server that answers every call with the head of the list, whatever the offset."""

    def page(self, request: PageRequest) -> list[str]:
        return self.items[: request.limit]


class OverfullList(HeadGrowingList):
    """A server that sends `extra` records more than asked for."""

    def __init__(self, size: int, extra: int) -> None:
        super().__init__(size)
        self.extra = extra

    def page(self, request: PageRequest) -> list[str]:
        return self.items[request.offset : request.offset + request.limit + self.extra]


@attrs.define
class Run:
    """What driving a cursor gave: the keys yielded, the calls made, how it ended."""

    out: list[str]
    calls: int
    #: Each call's limit, the records inserted at the head just before it, and whether the
    #: page was full and held only records yielded before.
    history: list[tuple[int, int, bool]]
    error: PagingError | None = None


def run(
    server: HeadGrowingList,
    cursor: StreamCursor,
    inserts: list[int],
    *,
    stop_after: int | None = None,
    yielded_before: Sequence[str] = (),
) -> Run:
    """Drive a cursor like the pager does (`yielded_before`: by the run it resumes).

    Before each call but the first, the list grows at its head by inserts[n], capped at how
    far the previous call moved the position (the documented limit of overlap detection).
    """
    result = Run(out=[], calls=0, history=[])
    advance = 0
    request = cursor.state.next_request()
    while request is not None:
        inserted = 0
        if 0 < result.calls <= len(inserts):
            inserted = min(inserts[result.calls - 1], advance)
            server.insert_head(inserted)
        keys = server.page(request)
        result.calls += 1
        stale = len(keys) == request.limit and set(keys) <= {*yielded_before, *result.out}
        result.history.append((request.limit, inserted, stale))
        assert result.calls <= 1000, "the stream never ends"
        try:
            # The pager's early send (prefetch, no max_items) asks the cursor first.
            early = cursor.request_before_records(request, len(keys))
            _, new = cursor.begin_page(request, len(keys), keys, keys)
        except PagingError as exc:
            result.error = exc
            return result
        for key in new:
            if stop_after is not None and len(result.out) == stop_after:
                return result
            cursor.consume()
            result.out.append(key)
        request = cursor.next_request_after_page()
        # Sent early or after the records, the next request is the same one.
        assert early == (request if cursor.state.max_items is None else None)
        cursor.end_page()
        assert cursor.state.next_request() == request
        advance = len(keys)
    return result


def stream(
    server: HeadGrowingList,
    cursor: StreamCursor,
    inserts: list[int],
    *,
    stop_after: int | None = None,
) -> tuple[list[str], int]:
    """`run` for a stream that must not fail; returns (yielded keys, calls made)."""
    result = run(server, cursor, inserts, stop_after=stop_after)
    assert result.error is None
    return result.out, result.calls


@pytest.mark.parametrize(
    ("total", "calls"), [(0, 1), (1, 1), (999, 1), (1000, 2), (2500, 3), (3000, 4)]
)
def test_n_records_cost_n_div_page_plus_one_calls(total: int, calls: int) -> None:
    """Paging stops at the first short page: N records take N // 1000 + 1 calls."""
    out, made = stream(HeadGrowingList(total), StreamCursor(fresh()), [])
    assert out == [f"old-{i}" for i in range(total)]
    assert made == calls == total // 1000 + 1


def test_offsets_step_by_the_page_size() -> None:
    """Requests go 0, 1000, 2000 with limit 1000."""
    cursor = StreamCursor(fresh())
    seen = []
    request = cursor.state.next_request()
    sizes = iter([1000, 1000, 500])
    while request is not None:
        seen.append(request)
        keys = [f"{request.offset}-{i}" for i in range(next(sizes))]
        cursor.begin_page(request, len(keys), keys, keys)
        request = cursor.next_request_after_page()
        cursor.end_page()
    assert seen == [page(0, 1000), page(1000, 1000), page(2000, 1000)]


def test_max_items_asks_the_last_page_only_for_what_is_missing() -> None:
    """max_items=2500 asks 1000, 1000, then 500, and stops without another call."""
    cursor = StreamCursor(fresh(max_items=2500))
    server = HeadGrowingList(10_000)
    requests = []
    request = cursor.state.next_request()
    while request is not None:
        requests.append(request)
        keys = server.page(request)
        _, new = cursor.begin_page(request, len(keys), keys, keys)
        for _ in new:
            cursor.consume()
        request = cursor.next_request_after_page()
        cursor.end_page()
    assert requests == [page(0, 1000), page(1000, 1000), page(2000, 500)]
    assert cursor.state.yielded == 2500
    assert cursor.state.done


def test_head_insert_between_pages_is_dropped_as_overlap() -> None:
    """Seven records inserted at the head shift page 2; its first seven are not yielded again."""
    server = HeadGrowingList(2500)
    out, calls = stream(server, StreamCursor(fresh()), [7, 0])
    assert out == [f"old-{i}" for i in range(2500)]
    assert calls == 3


def test_errors_entries_with_the_same_id_are_distinct_keys() -> None:
    """Two errors of one task differ as records; the same entry twice has one key."""
    base = {
        "id": "t1",
        "datetime": datetime(2022, 3, 27, 11, 54, 52, tzinfo=UTC),
        "function": "backlinks/live",
        "error_code": 50000,
        "error_message": "Internal Error.",
        "http_url": "https://api.dataforseo.com/v3/backlinks/live",
        "http_method": "POST",
        "http_code": 200,
        "http_time": 0.0,
        "http_response": "Internal Error.",
    }
    first = TaskError(**base)  # type: ignore[arg-type]
    second = TaskError(**{**base, "error_code": 40506})  # type: ignore[arg-type]
    assert record_key(first) != record_key(second)
    assert record_key(first) == record_key(TaskError(**base))  # type: ignore[arg-type]
    task = TaskId(
        id="t1",
        url="u",
        datetime_posted=base["datetime"],  # type: ignore[arg-type]
        datetime_done=None,
        status="Ok.",
        cost=0.0,
    )
    assert record_key(task) == "t1"


def test_state_round_trips_through_json() -> None:
    """to_json gives JSON types only, and from_json reads back an equal state."""
    state = PagerState(
        api="backlinks",
        function="errors",
        params={"filtered_function": "backlinks/live"},
        page_size=500,
        max_items=None,
        offset=1500,
        yielded=1490,
        seen=("a", "b"),
        head_grows=True,
        done=False,
    )
    text = json.dumps(state.to_json())
    assert PagerState.from_json(json.loads(text)) == state


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 99}, "unsupported resume state version 99"),
        ({"offset": "10"}, "resume state field 'offset' is missing or of the wrong type"),
        ({"offset": True}, "resume state field 'offset' is missing or of the wrong type"),
        ({"seen": [1]}, "resume state field 'seen' must hold strings"),
        ({"page_size": 0}, "resume state field 'page_size' must be 1..1000"),
        ({"max_items": 0}, "resume state field 'max_items' must be at least 1"),
        ({"offset": -1}, "resume state field 'offset' must not be negative"),
    ],
)
def test_bad_state_is_refused_with_the_field_named(change: dict[str, object], message: str) -> None:
    """A corrupted resume state raises ValueError naming what is wrong."""
    data = {**fresh().to_json(), **change}
    with pytest.raises(ValueError, match=message):
        PagerState.from_json(data)


def test_snapshot_mid_page_is_just_after_the_last_record_handed_over() -> None:
    """Stopped mid-page, the position is after the last record handed over, dups included."""
    cursor = StreamCursor(fresh(page_size=4))
    cursor.begin_page(page(0, 4), 4, ["a", "b", "c", "d"], ["a", "b", "c", "d"])
    cursor.end_page()
    _, new = cursor.begin_page(page(4, 4), 4, ["c", "d", "e", "f"], ["c", "d", "e", "f"])
    assert new == ["e", "f"]
    cursor.consume()
    mid = cursor.snapshot()
    assert (mid.offset, mid.yielded, mid.seen, mid.head_grows) == (
        7,
        5,
        ("a", "b", "c", "d", "e")[-4:],
        True,
    )
    assert mid.next_request() == page(7, 4)
    cursor.consume()
    assert cursor.snapshot() == cursor.end_page()
    assert (cursor.state.offset, cursor.state.seen) == (8, ("c", "d", "e", "f"))


def test_nulls_count_as_places_in_the_list() -> None:
    """A null entry (no record) still takes a place: the offset moves past it."""
    cursor = StreamCursor(fresh(page_size=4))
    cursor.begin_page(page(0, 4), 4, ["a", "b", "c"], ["a", "b", "c"], positions=[0, 2, 3])
    cursor.consume()
    cursor.consume()
    assert cursor.snapshot().offset == 3


def test_max_items_caps_the_records_even_when_pages_are_full() -> None:
    """A list seen to shift is asked in full pages; records past max_items are not yielded."""
    cursor = StreamCursor(attrs.evolve(fresh(page_size=5, max_items=7), head_grows=True))
    assert cursor.state.next_request() == page(0, 5)
    cursor.begin_page(page(0, 5), 5, list("abcde"), list("abcde"))
    assert cursor.next_request_after_page() == page(5, 5)
    cursor.end_page()
    _, new = cursor.begin_page(page(5, 5), 5, list("fghij"), list("fghij"))
    assert new == ["f", "g"]
    assert cursor.end_page().done


def test_overlap_window_follows_the_list_order() -> None:
    """Keys that came again take their new place; the window is the last page_size places."""
    cursor = StreamCursor(fresh(page_size=3, max_items=5))
    cursor.begin_page(page(0, 3), 3, ["a", "b", "c"], ["a", "b", "c"])
    cursor.end_page()
    assert cursor.begin_page(page(3, 2), 2, ["c", "d"], ["c", "d"])[1] == ["d"]
    state = cursor.end_page()
    assert state.seen == ("b", "c", "d")
    assert state.head_grows
    assert state.next_request() == page(5, 3)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 60),
    page_size=st.integers(1, 12),
    max_items=st.none() | st.integers(1, 70),
    inserts=st.lists(st.integers(0, 12), max_size=15),
)
def test_property_every_record_once_under_head_inserts(
    total: int, page_size: int, max_items: int | None, inserts: list[int]
) -> None:
    """Any size, page size, max_items and inserts of at most a page between calls: each once.

    The one way to fail is as many records inserted as the next call asks for: that page then
    holds nothing new, as a server ignoring offset would send, and the stream stops there.
    """
    result = run(HeadGrowingList(total), StreamCursor(fresh(page_size, max_items)), inserts)
    if result.error is None:
        check_exactly_once(result.out, total, max_items)
    else:
        check_no_repeats(result, page_size)


def check_exactly_once(out: list[str], total: int, max_items: int | None) -> None:
    """Every record present at the start comes once, in order; nothing comes twice.

    A record inserted at the head during the stream is new to it: it may come (once) when
    the offsets advance slower than the list grows, as with small max_items pages.
    """
    olds = [key for key in out if key.startswith("old-")]
    news = len(out) - len(olds)
    assert len(set(out)) == len(out)
    assert olds == [f"old-{i}" for i in range(len(olds))]
    limit = total + news if max_items is None else min(max_items, total + news)
    assert len(out) == limit


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 60),
    page_size=st.integers(1, 12),
    max_items=st.none() | st.integers(1, 70),
    cut=st.integers(0, 70),
    inserts=st.lists(st.integers(0, 12), max_size=15),
)
def test_property_resume_after_a_cut_anywhere_yields_the_rest_once(
    total: int, page_size: int, max_items: int | None, cut: int, inserts: list[int]
) -> None:
    """Stopping after any record and resuming from the JSON state loses and repeats nothing."""
    server = HeadGrowingList(total)
    cursor = StreamCursor(fresh(page_size, max_items))
    first = run(server, cursor, inserts, stop_after=cut)
    if first.error is not None:
        check_no_repeats(first, page_size)
        return
    state = PagerState.from_json(json.loads(json.dumps(cursor.snapshot().to_json())))
    rest = run(server, StreamCursor(state), inserts[first.calls :], yielded_before=first.out)
    if rest.error is None:
        check_exactly_once(first.out + rest.out, total, max_items)
    else:
        check_no_repeats(rest, page_size)
        assert len(set(first.out + rest.out)) == len(first.out + rest.out)


def check_no_repeats(result: Run, page_size: int) -> None:
    """A stream ended by the repeated-page rule: its last call came after records were
    inserted at the head and got a whole page of records yielded before; none came twice."""
    assert result.error is not None
    assert str(result.error).endswith(
        "records already yielded and nothing new: the server is not paging by offset (or the "
        "list grew at its head by a whole page); the stream's state is just before this page"
    )
    limit, inserted, stale = result.history[-1]
    assert (inserted >= limit, stale) == (True, True)
    assert len(set(result.out)) == len(result.out)


def test_a_whole_page_of_repeats_stops_the_stream_before_it() -> None:
    """A page's worth of records inserted before a call: an error, the position before it."""
    cursor = StreamCursor(fresh(page_size=10))
    result = run(HeadGrowingList(25), cursor, [10, 0, 0])
    assert result.out == [f"old-{i}" for i in range(10)]
    assert result.calls == 2
    assert str(result.error) == (
        "the page at offset 10 repeats 10 records already yielded and nothing new: the server "
        "is not paging by offset (or the list grew at its head by a whole page); the stream's "
        "state is just before this page"
    )
    assert (cursor.snapshot().offset, cursor.snapshot().yielded) == (10, 10)


def test_one_new_record_among_repeats_goes_on() -> None:
    """One record fewer than a page inserted: the page holds one new record, the stream goes on."""
    result = run(HeadGrowingList(25), StreamCursor(fresh(page_size=10)), [9, 0, 0])
    assert result.error is None
    assert result.out == [f"old-{i}" for i in range(25)]


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 60),
    page_size=st.integers(1, 12),
    max_items=st.none() | st.integers(1, 70),
)
def test_property_a_server_ignoring_offset_ends_the_stream(
    total: int, page_size: int, max_items: int | None
) -> None:
    """The same head page on every call: its records come once, then an error, not a loop."""
    result = run(OffsetIgnoringList(total), StreamCursor(fresh(page_size, max_items)), [])
    head = [f"old-{i}" for i in range(min(total, page_size, max_items or total))]
    assert result.out == head
    loops = total >= page_size and (max_items is None or max_items > page_size)
    if loops:
        second = page_size if max_items is None else min(page_size, max_items - page_size)
        assert str(result.error) == (
            f"the page at offset {page_size} repeats {second} records already yielded and "
            "nothing new: the server is not paging by offset (or the list grew at its head by a "
            "whole page); the stream's state is just before this page"
        )
        assert result.calls == 2
    else:
        assert result.error is None
        assert result.calls == 1


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 60),
    page_size=st.integers(1, 12),
    extra=st.integers(1, 5),
    max_items=st.none() | st.integers(1, 70),
)
def test_property_a_reply_longer_than_its_limit_ends_the_stream(
    total: int, page_size: int, extra: int, max_items: int | None
) -> None:
    """A page holding more records than asked for is an error at once; none of it is yielded."""
    result = run(OverfullList(total, extra), StreamCursor(fresh(page_size, max_items)), [])
    limit = min(page_size, max_items or page_size)
    if total <= limit:
        assert result.error is None
        assert result.out == [f"old-{i}" for i in range(total)]
        return
    sent = min(total, limit + extra)
    assert result.out == []
    assert result.calls == 1
    assert str(result.error) == (
        f"the server sent {sent} records for limit {limit} at offset 0: it is not paging as asked"
    )


@st.composite
def states(draw: st.DrawFn) -> PagerState:
    """Any position a stream can be at: page size, max_items, progress, keys seen, head growth."""
    page_size = draw(st.integers(1, 12))
    max_items = draw(st.none() | st.integers(1, 70))
    yielded = draw(st.integers(0, 70 if max_items is None else max_items))
    seen = draw(st.lists(st.sampled_from("abcdefghij"), max_size=page_size, unique=True))
    return attrs.evolve(
        fresh(page_size, max_items),
        offset=draw(st.integers(yielded, yielded + 30)),
        yielded=yielded,
        seen=tuple(seen),
        head_grows=draw(st.booleans()),
    )


@settings(max_examples=500, deadline=None)
@given(state=states(), data=st.data())
def test_property_the_early_request_is_the_request_after_the_page(
    state: PagerState, data: st.DataObject
) -> None:
    """Named before the records are built, the next request is the one the page leads to.

    For any position and any reply of at most the limit (records old or new): the early
    request is None with max_items, and otherwise equal to `next_request_after_page` after
    `begin_page` and to the state's `next_request` after `end_page`, unless `begin_page` ends
    the stream, which it does only for a full page.
    """
    request = state.next_request()
    if request is None:
        return
    keys = data.draw(
        st.lists(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), max_size=request.limit, unique=True)
    )
    cursor = StreamCursor(state)
    early = cursor.request_before_records(request, len(keys))
    if state.max_items is not None:
        assert early is None
    else:
        full = len(keys) == request.limit
        assert early == (page(request.offset + len(keys), state.page_size) if full else None)
    try:
        cursor.begin_page(request, len(keys), keys, keys)
    except PagingError:
        assert len(keys) == request.limit
        return
    after = cursor.next_request_after_page()
    if state.max_items is None:
        assert early == after
    assert cursor.end_page().next_request() == after


@settings(max_examples=200, deadline=None)
@given(state=states(), extra=st.integers(1, 5))
def test_property_the_early_request_refuses_an_overfull_reply(
    state: PagerState, extra: int
) -> None:
    """A reply longer than its limit is refused before any next request is named."""
    request = state.next_request()
    if request is None:
        return
    with pytest.raises(PagingError, match="it is not paging as asked"):
        StreamCursor(state).request_before_records(request, request.limit + extra)


def test_the_early_request_waits_for_the_records_when_max_items_is_set() -> None:
    """With max_items, a full page names no early request: the records decide if it is the last."""
    cursor = StreamCursor(fresh(page_size=3, max_items=6))
    assert cursor.request_before_records(page(0, 3), 3) is None
    plain = StreamCursor(fresh(page_size=3))
    assert plain.request_before_records(page(0, 3), 3) == page(3, 3)
    assert plain.request_before_records(page(0, 3), 2) is None
