"""End to end with the limit lifted: how much the client costs when the quota is not the pace.

200,000 task IDs from the emulator, run as a separate process (its CPU is not billed to the
client), by three consumers that each count the IDs they get:

- dfs-async: `Client(..., rate_limit=RateLimit(calls=1_000_000, period=1.0))` and
  ``async for task in client.backlinks.id_list(...)`` -- typed, checked records, paging,
  retries, resumable state, the limiter, the one-page prefetch.
- A hand-written loop: one aiohttp session, orjson, ``offset += len(result)`` until a short
  page -- untyped dicts and no checks, the floor of any client in Python.
- The official ``dataforseo-client``, which is synchronous (urllib3), driven the way an
  asyncio program has to drive it: ``await asyncio.to_thread(api.backlinks_id_list, [...])``
  page after page. Its request model sends unset fields as ``null``, which the API does not
  take for ``sort``, so the loop sets ``sort`` and ``include_metadata`` explicitly.

Each contender runs `rounds` times, interleaved, on a fresh event loop; the best wall time and
the best process CPU time (``time.process_time``: every thread of this process, none of the
emulator's) are kept.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import orjson
from dataforseo_client.api.backlinks_api import BacklinksApi
from dataforseo_client.api_client import ApiClient
from dataforseo_client.configuration import Configuration
from dataforseo_client.models.backlinks_id_list_request_info import BacklinksIdListRequestInfo

import dfs_async

from ._common import LOGIN, PASSWORD, Row, api_window, emulator_process, window

_PAGE = 1000


async def with_dfs_async(url: str) -> tuple[int, int]:
    """(IDs, calls) through the client."""
    start, end = window()
    count = 0
    async with dfs_async.Client(
        LOGIN,
        PASSWORD,
        base_url=url,
        rate_limit=dfs_async.RateLimit(calls=1_000_000, period=1.0),
    ) as client:
        async for task in client.backlinks.id_list(start, end):
            if task.id:
                count += 1
        return count, client.stats.calls


async def with_raw_loop(url: str) -> tuple[int, int]:
    """(IDs, calls) through the shortest correct loop: aiohttp, orjson, offset paging."""
    start, end = api_window()
    token = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    count = calls = offset = 0
    async with aiohttp.ClientSession() as session:
        while True:
            task = {"datetime_from": start, "datetime_to": end, "limit": _PAGE, "offset": offset}
            calls += 1
            async with session.post(
                url + "/v3/backlinks/id_list", data=orjson.dumps([task]), headers=headers
            ) as response:
                document = orjson.loads(await response.read())
            if document["status_code"] != 20000 or document["tasks"][0]["status_code"] != 20000:
                raise RuntimeError(f"the raw loop got an error: {document['status_message']}")
            result = document["tasks"][0]["result"] or []
            for item in result:
                if item["id"]:
                    count += 1
            offset += len(result)
            if len(result) < _PAGE:
                return count, calls


async def with_official_client(url: str) -> tuple[int, int]:
    """(IDs, calls) through dataforseo-client's synchronous API, a thread per call."""
    start, end = api_window()
    count = calls = offset = 0
    configuration = Configuration(host=url, username=LOGIN, password=PASSWORD)
    with ApiClient(configuration) as api_client:
        api = BacklinksApi(api_client)
        while True:
            request = BacklinksIdListRequestInfo(
                datetime_from=start,
                datetime_to=end,
                limit=_PAGE,
                offset=offset,
                sort="asc",
                include_metadata=False,
            )
            calls += 1
            response = await asyncio.to_thread(api.backlinks_id_list, [request])
            task = response.tasks[0]
            if response.status_code != 20000 or task.status_code != 20000:
                raise RuntimeError(f"the official client got an error: {task.status_message}")
            result = task.result or []
            for item in result:
                if item.id:
                    count += 1
            offset += len(result)
            if len(result) < _PAGE:
                return count, calls


Contender = Callable[[str], Coroutine[Any, Any, tuple[int, int]]]

CONTENDERS: dict[str, Contender] = {
    "dfs-async": with_dfs_async,
    "raw": with_raw_loop,
    "official": with_official_client,
}


def _timed(contender: Contender, url: str) -> tuple[float, float, int, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    count, calls = asyncio.run(contender(url))
    return time.perf_counter() - wall, time.process_time() - cpu, count, calls


def run(smoke: bool) -> list[Row]:
    tasks = 5_000 if smoke else 200_000
    rounds = 1 if smoke else 3
    wall: dict[str, float] = dict.fromkeys(CONTENDERS, float("inf"))
    cpu: dict[str, float] = dict.fromkeys(CONTENDERS, float("inf"))
    calls: dict[str, int] = {}
    with emulator_process(tasks) as url:
        if not smoke:
            for contender in CONTENDERS.values():  # warm-up: imports, the emulator's caches
                _timed(contender, url)
        for _ in range(rounds):
            for name, contender in CONTENDERS.items():
                seconds, cpu_seconds, count, made = _timed(contender, url)
                if count != tasks:
                    raise AssertionError(f"{name} streamed {count} IDs, not {tasks}")
                wall[name] = min(wall[name], seconds)
                cpu[name] = min(cpu[name], cpu_seconds)
                calls[name] = made
    # No total count exists: paging stops at the first short page, so when the total is a
    # multiple of the page size one empty page is the least any client can ask for.
    least = tasks // _PAGE + 1
    if set(calls.values()) != {least}:
        raise AssertionError(f"expected {least} calls from every contender, got {calls}")
    pages = least
    details = {
        "task_ids": tasks,
        "calls": calls,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "rounds": rounds,
    }
    mine_wall, mine_cpu = wall["dfs-async"], cpu["dfs-async"]
    note = f"{tasks:,} IDs, {pages} calls each (the least possible)"

    # What a page costs the client in CPU, against the 6 s a page takes at 10 calls a minute.
    cpu_per_page = mine_cpu / pages
    return [
        Row(
            name="stream.wall.vs_raw",
            measured=mine_wall,
            baseline=wall["raw"],
            unit="s",
            baseline_label="raw aiohttp+orjson",
            ratio=mine_wall / wall["raw"],
            target="<= 1.30 (within 1.3x of the raw loop)",
            passed=mine_wall / wall["raw"] <= 1.3,
            note=note,
            details=details,
        ),
        Row(
            name="stream.wall.vs_official",
            measured=mine_wall,
            baseline=wall["official"],
            unit="s",
            baseline_label="official client",
            ratio=mine_wall / wall["official"],
            target="<= 0.33 (3x ahead of official)",
            passed=mine_wall / wall["official"] <= 1 / 3,
            note=note,
            details=details,
        ),
        Row(
            name="stream.cpu.vs_raw",
            measured=mine_cpu,
            baseline=cpu["raw"],
            unit="s",
            baseline_label="raw aiohttp+orjson",
            ratio=mine_cpu / cpu["raw"],
            target="info (typed records cost CPU)",
            passed=None,
            note=note,
            details=details,
        ),
        Row(
            name="stream.cpu.vs_official",
            measured=mine_cpu,
            baseline=cpu["official"],
            unit="s",
            baseline_label="official client",
            ratio=mine_cpu / cpu["official"],
            target="info",
            passed=None,
            note=note,
            details=details,
        ),
        Row(
            name="stream.cpu_per_page.vs_quota",
            measured=cpu_per_page,
            baseline=6.0,
            unit="s",
            baseline_label="6 s/page at 10/min",
            ratio=cpu_per_page / 6.0,
            target="<= 0.01 (1% of a page's quota time)",
            passed=cpu_per_page / 6.0 <= 0.01,
            note=note,
            details=details,
        ),
    ]
