"""SIGINT and SIGTERM end a command's work cleanly: exit 128 + the signal's number.

The first signal cancels the running task where it awaits (never in the middle of writing a
page); the handlers then go, so a second Ctrl-C interrupts at once should the cleanup hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator

__all__ = ["interruptible"]


@contextlib.contextmanager
def _signals_cancel_current_task() -> Iterator[list[int]]:
    """SIGINT and SIGTERM cancel the running task once; yields the signals received.

    The first signal cancels; the handlers are then removed, so a second Ctrl-C interrupts at
    once (KeyboardInterrupt) should the cleanup itself hang.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []
    installed: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        for number in installed:
            loop.remove_signal_handler(number)
        installed.clear()
        if task is not None:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C is KeyboardInterrupt
            continue
        installed.append(signum)
    try:
        yield received
    finally:
        for number in installed:
            loop.remove_signal_handler(number)


async def interruptible(work: Callable[[], Awaitable[int]]) -> int:
    """Run a command's work; SIGINT or SIGTERM ends it as exit 128 + the signal's number."""
    with _signals_cancel_current_task() as received:
        try:
            return await work()
        except asyncio.CancelledError:
            if not received:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return 128 + received[0]
