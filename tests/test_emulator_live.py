"""The emulator's live mode over HTTP on a virtual clock: tasks queue, complete, errors arrive."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from dfs_async.testing import Emulator, Live

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
AUTH = {"Authorization": "Basic " + base64.b64encode(b"login:password").decode()}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S +00:00")


async def post(session: aiohttp.ClientSession, url: str, task: dict[str, Any]) -> list[Any]:
    async with session.post(url, data=json.dumps([task]), headers=AUTH) as resp:
        document = await resp.json()
    assert document["tasks"][0]["status_code"] == 20000, document
    result: list[Any] = document["tasks"][0]["result"]
    return result


@pytest.mark.looptime
@pytest.mark.parametrize("window_on", ["posted", "done"])
async def test_live_tasks_queue_then_complete_and_the_window_follows_the_setting(
    window_on: str,
) -> None:
    """After 3 virtual hours: every task listed once, queued ones null-done, history matches."""
    live = Live(start=START, seed=3, window_on=window_on)
    async with Emulator(live=live, rate_limit=None) as emu, aiohttp.ClientSession() as session:
        live.elapsed()  # the live account starts now
        await asyncio.sleep(3 * 3600)
        end = live.now()
        window = {"datetime_from": stamp(START), "datetime_to": stamp(end), "limit": 1000}
        items = []
        for offset in range(0, 20_000, 1000):
            page = await post(
                session, emu.url + "/v3/backlinks/id_list", {**window, "offset": offset}
            )
            items += page
            if len(page) < 1000:
                break
        errors = await post(session, emu.url + "/v3/backlinks/errors", {"limit": 1000})
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == len({v[0] for v in live.history})
    queued = [item for item in items if item["datetime_done"] is None]
    assert {item["status"] for item in queued} == {"Task In Queue."}
    assert len(queued) == live.open_tasks() > 0
    latest = {v[0]: v for v in live.history}
    assert {
        (i["id"], i["datetime_done"] and i["datetime_done"][:19], i["status"], i["cost"])
        for i in items
    } == {(v[0], v[1] and v[1][:19], v[2], v[3]) for v in latest.values()}
    assert len(errors) == len(live.errors) > 100
    # A window of the last minute: under "done" it holds tasks posted long before.
    recent = {"datetime_from": stamp(end - timedelta(minutes=10)), "datetime_to": stamp(end)}
    async with Emulator(live=live, rate_limit=None) as emu2, aiohttp.ClientSession() as session:
        got = await post(session, emu2.url + "/v3/backlinks/id_list", recent)
    old = [i for i in got if i["datetime_posted"] < recent["datetime_from"][:19]]
    assert (len(old) > 0) == (window_on == "done")
