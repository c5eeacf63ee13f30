"""The emulator's webhooks: tasks posted with webhook URLs, their failed deliveries, and
``POST /v3/appendix/webhook_resend`` with its validation and a log of what it resent.

A failed delivery is an ordinary ``errors`` entry under the function ``pingback_url`` or
``postback_url`` (several per task when it failed several times), so ``/v3/<api>/errors``
serves them with the rest. ``emu.webhooks`` is this module's `Webhooks`:

    task = emu.webhooks.post_task(pingback_url="https://hooks.example/p?id=$id")
    emu.webhooks.fail(task.id, "pingback", http_code=503)    # a newer errors entry
    emu.webhooks.fail_on_resend(task.id)                      # its next resend fails again
    hold = emu.webhooks.hold(call=2)                          # the 2nd call's reply waits
    ...
    assert [r.id for r in emu.webhooks.resent] == [...]        # what was delivered again

What the documentation leaves open is decided here, and `dfs_async`'s client assumes none of
it: more than 100 ids is refused at the envelope (40000); per task, a field other than ``id``
is 40506, a malformed id 40501, an unknown (or expired) id 40400, and a task posted without a
webhook 40501. A refused task carries a fresh id of its own and the posted ``id`` in ``data``;
a resent one carries its own id, ``20100 Task Created.`` and the original task's parameters.
The webhook failures of every API are listed by every API's ``errors``, as the emulator's other
errors entries are.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from . import _data

__all__ = ["ROUTE", "Hold", "Resent", "WebhookTask", "Webhooks"]

ROUTE: Final = ("appendix", "webhook_resend")
MAX_IDS: Final = 100
VERSION: Final = "0.1.20240801"

_TASK_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TOO_MANY: Final = (40000, "You can set only 100 tasks at a time.")
_CREATED: Final = (20100, "Task Created.")
_INVALID_ID: Final = (40501, "Invalid Field: 'id'.")
_NOT_FOUND: Final = (40400, "Not Found.")
_NO_WEBHOOK: Final = (
    40501,
    "Invalid Field: 'id'. The task was set without pingback_url or postback_url.",
)

_FUNCTIONS: Final = {"pingback": "pingback_url", "postback": "postback_url"}
# What a failing webhook server answers: (HTTP code, response); 0 is "could not connect".
_FAILURES: Final = (
    (500, "Internal Server Error"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Gateway Timeout"),
    (404, "Not Found"),
    (0, "Connection timed out"),
)
_KEYWORDS: Final = ("coffee beans", "running shoes", "python asyncio", "garden hose", "seo api")
_UNIQUE_BASE: Final = 2 << 40  # away from the ids the emulator gives its own replies


@attrs.frozen(kw_only=True)
class WebhookTask:
    """A task posted with (or without) webhook URLs, as ``webhook_resend`` knows it."""

    id: str
    api: str
    function: str
    #: What was posted, webhook URLs included.
    data: Mapping[str, Any]

    @property
    def urls(self) -> dict[str, str]:
        """``{"pingback": url, "postback": url}`` for the webhooks it has ($id filled in)."""
        return {
            kind: str(self.data[field]).replace("$id", self.id)
            for kind, field in _FUNCTIONS.items()
            if self.data.get(field)
        }


@attrs.frozen(kw_only=True)
class Resent:
    """One task whose webhooks a ``webhook_resend`` call delivered again (the resend log)."""

    #: The webhook_resend call (1-based, counting the calls that reached the ids).
    call: int
    id: str
    #: The URLs delivered to, by kind.
    urls: Mapping[str, str]
    #: The emulator's clock at the resend.
    at: datetime


class Hold:
    """Keeps one call's reply back, after the resend was done, until `release`."""

    def __init__(self, call: int) -> None:
        self.call = call
        #: Set when the held call has been handled and its reply is waiting.
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def _wait(self, closing: asyncio.Event) -> bool:
        """Until released; True if the emulator closes first."""
        self.arrived.set()
        waiters = [
            asyncio.ensure_future(self._released.wait()),
            asyncio.ensure_future(closing.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return closing.is_set() and not self._released.is_set()


def _api_datetime(moment: datetime) -> str:
    return _data.format_api_datetime(int(moment.timestamp()))


class Webhooks:
    """The webhook side of one emulator: its tasks, their failures, the resend log."""

    def __init__(
        self,
        *,
        add_error: Callable[[dict[str, Any]], None],
        now: Callable[[], datetime],
        new_task_id: Callable[[], str],
        seed: int = 0,
    ) -> None:
        self._add_error = add_error
        self._now = now
        self._new_task_id = new_task_id
        self._rng = random.Random(f"dfs-async-webhooks-{seed}")
        self._posted = 0
        self._fail_on_resend: dict[str, list[tuple[str, int, str]]] = {}
        self._holds: dict[int, Hold] = {}
        self._pending: Hold | None = None
        self.tasks: dict[str, WebhookTask] = {}
        #: The resend log, in the order the resends were made.
        self.resent: list[Resent] = []
        #: The errors entries added here (every failed delivery), oldest first.
        self.failures: list[dict[str, Any]] = []
        #: webhook_resend calls that reached the ids.
        self.calls = 0

    # -- data ------------------------------------------------------------------------------

    def post_task(
        self,
        *,
        api: str = "serp",
        function: str = "task_post",
        pingback_url: str | None = None,
        postback_url: str | None = None,
        posted: datetime | None = None,
        **params: Any,
    ) -> WebhookTask:
        """A task the account posted (with these webhook URLs, or none), with a fresh id."""
        moment = posted if posted is not None else self._now()
        self._posted += 1
        ident = _data.task_id(
            int(moment.timestamp()), self._rng.getrandbits(32), _UNIQUE_BASE + self._posted
        )
        data: dict[str, Any] = {
            "keyword": self._rng.choice(_KEYWORDS),
            "location_code": 2840,
            "language_code": "en",
            **params,
        }
        if pingback_url is not None:
            data["pingback_url"] = pingback_url
        if postback_url is not None:
            data["postback_url"] = postback_url
            data.setdefault("postback_data", "regular")
        task = WebhookTask(id=ident, api=api, function=function, data=data)
        self.tasks[ident] = task
        return task

    def fail(
        self,
        task_id: str,
        kind: str = "pingback",
        *,
        at: datetime | None = None,
        http_code: int = 500,
        http_response: str | None = None,
    ) -> dict[str, Any]:
        """One failed delivery of the task's `kind` webhook at `at` (default: now), as an
        errors entry; returns it. The task may be unknown here (then the URL is made up)."""
        function = _FUNCTIONS.get(kind)
        if function is None:
            raise ValueError(f"kind must be 'pingback' or 'postback', got {kind!r}")
        moment = at if at is not None else self._now()
        if moment.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        task = self.tasks.get(task_id)
        url = (
            task.urls.get(kind) if task is not None else None
        ) or f"https://hooks.example.com/{kind}?id={task_id}"
        if http_response is None:
            http_response = dict(_FAILURES).get(http_code, "Error")
        entry = {
            "id": task_id,
            "datetime": _api_datetime(moment),
            "function": function,
            # What DataForSEO puts here for a webhook failure is not documented: the emulator
            # repeats the HTTP code (0: no connection).
            "error_code": http_code,
            "error_message": f"{function}: HTTP {http_code}" if http_code else http_response,
            "http_url": url,
            "http_method": "GET" if kind == "pingback" else "POST",
            "http_code": http_code,
            "http_time": round(self._rng.random() * 3, 4),
            "http_response": http_response,
        }
        self.failures.append(entry)
        self._add_error(entry)
        return entry

    def fail_on_resend(
        self, task_id: str, kind: str = "pingback", *, times: int = 1, http_code: int = 503
    ) -> None:
        """The next `times` resends of this task fail again: each adds a newer errors entry."""
        if kind not in _FUNCTIONS:
            raise ValueError(f"kind must be 'pingback' or 'postback', got {kind!r}")
        response = dict(_FAILURES).get(http_code, "Error")
        self._fail_on_resend.setdefault(task_id, []).extend([(kind, http_code, response)] * times)

    def forget(self, task_id: str) -> None:
        """The task expires: its errors entries stay, a resend of it is refused as unknown."""
        del self.tasks[task_id]

    def hold(self, call: int) -> Hold:
        """Hold the reply of webhook_resend call number `call` (its resends are done first)."""
        if call <= self.calls:
            raise ValueError(f"call {call} was already made")
        hold = self._holds[call] = Hold(call)
        return hold

    def seed_failures(
        self,
        *,
        tasks: int,
        failures: int,
        since: datetime,
        until: datetime,
        expired: int = 0,
        api: str = "serp",
    ) -> list[WebhookTask]:
        """`tasks` tasks with webhooks and `failures` failed deliveries among them, at random
        times in [since, until]: every task fails at least once; a third have both webhooks
        and some of those fail in both; the rest of the failures repeat a task. Then
        `expired` more tasks that failed once and are forgotten (a resend is refused 40400).
        Deterministic for the emulator's seed."""
        if failures < tasks:
            raise ValueError("failures must be at least tasks: each task fails at least once")
        span = int((until - since).total_seconds())
        rng = self._rng

        def moment() -> datetime:
            return since + timedelta(seconds=rng.randrange(span + 1))

        def failing(task: WebhookTask, kind: str) -> None:
            code, response = rng.choice(_FAILURES)
            self.fail(task.id, kind, at=moment(), http_code=code, http_response=response)

        made: list[WebhookTask] = []
        failed_kinds: dict[str, set[str]] = {}
        for index in range(tasks + expired):
            shape = index % 3
            task = self.post_task(
                api=api,
                posted=since,
                pingback_url=f"https://hooks.example.com/pingback?id=$id&job={index}"
                if shape != 2
                else None,
                postback_url=f"https://hooks.example.com/postback?job={index}"
                if shape != 1
                else None,
            )
            kind = rng.choice(sorted(task.urls))
            failing(task, kind)
            failed_kinds[task.id] = {kind}
            made.append(task)
        for task in made[tasks:]:
            self.forget(task.id)
        for _ in range(failures - tasks):
            task = made[rng.randrange(tasks)]
            unfailed = sorted(set(task.urls) - failed_kinds[task.id])
            kind = unfailed[0] if unfailed else rng.choice(sorted(task.urls))
            failed_kinds[task.id].add(kind)
            failing(task, kind)
        return made

    # -- the endpoint ----------------------------------------------------------------------

    def answer(self, posted: Sequence[Mapping[str, Any]], started: float) -> tuple[int, bytes]:
        """The reply to a webhook_resend call (a non-empty list of objects): its code, body."""
        if len(posted) > MAX_IDS:
            return _TOO_MANY[0], _encode(_envelope(*_TOO_MANY, started, tasks=None))
        self.calls += 1
        call = self.calls
        self._pending = self._holds.pop(call, None)
        tasks = [self._one(call, sent, started) for sent in posted]
        errors = sum(1 for task in tasks if task["status_code"] != _CREATED[0])
        return 20000, _encode(_envelope(20000, "Ok.", started, tasks=tasks, errors=errors))

    def _one(self, call: int, sent: Mapping[str, Any], started: float) -> dict[str, Any]:
        unknown = [name for name in sent if name != "id"]
        ident = sent.get("id")
        refusal: tuple[int, str] | None = None
        task = self.tasks.get(ident) if isinstance(ident, str) else None
        if unknown:
            refusal = (40506, f"Unknown Fields in POST Data: {', '.join(unknown)}.")
        elif not isinstance(ident, str) or _TASK_ID.fullmatch(ident) is None:
            refusal = _INVALID_ID
        elif task is None:
            refusal = _NOT_FOUND
        elif not task.urls:
            refusal = _NO_WEBHOOK
        if refusal is not None or task is None:
            code, message = refusal or _NOT_FOUND
            return _task(
                self._new_task_id(),
                code,
                message,
                started,
                {"api": "appendix", "function": "webhook_resend", **sent},
            )
        now = self._now()
        self.resent.append(Resent(call=call, id=task.id, urls=task.urls, at=now))
        again = self._fail_on_resend.get(task.id)
        if again:
            kind, http_code, response = again.pop(0)
            if kind in task.urls:
                self.fail(task.id, kind, at=now, http_code=http_code, http_response=response)
        data = {"api": task.api, "function": task.function, **task.data}
        return _task(task.id, *_CREATED, started, data)

    async def held(self, closing: asyncio.Event) -> bool:
        """After `answer`: wait if this call's reply is held; True if the emulator closed."""
        hold, self._pending = self._pending, None
        if hold is None:
            return False
        return await hold._wait(closing)


def _elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.4f} sec."


def _task(
    ident: str, code: int, message: str, started: float, data: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "id": ident,
        "status_code": code,
        "status_message": message,
        "time": _elapsed(started),
        "cost": 0,
        "result_count": 0,
        "path": ["v3", *ROUTE],
        "data": dict(data),
        "result": None,
    }


def _envelope(
    code: int,
    message: str,
    started: float,
    *,
    tasks: list[dict[str, Any]] | None,
    errors: int = 0,
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "status_code": code,
        "status_message": message,
        "time": _elapsed(started),
        "cost": 0,
        "tasks_count": 0 if tasks is None else len(tasks),
        "tasks_error": errors,
        "tasks": tasks,
    }


def _encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
