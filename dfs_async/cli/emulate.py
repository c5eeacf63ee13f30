"""`--emulate`: the built-in emulator in place of the API, for a demo without an account.

The emulator (dfs_async.testing) runs in the process on loopback, on the real clock, with data
laid out over the six months before the export started (a resumed export takes that moment from
its state file, so it sees the same records again). Its rate limit is shortened, and the
client's with it. The constants are read by the argument parser (for its help): everything
heavier is imported only when an emulated run starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

from .dates import parse_when_spec
from .exits import EXIT_USAGE, CliError

#: typing.TYPE_CHECKING without importing typing (a few ms of every --help); type checkers
#: take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import contextlib
    from typing import Protocol

    from dfs_async import Client, Retry
    from dfs_async.testing import Emulator

    class Options(Protocol):
        """What the demo reads of the options (`dfs_async.cli.options.Options` has it; a
        protocol, so that this module, which that one imports, imports nothing back)."""

        @property
        def command(self) -> str: ...
        @property
        def started(self) -> datetime: ...
        @property
        def emulate_rate(self) -> tuple[int, float] | None: ...
        @property
        def emulate_tasks(self) -> int: ...
        @property
        def emulate_errors(self) -> int: ...


__all__ = ["command_now", "emulator_clock", "emulator_notice", "open_emulated_client"]

UTC = timezone.utc

#: For tests only: an ISO 8601 time that the clock of --emulate (the emulator's, the client's
#: and the "now" of relative dates) stands still at, instead of following the real time.
EMULATE_NOW_ENV = "DFS_ASYNC_EMULATE_NOW"
#: The demo's tasks lie over this many days before the export's start: six calendar months are
#: at most 184 days, so every window the API accepts then finds data all through.
EMULATOR_DAYS = 186
EMULATOR_LOGIN = "demo@example.com"
EMULATOR_PASSWORD = "demo"  # noqa: S105 -- the emulator's throwaway credential, not a secret
EMULATOR_TASKS = 50_000
EMULATOR_ERRORS = 2_000
EMULATOR_RATE = (10, 1.0)
REAL_RATE = (10, 60.0)


def command_now(emulate: bool, environ: Mapping[str, str]) -> datetime:
    """The command's "now", whole seconds: the real time, or under --emulate a pinned one."""
    pinned = environ.get(EMULATE_NOW_ENV) if emulate else None
    if pinned:
        try:
            moment = parse_when_spec(pinned)
        except ValueError:
            moment = timedelta(0)
        if not isinstance(moment, datetime):
            raise CliError(EXIT_USAGE, f"${EMULATE_NOW_ENV} is not a date: {pinned!r}")
        return moment.replace(microsecond=0)
    return datetime.now(UTC).replace(microsecond=0)


def emulator_clock(environ: Mapping[str, str]) -> Callable[[], datetime]:
    """The clock of --emulate: the real time, or the one $DFS_ASYNC_EMULATE_NOW pins (tests)."""
    if environ.get(EMULATE_NOW_ENV):
        pinned = command_now(True, environ)
        return lambda: pinned
    return lambda: datetime.now(UTC)


def emulator_notice(options: Options, emulator: Emulator, rate: tuple[int, float]) -> str:
    """What the demo tells the user first: its data, and its shortened rate limit."""
    from .progress import plural

    if options.command == "id-list":
        tasks = emulator.tasks
        data = f"{options.emulate_tasks:,} synthetic tasks"
        if len(tasks):
            first, last = tasks[0]["datetime_posted"][:10], tasks[-1]["datetime_posted"][:10]
            data += f" posted {first} to {last}"
        real = f"the real API allows {REAL_RATE[0]} / {REAL_RATE[1]:g} s"
    else:
        errors = emulator.errors
        data = f"{options.emulate_errors:,} synthetic errors"
        if errors:
            data += f" from {errors[-1]['datetime'][:10]} to {errors[0]['datetime'][:10]}"
        real = f"the client assumes {REAL_RATE[0]} / {REAL_RATE[1]:g} s for the real API"
    return (
        f"emulator: {data}, laid out before {options.started:%Y-%m-%d %H:%M:%S} UTC (when this "
        f"export started); rate limit shortened to {plural(rate[0], 'call')} / {rate[1]:g} s "
        f"({real})"
    )


async def open_emulated_client(
    options: Options, retry: Retry, stack: contextlib.AsyncExitStack
) -> tuple[Client, Emulator]:
    """The emulator, started, and a client that talks to it (both closed by `stack`)."""
    import dfs_async
    from dfs_async.testing import Emulator

    rate = options.emulate_rate or EMULATOR_RATE
    clock = emulator_clock(os.environ)
    emulator = Emulator(
        EMULATOR_LOGIN,
        EMULATOR_PASSWORD,
        n_tasks=options.emulate_tasks,
        n_errors=options.emulate_errors,
        rate_limit=rate,
        now=clock,
        # Laid out from the export's start, which a resumed run takes from the state file:
        # the same records again, while the clock that checks windows is today's.
        data_now=options.started,
        data_days=EMULATOR_DAYS,
    )
    await stack.enter_async_context(emulator)
    client = await stack.enter_async_context(
        dfs_async.Client(
            EMULATOR_LOGIN,
            EMULATOR_PASSWORD,
            base_url=emulator.url,
            rate_limit=dfs_async.RateLimit(calls=rate[0], period=rate[1]),
            retry=retry,
            now=clock,
        )
    )
    return client, emulator
