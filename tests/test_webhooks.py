"""Recovering lost webhooks: the pure rules, then the client against the emulator over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dfs_async
from dfs_async._webhooks import (
    WEBHOOK_RESEND_PATH,
    batches,
    check_task_ids,
    encode_resend_body,
    latest_failures,
    read_outcomes,
    webhook_functions,
)
from dfs_async.testing import Emulator, Fault

UTC = timezone.utc
LOGIN = "hooks@example.com"
PASSWORD = "s3cret-Pa55word"
AUTH = f"{LOGIN}:{PASSWORD}".encode()
EXAMPLE_ID = "03271154-0001-0267-0000-0770a8d8e073"  # from the errors documentation
UNKNOWN_ID = "08161139-0001-0066-1000-06491d097ed5"  # from the webhook_resend documentation
DAY = timedelta(days=1)

hex_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(
    lambda h: f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
)


def task_id(n: int) -> str:
    """A well-formed task id, distinct for each n."""
    return f"11301200-1535-0001-0000-{n:012x}"


def entry(ident: str, when: datetime, **fields: Any) -> dfs_async.TaskError:
    """An errors entry of a failed pingback."""
    values: dict[str, Any] = {
        "id": ident,
        "datetime": when,
        "function": "pingback_url",
        "error_code": 500,
        "error_message": "pingback_url: HTTP 500",
        "http_url": f"https://hooks.example.com/pingback?id={ident}",
        "http_method": "GET",
        "http_code": 500,
        "http_time": 0.5,
        "http_response": "Internal Server Error",
        **fields,
    }
    return dfs_async.TaskError(**values)


def reply(tasks: Any, *, code: int = 20000, http_status: int = 200) -> dict[str, Any]:
    """The arguments of read_outcomes for this envelope."""
    body = {
        "version": "0.1.20210818",
        "status_code": code,
        "status_message": "Ok." if code == 20000 else "Refused.",
        "time": "0.1337 sec.",
        "cost": 0,
        "tasks_count": 0 if tasks is None else len(tasks),
        "tasks_error": 0,
        "tasks": tasks,
    }
    return {
        "endpoint": WEBHOOK_RESEND_PATH,
        "http_status": http_status,
        "headers": {},
        "body": json.dumps(body).encode(),
    }


def resent_task(ident: str) -> dict[str, Any]:
    """A task of the documentation's example reply: resent."""
    return {
        "id": ident,
        "status_code": 20100,
        "status_message": "Task Created.",
        "time": "0.0082 sec.",
        "cost": 0,
        "result_count": 0,
        "path": ["v3", "appendix", "webhook_resend"],
        "data": {"api": "serp", "function": "task_post", "pingback_url": "https://x/?id=$id"},
        "result": None,
    }


def refused_task(own_id: str, sent_id: str | None, code: int = 40400) -> dict[str, Any]:
    """A refused task that carries an id of its own (and, if given, the sent id in data)."""
    data: dict[str, Any] = {"api": "appendix", "function": "webhook_resend"}
    if sent_id is not None:
        data["id"] = sent_id
    return {
        **resent_task(own_id),
        "status_code": code,
        "status_message": "Not Found.",
        "data": data,
    }


# -- ids and batches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_ids", "message"),
    [
        (
            ["03271154-0001-0267-0000-0770A8D8E073"],
            r"task_ids\[0\] is not a DataForSEO task id: '03",
        ),
        ([EXAMPLE_ID, "03271154-0001-0267-0000"], r"task_ids\[1\] is not a DataForSEO task id"),
        ([EXAMPLE_ID, 42], r"task_ids\[1\] is not a DataForSEO task id: int; expected 36"),
        ([" " + EXAMPLE_ID], r"task_ids\[0\]"),
        (EXAMPLE_ID, r"task_ids must be an iterable of task id strings .*got str"),
        (EXAMPLE_ID.encode(), r"got bytes"),
        (7, r"got int"),
    ],
)
def test_task_ids_that_do_not_look_like_task_ids_are_refused(task_ids: Any, message: str) -> None:
    """A malformed id (or a bare string) is an InvalidArgumentError naming it and the form."""
    with pytest.raises(dfs_async.InvalidArgumentError, match=message):
        check_task_ids(task_ids)


def test_a_long_bad_id_is_quoted_bounded() -> None:
    """The message quotes at most a couple of hundred characters of a bad value."""
    with pytest.raises(dfs_async.InvalidArgumentError) as caught:
        check_task_ids(["x" * 10_000])
    assert len(str(caught.value)) < 400


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([task_id(n) for n in range(30)]), max_size=80))
def test_each_id_once_in_the_order_first_given(ids: list[str]) -> None:
    """Duplicates are dropped, the first occurrence keeps its place."""
    unique = check_task_ids(ids)
    assert unique == list(dict.fromkeys(ids))
    assert len(unique) == len(set(ids))


@settings(max_examples=300, deadline=None)
@given(st.lists(hex_ids, max_size=450, unique=True), st.integers(min_value=1, max_value=150))
def test_batches_cover_every_id_once_in_full_calls(ids: list[str], size: int) -> None:
    """Batches concatenate to the ids; all but the last are full; ceil(n/size) of them."""
    cut = batches(ids, size)
    assert [ident for batch in cut for ident in batch] == ids
    assert len(cut) == math.ceil(len(ids) / size)
    assert all(len(batch) == size for batch in cut[:-1])
    assert all(1 <= len(batch) <= size for batch in cut)


def test_the_body_has_one_object_per_id() -> None:
    """Each id is its own task object, as the endpoint asks."""
    assert json.loads(encode_resend_body([EXAMPLE_ID, UNKNOWN_ID])) == [
        {"id": EXAMPLE_ID},
        {"id": UNKNOWN_ID},
    ]


def test_kind_names_the_functions_and_a_bad_one_is_refused() -> None:
    """pingback/postback/both map to the errors functions; anything else is refused."""
    assert webhook_functions("both") == ("pingback_url", "postback_url")
    assert webhook_functions("postback") == ("postback_url",)
    with pytest.raises(dfs_async.InvalidArgumentError, match="kind must be 'pingback'"):
        webhook_functions("pingback_url")


# -- reading replies ---------------------------------------------------------------------------


def test_the_documentations_reply_is_three_resent_outcomes() -> None:
    """The example's three 20100 tasks are three resent outcomes, with the echoed data."""
    sent = [
        "08161139-0001-0066-1000-06491d097ed5",
        "08161340-0001-0066-1000-8b091c84af4f",
        "08161703-0001-0066-1000-597aa65619fc",
    ]
    outcomes = read_outcomes(**reply([resent_task(i) for i in sent]), sent=sent)
    assert [(o.id, o.resent, o.status_code, o.status_message) for o in outcomes] == [
        (i, True, 20100, "Task Created.") for i in sent
    ]
    assert outcomes[0].data == {
        "api": "serp",
        "function": "task_post",
        "pingback_url": "https://x/?id=$id",
    }


def test_refused_tasks_with_ids_of_their_own_are_matched_by_data_then_position() -> None:
    """A refusal is that id's alone: matched by data.id, else by the place it holds."""
    sent = [task_id(1), task_id(2), task_id(3), task_id(4)]
    tasks = [
        refused_task(task_id(90), sent_id=None, code=40501),  # no echo: by position
        resent_task(task_id(2)),
        refused_task(task_id(91), sent_id=task_id(3)),  # echoed in data
        resent_task(task_id(4)),
    ]
    outcomes = read_outcomes(**reply(tasks), sent=sent)
    assert [(o.id, o.status_code) for o in outcomes] == [
        (task_id(1), 40501),
        (task_id(2), 20100),
        (task_id(3), 40400),
        (task_id(4), 20100),
    ]
    assert [o.resent for o in outcomes] == [False, True, False, True]


@settings(max_examples=200, deadline=None)
@given(st.lists(hex_ids, min_size=1, max_size=100, unique=True), st.randoms())
def test_tasks_in_any_order_come_back_in_the_order_sent(
    sent: list[str], rng: random.Random
) -> None:
    """Tasks that report their id are matched by it, whatever order the reply keeps."""
    tasks = [
        resent_task(i) if n % 3 else refused_task(task_id(n), sent_id=i) for n, i in enumerate(sent)
    ]
    rng.shuffle(tasks)
    outcomes = read_outcomes(**reply(tasks), sent=sent)
    assert [o.id for o in outcomes] == sent
    assert [o.resent for o in outcomes] == [bool(n % 3) for n in range(len(sent))]


@pytest.mark.parametrize(
    ("tasks", "path", "message"),
    [
        (None, "$.tasks", "expected a list of 2 tasks, one per id sent"),
        ([resent_task(task_id(1))], "$.tasks", "expected 2 tasks, one per id sent, got 1"),
        (
            [resent_task(task_id(1)), resent_task(task_id(1))],
            "$.tasks[1].id",
            f"task id {task_id(1)} is reported by two tasks",
        ),
        ([resent_task(task_id(1)), "Ok."], "$.tasks[1]", "expected a task object"),
        (
            [resent_task(task_id(1)), {**resent_task(task_id(2)), "status_code": "20100"}],
            "$.tasks[1].status_code",
            "the task has no integer status_code",
        ),
    ],
)
def test_a_reply_that_does_not_account_for_every_id_is_a_decode_error(
    tasks: Any, path: str, message: str
) -> None:
    """No outcome is guessed: the error names the field and keeps the raw body."""
    with pytest.raises(dfs_async.DecodeError) as caught:
        read_outcomes(**reply(tasks), sent=[task_id(1), task_id(2)])
    assert caught.value.path == path
    assert message in str(caught.value)
    assert caught.value.raw.startswith('{"version"')


@pytest.mark.parametrize(
    ("code", "http_status", "error"),
    [
        (40202, 200, dfs_async.RateLimitedError),
        (50000, 200, dfs_async.ServerError),
        (40000, 200, dfs_async.InvalidRequestError),
        (40100, 401, dfs_async.AuthenticationError),
    ],
)
def test_an_envelope_error_raises_as_for_every_endpoint(
    code: int, http_status: int, error: type[dfs_async.APIError]
) -> None:
    """The envelope is read by the common rules: its code decides the exception."""
    with pytest.raises(error) as caught:
        read_outcomes(**reply(None, code=code, http_status=http_status), sent=[task_id(1)])
    assert caught.value.endpoint == WEBHOOK_RESEND_PATH


# -- the latest failure per task ---------------------------------------------------------------


T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

entries_strategy = st.lists(
    st.builds(
        lambda n, seconds, code, function: entry(
            task_id(n), T0 + timedelta(seconds=seconds), http_code=code, function=function
        ),
        st.integers(min_value=0, max_value=6),
        st.integers(min_value=0, max_value=5),  # few distinct seconds: many ties
        st.sampled_from([0, 404, 500, 503]),
        st.sampled_from(["pingback_url", "postback_url"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(entries_strategy, st.randoms())
def test_one_per_task_with_its_latest_failure_whatever_the_order(
    entries: list[dfs_async.TaskError], rng: random.Random
) -> None:
    """One FailedWebhook per task: newest entry, its count, ties counted; order-independent."""
    failed = latest_failures(entries)
    shuffled = list(entries)
    rng.shuffle(shuffled)
    assert latest_failures(shuffled) == failed
    assert [f.id for f in failed] == list(dict.fromkeys(f.id for f in failed))
    assert {f.id for f in failed} == {e.id for e in entries}
    for item in failed:
        mine = [e for e in entries if e.id == item.id]
        newest = max(e.datetime for e in mine)
        assert item.failed_attempts == len(mine)
        assert item.latest in mine
        assert item.latest.datetime == newest
        assert item.attempts_at_latest == sum(e.datetime == newest for e in mine)
    assert sum(f.failed_attempts for f in failed) == len(entries)
    assert [f.latest.datetime for f in failed] == sorted(
        (f.latest.datetime for f in failed), reverse=True
    )


def test_two_failures_of_one_task_are_one_entry_with_a_count_of_two() -> None:
    """The documentation's pattern (one id, two entries) gives one task, two attempts."""
    older, newer = entry(EXAMPLE_ID, T0), entry(EXAMPLE_ID, T0 + DAY / 24, http_code=503)
    [item] = latest_failures([newer, older])
    assert (item.latest, item.failed_attempts, item.attempts_at_latest) == (newer, 2, 1)


# -- against the emulator ----------------------------------------------------------------------


def client_for(emu: Emulator, **kwargs: Any) -> dfs_async.Client:
    kwargs.setdefault("retry", dfs_async.Retry(initial=0.01, maximum=0.05))
    return dfs_async.Client(LOGIN, PASSWORD, base_url=emu.url, **kwargs)


def resend_calls(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.path == WEBHOOK_RESEND_PATH]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator whose clock is this machine's, without a rate limit."""
    async with Emulator(LOGIN, PASSWORD, n_tasks=10, n_errors=40, seed=5, rate_limit=None) as emu:
        yield emu


async def test_250_failures_over_180_tasks_are_resent_in_2_calls_each_task_once(
    emulator: Emulator,
) -> None:
    """The done-when: 180 tasks found once each; 2 calls of <= 100; refusals beside resends."""
    now = datetime.now(UTC)
    emulator.webhooks.seed_failures(
        tasks=180, failures=250, since=now - 20 * DAY / 24, until=now - timedelta(minutes=1)
    )
    kinds: dict[str, Counter[str]] = {}
    for failure in emulator.webhooks.failures:
        kinds.setdefault(failure["id"], Counter())[failure["function"]] += 1
    assert len(emulator.webhooks.failures) == 250
    assert any(len(k) == 2 for k in kinds.values())  # some failed in both kinds
    assert any(max(k.values()) >= 2 for k in kinds.values())  # some failed twice
    bare = emulator.webhooks.post_task()  # posted without a webhook
    async with client_for(emulator) as client:
        failed = await client.api("serp").failed_webhooks(datetime_from=now - DAY)
        ids = [f.id for f in failed]
        outcomes = await client.webhook_resend([*ids, UNKNOWN_ID, bare.id, *ids[:5]])
    assert sorted(ids) == sorted(kinds)
    assert {f.id: f.failed_attempts for f in failed} == {
        i: sum(k.values()) for i, k in kinds.items()
    }
    calls = resend_calls(emulator)
    assert [len(r.body) for r in calls] == [100, 82]
    assert sorted(r.id for r in emulator.webhooks.resent) == sorted(ids)  # each task once
    assert [o.id for o in outcomes] == [*ids, UNKNOWN_ID, bare.id]
    assert {o.id for o in outcomes if o.resent} == set(ids)
    refused = [(o.id, o.status_code, o.status_message) for o in outcomes if not o.resent]
    assert refused == [
        (UNKNOWN_ID, 40400, "Not Found."),
        (
            bare.id,
            40501,
            "Invalid Field: 'id'. The task was set without pingback_url or postback_url.",
        ),
    ]
    assert {r.path for r in emulator.requests} == {
        "/v3/serp/errors",
        WEBHOOK_RESEND_PATH,
    }


async def test_failed_webhooks_reads_one_kind_in_one_window(emulator: Emulator) -> None:
    """kind='postback' asks only postback_url, with one fixed window end; others are left out."""
    now = datetime.now(UTC)
    task = emulator.webhooks.post_task(
        pingback_url="https://h/p?id=$id", postback_url="https://h/q"
    )
    emulator.webhooks.fail(task.id, "pingback", at=now - timedelta(hours=2))
    emulator.webhooks.fail(task.id, "postback", at=now - timedelta(hours=3), http_code=0)
    emulator.webhooks.fail(task.id, "postback", at=now - timedelta(hours=1), http_code=404)
    async with client_for(emulator) as client:
        [item] = await client.backlinks.failed_webhooks(kind="postback", datetime_from=now - DAY)
    assert (item.id, item.failed_attempts, item.latest.http_code) == (task.id, 2, 404)
    assert item.latest.http_url == "https://h/q"
    assert item.latest.http_method == "POST"
    assert [r.body[0]["filtered_function"] for r in emulator.requests] == ["postback_url"]


async def test_no_ids_cost_nothing_and_bad_arguments_fail_before_any_call(
    emulator: Emulator,
) -> None:
    """An empty list makes no call; a bad id, kind or window raises before any call."""
    async with client_for(emulator) as client:
        resend = client.webhook_resend([])
        assert resend.calls == 0
        assert await resend == []
        with pytest.raises(dfs_async.InvalidArgumentError, match=r"task_ids\[1\]"):
            client.webhook_resend([EXAMPLE_ID, "nope"])
        with pytest.raises(dfs_async.InvalidArgumentError, match="kind must be"):
            await client.backlinks.failed_webhooks(kind="pingbacks")
        with pytest.raises(dfs_async.InvalidArgumentError, match="more than 7 days ago"):
            await client.backlinks.failed_webhooks(datetime_from=client.now() - 8 * DAY)
        with pytest.raises(dfs_async.InvalidArgumentError, match="no errors endpoint"):
            await client.api("content_analysis").failed_webhooks()
    assert emulator.requests == []


async def test_iterating_keeps_the_outcomes_of_calls_before_a_failure(emulator: Emulator) -> None:
    """async for: the first call's 100 outcomes arrive before the second call's refusal raises."""
    tasks = [emulator.webhooks.post_task(pingback_url="https://h/?id=$id") for _ in range(150)]
    emulator.inject(2, Fault.envelope_error(40200, "Payment Required."))
    got: list[dfs_async.WebhookResendOutcome] = []

    async def collect(resend: dfs_async.WebhookResend) -> None:
        async for outcome in resend:
            got.append(outcome)

    async with client_for(emulator) as client:
        with pytest.raises(dfs_async.AuthenticationError, match="40200"):
            await collect(client.webhook_resend(t.id for t in tasks))
    assert [o.id for o in got] == [t.id for t in tasks[:100]]
    assert all(o.resent for o in got)


async def test_a_transient_failure_is_retried_through_the_same_call_path(
    emulator: Emulator,
) -> None:
    """An HTTP 503 before the ids were read is retried; the ids are resent once."""
    tasks = [emulator.webhooks.post_task(postback_url="https://h/q") for _ in range(3)]
    emulator.inject(1, Fault.http_status(503))
    async with client_for(emulator) as client:
        outcomes = await client.webhook_resend([t.id for t in tasks])
        assert client.stats.retries == 1
    assert [o.resent for o in outcomes] == [True] * 3
    assert [r.http_status for r in resend_calls(emulator)] == [503, 200]
    assert [r.id for r in emulator.webhooks.resent] == [t.id for t in tasks]


async def test_a_resend_is_single_use(emulator: Emulator) -> None:
    """Running the same WebhookResend twice raises instead of resending twice."""
    task = emulator.webhooks.post_task(pingback_url="https://h/?id=$id")
    async with client_for(emulator) as client:
        resend = client.webhook_resend([task.id])
        assert resend.ids == (task.id,)
        await resend
        with pytest.raises(RuntimeError, match="single-use"):
            await resend
    assert len(emulator.webhooks.resent) == 1


@pytest.mark.looptime
async def test_webhook_resend_has_its_own_limiter_at_10_a_minute() -> None:
    """12 calls at the default 10/60 s: the 11th waits a minute; id_list is not held by them."""
    async with (
        Emulator(LOGIN, PASSWORD, n_tasks=1000, rate_limit=(10, 60.0)) as emu,
        client_for(emu) as client,
    ):
        tasks = [emu.webhooks.post_task(pingback_url="https://h/?id=$id") for _ in range(1200)]
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def stream() -> int:
            since = client.now() - timedelta(days=170)
            return len([t async for t in client.backlinks.id_list(since, page_size=100)])

        outcomes, streamed = await asyncio.gather(
            client.webhook_resend(t.id for t in tasks), stream()
        )
    assert (len(outcomes), streamed) == (1200, 1000)
    calls = resend_calls(emu)
    assert [r.status_code for r in calls] == [20000] * 12
    assert calls[10].time - started == pytest.approx(60.0, abs=0.5)
    assert emu.max_calls_in_window(WEBHOOK_RESEND_PATH, 60.0) == 10
    id_list_times = [r.time - started for r in emu.requests if r.path.endswith("id_list")]
    assert len(id_list_times) == 11
    assert id_list_times[9] < 1.0  # ten id_list calls at once, despite the resend calls


# -- the emulator's endpoint, spoken to directly ------------------------------------------------


async def post_raw(emu: Emulator, body: Any) -> dict[str, Any]:
    """POST a body the client would refuse to send; the decoded reply."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            emu.url + WEBHOOK_RESEND_PATH,
            json=body,
            headers={"Authorization": "Basic " + base64.b64encode(AUTH).decode()},
        ) as response,
    ):
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


async def test_the_emulator_validates_each_task_and_the_count(emulator: Emulator) -> None:
    """Over 100 ids: 40000 at the envelope; per task 40506, 40501, 40400, 40501, 20100."""
    hooked = emulator.webhooks.post_task(pingback_url="https://h/?id=$id")
    bare = emulator.webhooks.post_task()
    too_many = await post_raw(emulator, [{"id": task_id(n)} for n in range(101)])
    assert (too_many["status_code"], too_many["tasks"]) == (40000, None)
    mixed = await post_raw(
        emulator,
        [
            {"id": hooked.id, "tag": "x"},
            {"id": "not-an-id"},
            {"id": UNKNOWN_ID},
            {"id": bare.id},
            {"id": hooked.id},
        ],
    )
    assert mixed["status_code"] == 20000
    assert mixed["tasks_error"] == 4
    assert [t["status_code"] for t in mixed["tasks"]] == [40506, 40501, 40400, 40501, 20100]
    assert mixed["tasks"][2]["data"] == {
        "api": "appendix",
        "function": "webhook_resend",
        "id": UNKNOWN_ID,
    }
    assert mixed["tasks"][2]["id"] != UNKNOWN_ID  # a refused task has an id of its own
    assert mixed["tasks"][4]["id"] == hooked.id
    assert mixed["tasks"][4]["data"]["pingback_url"] == "https://h/?id=$id"
    assert [(r.call, r.id, dict(r.urls)) for r in emulator.webhooks.resent] == [
        (1, hooked.id, {"pingback": f"https://h/?id={hooked.id}"})
    ]


async def test_a_resend_made_to_fail_again_is_a_newer_errors_entry(emulator: Emulator) -> None:
    """fail_on_resend: after the resend, errors lists a newer failure of that task."""
    now = datetime.now(UTC)
    task = emulator.webhooks.post_task(pingback_url="https://h/?id=$id")
    emulator.webhooks.fail(task.id, at=now - timedelta(hours=5))
    emulator.webhooks.fail_on_resend(task.id, http_code=502)
    async with client_for(emulator) as client:
        [before] = await client.api("serp").failed_webhooks(datetime_from=now - DAY)
        [outcome] = await client.webhook_resend([task.id])
        [after] = await client.api("serp").failed_webhooks(datetime_from=now - DAY)
    assert outcome.resent
    assert (before.failed_attempts, after.failed_attempts) == (1, 2)
    assert after.latest.datetime > before.latest.datetime
    assert (after.latest.http_code, after.latest.http_response) == (502, "Bad Gateway")
