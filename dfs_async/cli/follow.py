"""`--follow` and `--update` of `id-list` and `errors`: each new record and each change, once.

A run follows with `dfs_async.Follower.batches()`: the new records of each call are written
whole, the output flushed and fsynced, and only then is the state saved (the follow's
`FollowState` beside the export's position), with no await between the two, exactly as an
export saves after each page. So after a SIGKILL at any moment the state never counts a record
the output lacks, and the next run cuts the output back to the saved size and continues:
every version of every task lands in the output once. A changed task is a new row; the later
row supersedes the earlier.

Where a run starts: the follow saved in `--state`; else an export saved there (an interrupted
one is run to its end first), whose output is read back once (the tasks still queued, and
those near its end, seed the follow); else `--from`. `--follow` never ends by itself (Ctrl-C
or SIGTERM: exit 130 or 143, as an interrupted export); `--update` makes one poll up to now
and exits 0.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from dfs_async import Client, Follower, FollowState, TaskError, TaskId

from .account import credentials
from .emulate import EMULATOR_RATE, emulator_notice
from .exits import EXIT_OK, EXIT_USAGE, CliError, say
from .export import _check_resume, open_client, open_output
from .progress import Counters, plural, terminal
from .state import FOLLOW_LOOKBACK, SavedState, StateFile, load_state, save_state
from .writers import Output

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID

    from .options import Options

__all__ = ["FollowDisplay", "FollowRun", "follow_line", "read_back"]

UTC = timezone.utc


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0, math.ceil(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}"


def follow_line(*, new: int, updated: int, calls: int, next_poll: float | None) -> str:
    """The live line: ``120 new · 31 updated · 14 calls · next poll in 0:00:42``."""
    text = f"{new:,} new · {updated:,} updated · {plural(calls, 'call')}"
    return text + (" · polling" if next_poll is None else f" · next poll in {_clock(next_poll)}")


def _parse_time(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def _record(command: str, row: dict[str, Any], csv_row: bool) -> TaskId | TaskError:
    """One row of our own output as the record it was written from."""
    if command == "id-list":
        metadata = row.get("metadata")
        if csv_row:
            metadata = json.loads(metadata) if metadata else None
        posted = _parse_time(row["datetime_posted"])
        assert posted is not None
        return TaskId(
            id=row["id"],
            url=row["url"],
            datetime_posted=posted,
            datetime_done=_parse_time(row["datetime_done"]),
            status=row["status"],
            cost=float(row["cost"]),
            metadata=metadata,
        )
    moment = _parse_time(row["datetime"])
    assert moment is not None
    return TaskError(
        id=row["id"],
        datetime=moment,
        function=row["function"],
        error_code=int(row["error_code"]),
        error_message=row["error_message"],
        http_url=row["http_url"],
        http_method=row["http_method"],
        http_code=int(row["http_code"]),
        http_time=float(row["http_time"]),
        http_response=row["http_response"],
    )


def _lines(path: str, size: int) -> Iterator[str]:
    """The file's lines (with their ends) within its first `size` bytes, one at a time."""
    left = size
    with open(path, "rb") as raw:
        for line in raw:
            if left <= 0:
                return
            yield line[:left].decode("utf-8")
            left -= len(line)


def read_back(path: str, fmt: str, command: str, size: int) -> Iterator[TaskId | TaskError]:
    """The records of our own output file, in order, up to `size` bytes (the saved ones).

    Streamed: memory holds one row, not the file. CliError (exit 2) names a row that is not
    what this command writes (an edited file).
    """
    rows: Iterator[dict[str, Any]]
    if fmt == "jsonl":
        rows = (json.loads(line) for line in _lines(path, size) if line.strip())
    else:
        rows = csv.DictReader(_lines(path, size))
    number = 0
    while True:
        number += 1
        try:
            row = next(rows, None)
            if row is None:
                return
            record = _record(command, row, fmt == "csv")
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            reason = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)[:80]
            raise CliError(
                EXIT_USAGE,
                f"cannot read back {path}, record {number}: {reason}; it must be the file "
                "this export wrote",
            ) from None
        yield record  # outside the try: what the consumer raises is not a bad row


class FollowDisplay:
    """The live line of a follow on a terminal (rich); does nothing when switched off."""

    def __init__(self, run: FollowRun, *, enabled: bool) -> None:
        self._run = run
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self.console = terminal(enabled=enabled)

    def start(self, total: int | None) -> None:
        del total  # a follow has no end to count down to
        if self.console is None:
            return
        from rich.progress import Progress, ProgressColumn
        from rich.text import Text

        run = self._run

        class Status(ProgressColumn):
            def render(self, task: Task) -> Text:
                follower = run.follower
                due = None if follower is None else follower.next_poll
                line = follow_line(
                    new=run.counters.records - run.updated(),
                    updated=run.updated(),
                    calls=run.counters.stats().calls,
                    next_poll=None if due is None else (due - datetime.now(UTC)).total_seconds(),
                )
                return Text(line, no_wrap=True, overflow="ellipsis")

        # Redrawn twice a second, so the countdown to the next poll moves while it waits.
        self._progress = Progress(
            Status(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            refresh_per_second=2,
        )
        self._progress.start()
        self._task = self._progress.add_task("follow", total=None)

    def update(self) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._run.counters.records)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@attrs.define
class FollowRun:
    """One run of `--follow` or `--update`: follow, write each call's records, save the state."""

    options: Options
    counters: Counters
    state_file: StateFile | None
    display: FollowDisplay = attrs.field(init=False)
    resume: tuple[StateFile, SavedState] | None = None
    credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    stream_opened: bool = False
    started_stream: bool = False
    notice: str | None = None
    follower: Follower[Any] | None = None
    #: The state file holds an export that is not finished: it is finished first.
    unfinished: bool = False

    def __attrs_post_init__(self) -> None:
        import sys

        quiet = self.options.quiet
        self.display = FollowDisplay(self, enabled=sys.stderr.isatty() and not quiet)

    def updated(self) -> int:
        """Changed tasks written by this run (the rest of its records are new)."""
        return 0 if self.follower is None else self.follower.changed

    def prepare(self) -> None:
        """Read the state file and the credentials: blocking reads, before the event loop."""
        options = self.options
        if self.state_file is not None:
            saved = load_state(self.state_file.path)
            if saved is not None:
                api = saved.follow.api if saved.follow is not None else None
                if api is None and saved.stream is not None:
                    api = saved.stream.api
                omitted = options.omitted
                options = attrs.evolve(
                    options,
                    format=saved.format if "format" in omitted else options.format,
                    api=api if "api" in omitted and api else options.api,
                )
                _check_resume(options, self.state_file, saved)
                stream = saved.stream
                self.unfinished = saved.follow is None and stream is not None and not stream.done
                self.resume = (self.state_file, saved)
                if saved.started is not None:
                    options = options.at(saved.started)
        if (
            self.resume is None
            and options.command == "id-list"
            and options.when_from is None
            and options.format != "sqlite"  # the file keeps what it continues: see cli.sqlite
        ):
            raise CliError(
                EXIT_USAGE,
                f"--from is required: the state file {options.state} does not exist yet, so "
                "there is no earlier run to continue",
            )
        self.options = options
        if not options.emulate:
            self.credentials = credentials(options, os.environ)

    def resume_hint(self) -> str:
        if (
            self.state_file is None
            or not self.stream_opened
            or not os.path.exists(self.state_file.path)
        ):
            return ""
        return f"; run the same command to continue from {self.state_file.path}"

    async def run(self) -> int:
        options = self.options
        if self.unfinished:
            await self._finish_export()
        async with contextlib.AsyncExitStack() as stack:
            client, emulator = await open_client(options, self.credentials, stack)
            if emulator is not None and not options.quiet:
                rate = options.emulate_rate or EMULATOR_RATE
                if emulator.live is None:
                    say(emulator_notice(options, emulator, rate))
                else:
                    say(
                        f"emulator: a live account since {emulator.live.start:%Y-%m-%d %H:%M} "
                        f"UTC, a task every few seconds; rate limit shortened to "
                        f"{plural(rate[0], 'call')} / {rate[1]:g} s"
                    )
            self.counters.stats = lambda: client.stats
            if options.command == "id-list" and self.counters.cost is None:
                # The summary says what the tasks written cost (an unfinished export's too).
                self.counters.cost = 0.0
            if options.format == "sqlite":
                from .sqlite import follow_into_store

                return await follow_into_store(self, stack, client)
            follower = self._follower(client)
            self.follower = follower
            stack.push_async_callback(follower.aclose)
            self.stream_opened = True
            if self.resume is not None and not options.quiet:
                say(f"continuing from {self.resume[0].path}")
            self.display.start(None)
            stack.callback(self.display.stop)
            output: Output | None = None
            async for batch in follower.batches():
                # No await from here to the state: a cancellation cannot split a batch.
                if output is None:
                    output = self._open_output(stack)
                output.write_records(batch)
                self.started_stream = True
                self.counters.records += len(batch)
                self.counters.add_cost(batch)
                self.counters.pages = follower.calls  # a follow's pages are its calls
                self._save(output, follower.state)
                self.display.update()
        return EXIT_OK

    async def _finish_export(self) -> None:
        """Run the export saved in the state file to its end, as a plain re-run would."""
        from .export import Export
        from .progress import Display

        assert self.resume is not None
        options = attrs.evolve(self.options, follow=False, update=False)
        export = Export(options, self.counters, Display(self.counters, enabled=False), None)
        export.state_file, export.resume = self.resume[0], self.resume
        export.credentials = self.credentials
        await export.run()
        saved = load_state(self.resume[0].path)
        assert saved is not None
        self.resume = (self.resume[0], saved)

    def _follower(self, client: Client) -> Follower[Any]:
        saved = None if self.resume is None else self.resume[1]
        resume = None if saved is None else saved.follow
        if saved is not None and resume is None:
            resume = self._after_export(saved)
        return self.make_follower(client, resume)

    def make_follower(self, client: Client, resume: FollowState | None) -> Follower[Any]:
        """The follower of these options, continuing `resume` (else from --from)."""
        options = self.options
        api = client.api(options.api)
        common: dict[str, Any] = {
            "poll_interval": options.poll_interval,
            "lookback": float(FOLLOW_LOOKBACK),
            "resume": resume,
            "once": options.update,
        }
        if options.command == "id-list":
            return api.follow_ids(
                None if resume else options.datetime_from,
                include_metadata=options.metadata,
                **common,
            )
        return api.follow_errors(
            options.function, datetime_from=None if resume else options.datetime_from, **common
        )

    def _after_export(self, saved: SavedState) -> FollowState:
        """A finished export's end, and its output read back, as where the follow starts."""
        stream = saved.stream
        assert stream is not None
        end = datetime.strptime(str(stream.params["datetime_to"]), "%Y-%m-%d %H:%M:%S %z")
        records = read_back(saved.output, saved.format, self.options.command, saved.output_bytes)
        if self.options.command == "id-list":
            return FollowState.after_id_list_export(
                api=stream.api,
                include_metadata=bool(stream.params.get("include_metadata", False)),
                end=end,
                lookback=FOLLOW_LOOKBACK,
                tasks=(r for r in records if isinstance(r, TaskId)),
            )
        function = stream.params.get("filtered_function")
        return FollowState.after_errors_export(
            api=stream.api,
            filtered_function=None if function is None else str(function),
            end=end,
            lookback=FOLLOW_LOOKBACK,
            entries=(r for r in records if isinstance(r, TaskError)),
        )

    def _open_output(self, stack: contextlib.AsyncExitStack) -> Output:
        return open_output(self.options, self.resume, stack)

    def _save(self, output: Output, state: FollowState) -> None:
        if self.state_file is None:
            return
        earlier = None if self.resume is None else self.resume[1].stream
        saved = SavedState(
            stream=earlier,
            format=output.format,
            output=self.state_file.output,
            output_bytes=output.size,
            started=self.options.started,
            follow=state,
        )
        save_state(self.state_file.path, saved)
