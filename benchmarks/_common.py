"""What the benchmarks share: result rows, timing, the emulator as a separate process."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import attrs
import looptime

import dfs_async
from dfs_async._convert import format_datetime
from dfs_async._endpoints import ID_LIST_METADATA_MONTHS, ID_LIST_MONTHS, months_before

LOGIN = "bench@example.com"
PASSWORD = "bench-password"  # noqa: S105 - the emulator's credentials, not a secret
UTC = timezone.utc

T = TypeVar("T")

#: The directory holding the `dfs_async` package: the emulator process imports it from there.
_SOURCE_ROOT = Path(dfs_async.__file__).resolve().parent.parent


@attrs.frozen(kw_only=True)
class Row:
    """One line of the results table: a measurement, its baseline and whether it met its target.

    `ratio` is always ours divided by the baseline in *cost* (seconds, megabytes; for rates,
    the baseline's rate over ours): below 1 we are cheaper. `passed` is None for rows that
    inform without a target.
    """

    name: str
    measured: float
    baseline: float | None
    unit: str
    baseline_label: str
    ratio: float | None
    target: str
    passed: bool | None
    #: A few words for the table: what else was counted (calls, rejections, growth).
    note: str = ""
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: How far inside the API's reach a window starts. The emulator checks the window against its
#: own clock a moment after it was chosen; a day is margin for any run, on any date.
_MARGIN = timedelta(days=1)


def now() -> datetime:
    """The current time, whole seconds (the API's datetimes have no fraction)."""
    return datetime.now(UTC).replace(microsecond=0)


def window() -> tuple[datetime, datetime]:
    """A window holding every task the emulator generates (they span the last 150 days)."""
    end = now()
    start = end - timedelta(days=160)
    # Six calendar months are at least 181 days: 160 stays well inside on every date.
    assert start >= months_before(end, ID_LIST_MONTHS) + _MARGIN
    return start, end


def metadata_window() -> tuple[datetime, datetime]:
    """The longest window include_metadata allows (one calendar month), less a day of margin.

    "30 days" would sit on the limit whenever the month before has 30 days or fewer; the
    client's own calendar rule (`months_before`) says where the limit is on any date.
    """
    end = now()
    return months_before(end, ID_LIST_METADATA_MONTHS) + _MARGIN, end


def api_window() -> tuple[str, str]:
    """`window()` in the API's request form, for the loops that build bodies themselves."""
    start, end = window()
    return format_datetime(start), format_datetime(end)


def best_of(rounds: int, functions: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The fastest of `rounds` timings of each function, the functions interleaved per round.

    Interleaving spreads a noisy neighbour or a frequency change over every contender alike,
    and the minimum is the run least disturbed by anything but the code itself. The cyclic
    garbage collector is off meanwhile: a collection landing in one contender's timing is noise,
    not its cost (every contender frees its results by reference counting alone).
    """
    best = dict.fromkeys(functions, float("inf"))
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, function in functions.items():
                started = time.perf_counter()
                function()
                best[name] = min(best[name], time.perf_counter() - started)
    finally:
        if enabled:
            gc.enable()
        gc.collect()
    return best


@contextlib.contextmanager
def emulator_process(tasks: int, *, errors: int = 300, rate_limit: str = "off") -> Iterator[str]:
    """Run the emulator in its own process (its CPU is not billed to the client); yield its URL."""
    command = [
        sys.executable,
        "-m",
        "dfs_async.testing",
        "--port",
        "0",
        "--tasks",
        str(tasks),
        "--errors",
        str(errors),
        "--days",  # the span window() expects, as the in-process emulators have by default
        "150",
        "--rate-limit",
        rate_limit,
        "--login",
        LOGIN,
        "--password",
        PASSWORD,
    ]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running our own module
        command, cwd=_SOURCE_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        prefix = "dfs-async emulator listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line[len(prefix) :].strip()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def run_on_virtual_clock(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on an event loop whose clock is looptime's virtual one.

    Sleeps and timeouts take no real time, so minutes of rate limiting run in a second;
    real sockets still work (the loop only moves its clock when nothing is ready).
    """
    loop = looptime.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
