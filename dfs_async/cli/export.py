"""The export loop of `id-list` and `errors`: open, stream page by page, save the state.

Each page is written whole and only then is the state saved, with no await between the two: a
cancellation (Ctrl-C, SIGTERM) lands only where the loop waits, never inside a page. The output
is opened when the first page is in hand, so a run that fails at once leaves an existing file
as it was (see `dfs_async.cli` for the whole strategy).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

import attrs

import dfs_async
from dfs_async import Client, Pager, PagerState, Retry, TaskError, TaskId

from .account import credentials
from .emulate import EMULATOR_RATE, emulator_notice, open_emulated_client
from .exits import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    classify,
    error_line,
    print_traceback,
    say,
)
from .options import Options
from .progress import Counters, Display, plural
from .secrets import userinfo
from .signals import interruptible
from .state import SavedState, StateFile, load_state, save_state
from .writers import Output, check_output_size, field_names, silence_stdout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Protocol

    from dfs_async.testing import Emulator

    class Run(Protocol):
        """What `run_export` drives: an `Export`, or a follow (`dfs_async.cli.follow.FollowRun`,
        which imports this module, so it is named here by what it offers)."""

        @property
        def options(self) -> Options: ...
        @property
        def counters(self) -> Counters: ...
        @property
        def display(self) -> _Stoppable: ...
        @property
        def started_stream(self) -> bool: ...
        @property
        def run(self) -> Callable[[], Awaitable[int]]: ...
        def prepare(self) -> None: ...
        def resume_hint(self) -> str: ...

    class _Stoppable(Protocol):
        def stop(self) -> None: ...


__all__ = ["Export", "open_client", "open_output", "run_export"]


def _open_pager(
    client: Client, options: Options, resume: PagerState | None
) -> Pager[TaskId] | Pager[TaskError]:
    api = client.api(options.api)
    # An omitted --to is "now", fixed at the start: for a resumed stream, the saved end.
    end = options.datetime_to
    if end is None and resume is None:
        end = client.now()
    if options.command == "id-list":
        return api.id_list(
            options.datetime_from,
            end,
            sort=options.sort,
            include_metadata=options.metadata,
            page_size=options.page_size,
            max_items=options.max_items,
            resume=resume,
        )
    return api.errors(
        options.function,
        datetime_from=options.datetime_from,
        datetime_to=end,
        page_size=options.page_size,
        max_items=options.max_items,
        resume=resume,
    )


def _left_out_from(saved: SavedState, options: Options) -> Options:
    """`options` with those left out (`options.omitted`) taken from the state file."""
    omitted = options.omitted
    return attrs.evolve(
        options,
        format=saved.format if "format" in omitted else options.format,
        api=saved.stream.api if "api" in omitted and saved.stream else options.api,
    )


def _check_resume(options: Options, state_file: StateFile, saved: SavedState) -> None:
    if saved.format != options.format:
        raise CliError(
            EXIT_USAGE,
            f"the state file {state_file.path} is for --format {saved.format}, not "
            f"{options.format}; use the same options, or delete it to start again",
        )
    if saved.output != state_file.output:
        raise CliError(
            EXIT_USAGE,
            f"the state file {state_file.path} is for an export to -o {saved.output}; use the "
            "same options, or delete it to start again",
        )
    check_output_size(state_file, saved)


@attrs.define
class Export:
    """One run of `id-list` or `errors`: open, stream page by page, save the state."""

    options: Options
    counters: Counters
    display: Display
    state_file: StateFile | None
    #: The state file and what it held when the run started (None: a fresh export).
    resume: tuple[StateFile, SavedState] | None = None
    #: Never in the repr: a traceback or a log line must not show the password.
    credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    #: Set once the request (and any saved state) was accepted: a failure from then on is in
    #: the stream, which the state file, if there is one, lets the next run continue.
    stream_opened: bool = False
    #: Set once the first page was written: the summary is worth printing from then on.
    started_stream: bool = False
    #: What --emulate tells the user, once the arguments have been accepted.
    notice: str | None = None

    def prepare(self) -> None:
        """Read the state file and the credentials: blocking reads, before the event loop."""
        if self.state_file is not None:
            saved = load_state(self.state_file.path)
            if saved is not None and (saved.stream is None or saved.follow is not None):
                raise CliError(
                    EXIT_USAGE,
                    f"the state file {self.state_file.path} is a follow's; add --follow or "
                    "--update to continue it",
                )
            if saved is not None:
                self.options = _left_out_from(saved, self.options)
                _check_resume(self.options, self.state_file, saved)
                self.resume = (self.state_file, saved)
                if saved.started is not None:
                    # The first run's "now": relative dates name the same window again.
                    self.options = self.options.at(saved.started)
        options = self.options
        if self.resume is None and options.command == "id-list" and options.when_from is None:
            raise CliError(
                EXIT_USAGE,
                f"--from is required: the state file {options.state} does not exist yet, so "
                "there is no earlier export to continue",
            )
        if not self.options.emulate:
            self.credentials = credentials(self.options, os.environ)

    async def run(self) -> int:
        options = self.options
        resume = None if self.resume is None else self.resume[1].stream
        async with contextlib.AsyncExitStack() as stack:
            client = await self._client(stack)
            self.counters.stats = lambda: client.stats
            if options.command == "id-list":
                self.counters.cost = 0.0  # the summary says what the tasks written cost
            if options.format == "sqlite":
                from .sqlite import run_into_store

                return await run_into_store(self, stack, client, _open_pager)
            pager = _open_pager(client, options, resume)
            stack.push_async_callback(pager.aclose)
            self.stream_opened = True
            state = pager.state  # where it starts: a resumed stream may be finished already
            if self.notice is not None and not options.quiet:
                say(self.notice)
            if self.resume is not None:
                state_file = self.resume[0].path
                self.counters.earlier = state.yielded
                if state.done:
                    if not options.quiet:
                        say(
                            f"nothing to do: the state file {state_file} records a finished "
                            f"export ({plural(state.yielded, 'record')}); delete it to export "
                            "again"
                        )
                    return EXIT_OK
                if not options.quiet:
                    say(
                        f"resuming from {state_file}: "
                        f"{plural(state.yielded, 'record')} already written"
                    )
            self.display.start(options.max_items)
            stack.callback(self.display.stop)
            # The output is opened when the first page is in hand, not before: a run that fails
            # at once leaves an existing file as it was. No state is saved before that either,
            # so such a run leaves nothing to resume and the next starts afresh (a new "now").
            output: Output | None = None
            async for page in pager.pages():
                # No await from here to the state: a cancellation cannot split a page.
                if output is None:
                    output = self._open_output(stack)
                output.write_records(page.records)
                self.started_stream = True
                self.counters.records += len(page.records)
                self.counters.add_cost(page.records)
                self.counters.pages += 1
                self._save(output, pager.state)
                self.display.update()
            if output is None:  # resumed with nothing left to ask for: still mark it done
                output = self._open_output(stack)
                self.started_stream = True
            # The final state says done=true (kept, so that a re-run writes nothing twice).
            self._save(output, pager.state)
        return EXIT_OK

    def resume_hint(self) -> str:
        """How to continue, when the stream failed or stopped with a state file to go on from."""
        if self.options.format == "sqlite" and self.started_stream:
            return f"; run the same command to continue from {self.options.output}"  # its state
        if (
            self.state_file is None
            or not self.stream_opened
            or not os.path.exists(self.state_file.path)
        ):
            return ""
        return f"; run the same command to continue from {self.state_file.path}"

    def _open_output(self, stack: contextlib.AsyncExitStack) -> Output:
        return open_output(self.options, self.resume, stack)

    async def _client(self, stack: contextlib.AsyncExitStack) -> Client:
        client, emulator = await open_client(self.options, self.credentials, stack)
        if emulator is not None:
            rate = self.options.emulate_rate or EMULATOR_RATE
            self.notice = emulator_notice(self.options, emulator, rate)
        return client

    def _save(self, output: Output, state: PagerState) -> None:
        if self.state_file is None:
            return
        saved = SavedState(
            stream=state,
            format=output.format,
            output=self.state_file.output,
            output_bytes=output.size,
            started=self.options.started,
        )
        save_state(self.state_file.path, saved)


def open_output(
    options: Options,
    resume: tuple[StateFile, SavedState] | None,
    stack: contextlib.AsyncExitStack,
) -> Output:
    """-o (fresh, or the resumed one cut back to its saved size) or standard output, with the
    CSV header where one is due; closed by `stack`. An export's and a follow's alike."""
    record_type: type[TaskId] | type[TaskError] = (
        TaskId if options.command == "id-list" else TaskError
    )
    return Output.opened(options.output, options.format, field_names(record_type), resume, stack)


async def open_client(
    options: Options, credentials: tuple[str, str] | None, stack: contextlib.AsyncExitStack
) -> tuple[Client, Emulator | None]:
    """The client for the run (closed by `stack`); with --emulate, the emulator it talks to."""
    retry = Retry(attempts=options.retries + 1)
    if credentials is not None:
        login, password = credentials
        client = dfs_async.Client(
            login, password, base_url=options.base_url, retry=retry, proxy=options.proxy
        )
        # Once the client accepted the URL (a refused one needs no second line).
        if options.proxy is not None and ":" in (userinfo(options.proxy) or ""):
            say(
                "dfs-async: warning: other users of this machine can read the password in "
                "--proxy in the process list; HTTPS_PROXY in the environment keeps it out of "
                "sight"
            )
        return await stack.enter_async_context(client), None
    return await open_emulated_client(options, retry, stack)


def run_export(export: Run) -> int:
    """Run the export (or follow); its exit code, after the closing line on stderr."""
    options, counters = export.options, export.counters
    try:
        export.prepare()
        code = asyncio.run(interruptible(export.run))
    except KeyboardInterrupt:  # reading the password, before the loop's handlers, a 2nd Ctrl-C
        export.display.stop()
        print_traceback(options)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        export.display.stop()
        print_traceback(options)
        code, message = classify(exc)
        if export.started_stream and not options.quiet:
            say(counters.summary())
        say(error_line(f"{message}{export.resume_hint()}", options))
        return code
    if options.quiet:
        # Even -q says how to continue: it is the one line a cron job's log must keep.
        if code >= 128 and export.resume_hint():
            say(f"interrupted{export.resume_hint()}")
        return code
    if code >= 128:
        done = counters.summary() if export.started_stream else "before the first page arrived"
        say(f"interrupted: {done}{export.resume_hint()}")
    elif export.started_stream:
        say(counters.summary())
    return code
