"""`dfs-async resend-webhooks`: find the failed pingbacks and postbacks, resend each once.

    dfs-async resend-webhooks --api serp --state hooks.state -o resent.jsonl   # hourly, from cron
    dfs-async resend-webhooks --emulate --dry-run                               # the demo

Strategy: the failed deliveries are read with ``errors`` (``failed_webhooks``: one entry per
task, its latest failure), the state file (`Ledger`) decides which of them to send, and the
ids go to ``webhook_resend`` 100 a call. The ledger remembers, for each task resent, the
failure it was resent for (its datetime and how many entries share that datetime); a task is
sent again only when ``errors`` shows a newer failure than that one, such as the resend itself
failing. The ledger is saved atomically around each call: before it, with the call's ids
marked in flight; after it, with the resent ones recorded and nothing in flight. The API has
no idempotency key, so a call cut off by SIGKILL (or by the network, after its retries) may or
may not have been delivered: its ids stay unrecorded and the next run sends them again. That
one batch, at most 100 ids, is the only thing ever sent twice for the same failure; nothing
is missed, since only a reply marks an id as resent. Refused ids are not recorded either:
the next run asks again (the endpoint is free). A lock on ``FILE.lock`` keeps two runs from
using one state file at once (cron runs that overlap).

The pure part (the ledger, the options' relative times, the summary) is in
`dfs_async.cli.resend_rules`; the run reuses the CLI's credentials, logging, signal handling,
output writers and atomic save.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import dfs_async
from dfs_async import FailedWebhook

from .account import credentials
from .emulate import EMULATOR_RATE, REAL_RATE, command_now
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
from .export import open_client
from .files import check_writable, same_file
from .locks import exclusive
from .logs import configure_logging, logger
from .options import Options, common_problem
from .parser import DEFAULT_API, EXIT_REFUSED, RESEND
from .progress import Counters, Display, plural
from .resend_rules import LEDGER_REACH, Ledger, ResendRow, Tally, resolve
from .signals import interruptible
from .state import save_state
from .writers import Output, field_names, silence_stdout

__all__ = ["Resend", "resend_options", "run"]

# What the --emulate demo seeds: the done-when's shape, and two tasks that expired since.
DEMO_TASKS = 180
DEMO_FAILURES = 250
DEMO_EXPIRED = 2


# -- options -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ResendOptions:
    """The parsed command line: the options shared with the other commands, and these."""

    common: Options
    kind: str
    since: datetime | timedelta
    until: datetime | timedelta | None
    dry_run: bool
    strict: bool


def resend_options(namespace: argparse.Namespace) -> ResendOptions:
    """The options from their parsed arguments, cross-checked; CliError (exit 2) if wrong."""
    values = vars(namespace)
    common = Options(
        command=RESEND,
        datetime_from=None,
        datetime_to=None,
        format=values["format"],
        output=values["output"],
        state=values["state"],
        max_items=None,
        page_size=1000,
        quiet=values["quiet"],
        debug=values["debug"],
        login=values["login"],
        password_file=values["password_file"],
        api=values["api"] or DEFAULT_API,
        base_url=values["base_url"],
        retries=values["retries"],
        emulate=values["emulate"],
        emulate_rate=values["emulate_rate"],
        emulate_tasks=values["emulate_tasks"],
        emulate_errors=values["emulate_errors"],
        proxy=values["proxy"],
    )
    common = common.at(command_now(common.emulate, os.environ))
    problem = common_problem(common)
    if (
        common.state is not None
        and common.output is not None
        and same_file(common.output, common.state)
    ):
        problem = "-o and --state name the same file; the state needs a file of its own"
    if problem is not None:
        raise CliError(EXIT_USAGE, f"{problem} (see 'dfs-async {RESEND} --help')")
    return ResendOptions(
        common=common,
        kind=values["kind"],
        since=values["since"],
        until=values["until"],
        dry_run=values["dry_run"],
        strict=values["strict"],
    )


# -- the run -----------------------------------------------------------------------------


def load_ledger(path: str) -> Ledger:
    """The saved ledger, an empty one if the file does not exist; CliError (exit 2) if bad."""
    try:
        with open(path, encoding="utf-8") as file:
            return Ledger.from_json(json.load(file))
    except FileNotFoundError:
        return Ledger()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CliError(EXIT_USAGE, f"bad state file {path}: {reason}") from None


@attrs.define
class Resend:
    """One run of `resend-webhooks`."""

    options: ResendOptions
    ledger: Ledger = attrs.field(factory=Ledger, repr=False)
    #: Never in the repr: a traceback or a log line must not show the password.
    credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    tally: Tally = attrs.Factory(Tally)
    #: The ids of the call under way, if any (for the message of an interrupted run).
    in_flight: tuple[str, ...] = ()
    #: Set once the failures are known: a summary is worth printing from then on.
    found: bool = False
    #: The client's clock when the run started.
    now: datetime | None = None

    def prepare(self) -> None:
        """Blocking reads before the event loop: the state file and the credentials."""
        common = self.options.common
        if common.state is not None:
            self.ledger = load_ledger(common.state)
        if not common.emulate:
            self.credentials = credentials(common, os.environ)

    async def run(self) -> int:
        options, common = self.options, self.options.common
        async with contextlib.AsyncExitStack() as stack:
            client, emulator = await open_client(common, self.credentials, stack)
            if emulator is not None:
                notice = _seed_demo(emulator, common)
                if not common.quiet:
                    say(notice)
            now = self.now = client.now()
            failures = await client.api(common.api).failed_webhooks(
                kind=options.kind,
                datetime_from=resolve(options.since, now),
                datetime_to=resolve(options.until, now),
            )
            plan = self.ledger.plan(failures)
            tally = self.tally
            tally.found = len(failures)
            tally.deliveries = sum(f.failed_attempts for f in failures)
            tally.skipped = len(plan.skipped)
            tally.to_send = len(plan.to_resend)
            self.found = True
            if plan.again and not options.dry_run and not common.quiet:
                say(
                    f"sending again {plural(len(plan.again), 'task')} whose call was in "
                    "flight when an earlier run stopped: the API cannot tell whether it arrived"
                )
            columns = field_names(ResendRow)
            output: Output | None = None
            if options.dry_run:
                output = self._open(stack, columns)
                output.write_records([ResendRow.of(f, None) for f in plan.to_resend])
                return EXIT_OK
            for batch in _batches(plan.to_resend):
                self._save(self.ledger.start(batch))
                self.in_flight = tuple(f.id for f in batch)
                outcomes = await client.webhook_resend(self.in_flight)
                # No await from here to the save: a cancellation cannot split the two.
                tally.add(outcomes)
                by_id = {o.id: o for o in outcomes}
                if output is None:
                    output = self._open(stack, columns)
                output.write_records([ResendRow.of(f, by_id[f.id]) for f in batch])
                self.ledger = self.ledger.finish(batch, outcomes)
                self.in_flight = ()
                self._save(self.ledger)
            if output is None:  # nothing to send: the run's report is empty, not the last one's
                output = self._open(stack, columns)
            self._save(self.ledger)  # forgets what errors can no longer list
        if options.strict and tally.refused:
            return EXIT_REFUSED
        return EXIT_OK

    def _open(self, stack: contextlib.AsyncExitStack, columns: Sequence[str]) -> Output:
        common = self.options.common
        return Output.opened(common.output, common.format, columns, None, stack)

    def _save(self, ledger: Ledger) -> None:
        state = self.options.common.state
        if state is None:
            return
        if self.now is not None:
            ledger = ledger.prune(self.now - LEDGER_REACH)
        save_state(state, ledger)

    def in_flight_note(self) -> str:
        """What an interrupted or failed run says about the call it was making."""
        if not self.in_flight:
            return ""
        if self.options.common.state is None:
            return (
                f"; the call in flight ({plural(len(self.in_flight), 'id')}) may have been "
                "delivered"
            )
        return (
            f"; the call in flight ({plural(len(self.in_flight), 'id')}) may have been "
            "delivered: the next run with this --state sends those ids again"
        )


def _batches(failures: Sequence[FailedWebhook]) -> Iterator[tuple[FailedWebhook, ...]]:
    size = dfs_async.WEBHOOK_RESEND_MAX_IDS
    for start in range(0, len(failures), size):
        yield tuple(failures[start : start + size])


def _seed_demo(emulator: Any, common: Options) -> str:
    """Seed the demo's failed deliveries into the emulator; the notice that says so."""
    # Laid out before the start of the hour, not the run: a second run within the hour finds
    # the same failures, so the demo shows them skipped as already resent.
    anchor = common.started.replace(minute=0, second=0, microsecond=0)
    since = anchor - timedelta(hours=22)
    until = anchor - timedelta(minutes=10)
    emulator.webhooks.seed_failures(
        tasks=DEMO_TASKS,
        failures=DEMO_FAILURES,
        since=since,
        until=until,
        expired=DEMO_EXPIRED,
        api=common.api,
    )
    rate = common.emulate_rate or EMULATOR_RATE
    return (
        f"emulator: {DEMO_TASKS + DEMO_EXPIRED} tasks with failed webhooks "
        f"({DEMO_FAILURES + DEMO_EXPIRED} failed deliveries, {DEMO_EXPIRED} of the tasks "
        f"expired since) between {since:%Y-%m-%d %H:%M} and {until:%H:%M} UTC (before "
        f"the start of this hour); rate limit shortened to "
        f"{plural(rate[0], 'call')} / {rate[1]:g} s (the client assumes {REAL_RATE[0]} / "
        f"{REAL_RATE[1]:g} s for the real API)"
    )


async def _run_with_signals(resend: Resend) -> int:
    return await interruptible(resend.run)


def run(namespace: argparse.Namespace) -> int:
    """The command, from its parsed arguments; the exit status."""
    options = resend_options(namespace)
    common = options.common
    if common.output is not None:
        check_writable("-o", common.output, replaced=False)
    if common.state is not None:
        check_writable("--state", common.state, replaced=True)
    counters = Counters()
    handler = configure_logging(common, Display(counters, enabled=False))
    resend = Resend(options)
    try:
        with exclusive(common.output, None if options.dry_run else common.state):
            resend.prepare()
            code = asyncio.run(_run_with_signals(resend))
    except KeyboardInterrupt:
        print_traceback(common)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away: 141, as an export says it
        silence_stdout()
        note = resend.in_flight_note()
        if note:
            say(f"dfs-async: error: the reader of standard output went away{note}")
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        print_traceback(common)
        code, message = classify(exc)
        if resend.found and not common.quiet:
            say(resend.tally.summary(dry_run=options.dry_run))
        say(error_line(f"{message}{resend.in_flight_note()}", common))
        return code
    finally:
        logger.removeHandler(handler)
    if code >= 128:
        done = resend.tally.summary(dry_run=options.dry_run) if resend.found else "early"
        say(f"interrupted: {done}{resend.in_flight_note()}")
    elif not common.quiet:
        say(resend.tally.summary(dry_run=options.dry_run))
    if code == EXIT_REFUSED:
        refused = sum(resend.tally.refused.values())
        say(f"dfs-async: error: {plural(refused, 'id')} refused (--strict)")
    return code
