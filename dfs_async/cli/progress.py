"""What a run tells the person watching: the live progress line and the closing summary.

The line's wording is pure (`progress_line`, `summary_line`); `Display` draws it with rich on
a terminal, and rich is imported only then.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from dfs_async import Stats, TaskId

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

__all__ = ["Counters", "Display", "plural", "progress_line", "summary_line"]


def plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes} min {rest} s"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}"


def summary_line(
    *,
    records: int,
    earlier: int,
    pages: int,
    stats: Stats,
    elapsed: float,
    cost: float | None = None,
) -> str:
    """``2,500 records costing $51.2345 in 3 pages, 3 calls, 0.0 s rate-limit wait, 1.2 s``.

    `cost` is the sum of the records' ``cost`` this run wrote (tasks; errors entries have none).
    """
    text = plural(records, "record")
    if earlier:
        text += f" ({earlier + records:,} with the earlier runs)"
    if cost is not None:
        text += f" costing ${cost:,.4f}"
    calls = plural(stats.calls, "call")
    if stats.retries:
        calls += f" ({plural(stats.retries, 'retry', 'retries')})"
    wait = "rate-limit and retry wait" if stats.retries else "rate-limit wait"
    return (
        f"{text} in {plural(pages, 'page')}, {calls}, "
        f"{stats.seconds_waited:.1f} s {wait}, {_duration(elapsed)}"
    )


def progress_line(
    *,
    records: int,
    calls: int,
    waited: float,
    elapsed: float,
    percent: float | None = None,
    remaining: float | None = None,
) -> str:
    """The live line: ``42% 840 records · 1 call · 0:00:03 (0:00:01 waiting) · ETA 0:00:04``.

    The percentage and the ETA come only with --max-items (the API gives no total). Below ten
    million records and ten hours it takes at most 78 columns, so it fits an 80-column terminal.
    """
    text = (
        f"{plural(records, 'record')} · {plural(calls, 'call')} · "
        f"{_clock(elapsed)} ({_clock(waited)} waiting)"
    )
    if percent is None:
        return text
    eta = "-:--:--" if remaining is None else _clock(remaining)
    return f"{percent:.0f}% {text} · ETA {eta}"


def _no_calls_yet() -> Stats:
    return Stats()


@attrs.define
class Counters:
    """What this run has done so far, for the progress display and the summary."""

    started: float = attrs.field(factory=time.monotonic)
    records: int = 0
    earlier: int = 0
    pages: int = 0
    #: The client's counters, once there is a client.
    stats: Callable[[], Stats] = _no_calls_yet
    #: The summed cost of the tasks this run wrote (None: no tasks, an errors export).
    cost: float | None = None

    def add_cost(self, records: Sequence[object]) -> None:
        """Count the cost of the tasks among `records` (errors entries have none)."""
        costs = [record.cost for record in records if isinstance(record, TaskId)]
        if costs:
            self.cost = math.fsum([self.cost or 0.0, *costs])

    def summary(self) -> str:
        return summary_line(
            records=self.records,
            earlier=self.earlier,
            pages=self.pages,
            stats=self.stats(),
            elapsed=time.monotonic() - self.started,
            cost=self.cost,
        )


def terminal(*, enabled: bool) -> Console | None:
    """rich's console on stderr for a live line, or None: switched off, or no `cli` extra."""
    if not enabled:
        return None
    try:
        from rich.console import Console
    except ImportError:  # the `cli` extra is not installed: plain output only
        return None
    return Console(stderr=True)


class Display:
    """The live progress line on a terminal (rich); does nothing when switched off."""

    def __init__(self, counters: Counters, *, enabled: bool) -> None:
        self._counters = counters
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        #: The terminal, when the display is on (rich is imported only then).
        self.console = terminal(enabled=enabled)

    def start(self, total: int | None) -> None:
        """Show the display; `total` (with --max-items) gives a percentage and an ETA."""
        if self.console is None:
            return
        from rich.progress import Progress, ProgressColumn
        from rich.text import Text

        counters = self._counters

        class Status(ProgressColumn):
            def render(self, task: Task) -> Text:
                known = task.total is not None
                line = progress_line(
                    records=counters.records + counters.earlier,
                    calls=counters.stats().calls,
                    waited=counters.stats().seconds_waited,
                    elapsed=time.monotonic() - counters.started,
                    percent=task.percentage if known else None,
                    remaining=task.time_remaining if known else None,
                )
                # One row whatever the width: cut short on a narrow terminal, never wrapped.
                return Text(line, no_wrap=True, overflow="ellipsis")

        self._progress = Progress(
            Status(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("export", total=total, completed=counters.earlier)

    def update(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=self._counters.records + self._counters.earlier
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
