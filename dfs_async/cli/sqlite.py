"""`-o FILE.sqlite` (or ``.db``, or ``--format sqlite``): an export into a `dfs_async.Store`.

The state lives in the file: each page's rows and the stream's state are committed in one
transaction (see `dfs_async._store`), so `--state` is not needed and is refused, rather than
having two states that could disagree. The stream's row in the ``state`` table is named after
the endpoint, ``backlinks/id_list`` or ``backlinks/errors``: a run finds an unfinished export
of that endpoint there and continues it (its own window, whatever --from and --to say now); a
finished one is followed by a new export of the window asked for, whose rows update those
already there (a changed task replaces its row; an errors entry is not counted twice).
The store takes its own writer lock (``FILE.lock``), so a second run on the file exits 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from dfs_async import (
    Client,
    Follower,
    FollowState,
    PagerState,
    Store,
    StoreError,
    StoreLockedError,
)

from .exits import EXIT_OK, EXIT_USAGE, CliError, say
from .options import Options
from .progress import Counters, Display, plural
from .state import FOLLOW_LOOKBACK

__all__ = ["follow_into_store", "run_into_store", "stream_name"]


class _Run(Protocol):
    """What this loop reads and sets of the run (`export.Export`), named here so that the two
    modules do not import each other."""

    options: Options
    counters: Counters
    display: Display
    notice: str | None
    stream_opened: bool
    started_stream: bool


def stream_name(api: str, command: str) -> str:
    """The row of the ``state`` table an export of this endpoint keeps its state in."""
    return f"{api}/{'id_list' if command == 'id-list' else 'errors'}"


def open_store(path: str) -> Store:
    """The store, or CliError (exit 2) naming what is wrong with the file."""
    try:
        return Store(path)
    except StoreLockedError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    except StoreError as exc:
        raise CliError(EXIT_USAGE, f"{exc}; -o needs a dfs-async store or a new file") from None


async def run_into_store(
    export: _Run,
    stack: contextlib.AsyncExitStack,
    client: Client,
    open_pager: Callable[[Client, Options, PagerState | None], Any],
) -> int:
    """The export loop for an SQLite output: one commit per page, with the state.

    `open_pager` starts a new export of the options' window (`export._open_pager`).
    """
    options = export.options
    assert options.output is not None  # options_from: sqlite needs -o
    store = stack.enter_context(open_store(options.output))
    name = stream_name(options.api, options.command)
    saved = store.stream_state(name)
    resume = saved if saved is not None and not saved.done else None
    if resume is None:
        pager = open_pager(client, options, None)
    else:
        # The saved request as it is: its own window, relative dates included.
        api = client.api(resume.api)
        pager = (
            api.id_list(resume=resume)
            if resume.function == "id_list"
            else api.errors(resume=resume)
        )
    stack.push_async_callback(pager.aclose)
    export.stream_opened = True
    if export.notice is not None and not options.quiet:
        say(export.notice)
    if resume is not None:
        export.counters.earlier = resume.yielded
        if not options.quiet:
            say(
                f"resuming {name} from {options.output}: "
                f"{plural(resume.yielded, 'record')} already written"
            )
    export.display.start(options.max_items)
    stack.callback(export.display.stop)
    async for page in pager.pages():
        # One transaction with the state; a cancellation waits for it to end (Store.awrite).
        wrote = await store.awrite(name, page.records, pager.state)
        export.started_stream = True
        export.counters.records += wrote.records
        export.counters.pages += 1
        if options.command == "id-list":
            export.counters.cost = (export.counters.cost or 0.0) + wrote.cost
        export.display.update()
    if not export.started_stream:
        # Nothing was left to ask for: the state (done) is saved all the same.
        await store.awrite(name, (), pager.state)
        export.started_stream = True
    return EXIT_OK


class _FollowRun(Protocol):
    """What the follow loop reads and sets of the run (`follow.FollowRun`)."""

    options: Options
    counters: Counters
    stream_opened: bool
    started_stream: bool
    follower: Follower[Any] | None

    @property
    def display(self) -> _Display: ...

    def make_follower(self, client: Client, resume: FollowState | None) -> Follower[Any]: ...


class _Display(Protocol):
    def start(self, total: int | None) -> None: ...
    def update(self) -> None: ...
    def stop(self) -> None: ...


async def follow_into_store(
    run: _FollowRun, stack: contextlib.AsyncExitStack, client: Client
) -> int:
    """`--follow` / `--update` into an SQLite output: one commit per call, with the state.

    Where it starts: the follow kept in the file under the endpoint's name; else an export
    kept there (an unfinished one is run to its end first), whose end and rows (the tasks
    still queued, those near the end) seed the follow; else --from. Each call's records and
    the follower's state are one transaction, so a SIGKILL at any moment loses and repeats
    nothing, and a changed task replaces its row.
    """
    options = run.options
    assert options.output is not None  # options_from: sqlite needs -o
    store = stack.enter_context(open_store(options.output))
    name = stream_name(options.api, options.command)
    kind = store.streams().get(name)
    resume: FollowState | None = None
    if kind == "follow":
        resume = store.follow_state(name)
        if not options.quiet:
            say(f"continuing the follow of {name} in {options.output}")
    elif kind == "stream":
        saved = store.stream_state(name)
        assert saved is not None
        if not saved.done:
            saved = await _finish_export(run, store, name, client, saved)
        resume = _after_export(store, saved)
    elif options.datetime_from is None:
        raise CliError(
            EXIT_USAGE,
            f"--from is required: {options.output} holds no export or follow of {name} to continue",
        )
    follower = run.make_follower(client, resume)
    run.follower = follower
    stack.push_async_callback(follower.aclose)
    run.stream_opened = True
    run.display.start(None)
    stack.callback(run.display.stop)
    async for batch in follower.batches():
        # One transaction with the state; a cancellation waits for it to end (Store.awrite).
        wrote = await store.awrite(name, batch, follower.state)
        run.started_stream = True
        run.counters.records += len(batch)
        run.counters.pages = follower.calls  # a follow's pages are its calls
        if options.command == "id-list":
            run.counters.cost = (run.counters.cost or 0.0) + wrote.cost
        run.display.update()
    # --update's one poll is over (a --follow ends by a signal, never here): keep where it
    # got to, records or not, so the next run reads from there.
    await store.awrite(name, (), follower.state)
    run.started_stream = True
    return EXIT_OK


async def _finish_export(
    run: _FollowRun, store: Store, name: str, client: Client, saved: PagerState
) -> PagerState:
    """Run the export kept in the store to its end, as a plain re-run would; its last state."""
    api = client.api(saved.api)
    pager = api.id_list(resume=saved) if saved.function == "id_list" else api.errors(resume=saved)
    try:
        async for page in pager.pages():
            wrote = await store.awrite(name, page.records, pager.state)
            run.counters.records += wrote.records
            run.counters.pages += 1
            if saved.function == "id_list":
                run.counters.cost = (run.counters.cost or 0.0) + wrote.cost
    finally:
        await pager.aclose()
    await store.awrite(name, (), pager.state)
    return pager.state


def _after_export(store: Store, saved: PagerState) -> FollowState:
    """Where a follow starts after a finished export kept in the store: its end, and its rows."""
    end = datetime.strptime(str(saved.params["datetime_to"]), "%Y-%m-%d %H:%M:%S %z")
    since = datetime.fromtimestamp(int(end.timestamp()) - FOLLOW_LOOKBACK, end.tzinfo)
    if saved.function == "id_list":
        return FollowState.after_id_list_export(
            api=saved.api,
            include_metadata=bool(saved.params.get("include_metadata", False)),
            end=end,
            lookback=FOLLOW_LOOKBACK,
            tasks=store.tasks_to_follow(saved.api, since),
        )
    function = saved.params.get("filtered_function")
    function = None if function is None else str(function)
    return FollowState.after_errors_export(
        api=saved.api,
        filtered_function=function,
        end=end,
        lookback=FOLLOW_LOOKBACK,
        entries=store.errors_since(saved.api, since, function),
    )
