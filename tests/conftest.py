"""Shared test plumbing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    """Give each synchronous test a closed-after-use event loop.

    looptime's hook asks the event loop policy for the current loop before every test, and
    for a synchronous test with none set, asyncio creates one that nobody closes: its
    ResourceWarning would then fail whichever test runs when it is collected. Setting a loop
    of our own first, and closing it after, keeps the suite's "warnings are errors" honest.
    """
    if pyfuncitem.get_closest_marker("asyncio") is not None:
        return (yield)
    policy = asyncio.get_event_loop_policy()
    loop = policy.new_event_loop()
    policy.set_event_loop(loop)
    try:
        return (yield)
    finally:
        policy.set_event_loop(None)
        loop.close()


#: Set by .ci/run for most of its faked instants: the heavy tests (minutes of real-clock kill
#: loops, whose windows are relative to now) then run at one faked instant, not at each.
SKIP_HEAVY = "DFS_ASYNC_SKIP_HEAVY"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SKIP_HEAVY) != "1":
        return
    skip = pytest.mark.skip(reason=f"a heavy real-clock test, skipped with ${SKIP_HEAVY}=1")
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)
