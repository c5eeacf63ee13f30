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
from typing import Any, Protocol

from dfs_async import Client, PagerState, Store, StoreError, StoreLockedError

from .exits import EXIT_OK, EXIT_USAGE, CliError, say
from .options import Options
from .progress import Counters, Display, plural

__all__ = ["run_into_store", "stream_name"]


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
