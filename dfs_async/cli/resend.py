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

The pure part (the ledger, the options' relative times, the summary) comes first; the run
reuses the CLI's credentials, logging, signal handling, output writers and atomic save.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import dfs_async
from dfs_async import FailedWebhook, WebhookResendOutcome

from .account import credentials
from .dates import When, resolve_when
from .emulate import EMULATOR_RATE, REAL_RATE, command_now
from .exits import (
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
from .signals import interruptible
from .state import save_state
from .writers import Output, field_names

__all__ = ["Ledger", "Mark", "ResendRow", "run"]

LEDGER_FORMAT = 1
#: How long the ledger remembers a failure: ``errors`` lists seven days, and a day more
#: allows for the server's clock being behind ours. An older failure cannot be listed again,
#: so forgetting it changes no decision (a newer failure is newer than any mark anyway).
LEDGER_REACH = timedelta(days=8)

# What the --emulate demo seeds: the done-when's shape, and two tasks that expired since.
DEMO_TASKS = 180
DEMO_FAILURES = 250
DEMO_EXPIRED = 2


# -- pure: times, the ledger, rows, the summary --------------------------------------------


def resolve(moment: When | None, now: datetime) -> datetime | None:
    """An option's moment as a datetime; a span counts back from `now`."""
    return None if moment is None else resolve_when(moment, now)


@attrs.frozen(kw_only=True)
class Mark:
    """The failure a task was resent for: its datetime and how many entries share it."""

    datetime: datetime
    attempts_at_latest: int

    @classmethod
    def of(cls, failure: FailedWebhook) -> Mark:
        return cls(datetime=failure.latest.datetime, attempts_at_latest=failure.attempts_at_latest)

    def is_older_than(self, failure: FailedWebhook) -> bool:
        """Whether `failure` shows a failed delivery after the one this mark records."""
        latest = failure.latest.datetime
        return latest > self.datetime or (
            latest == self.datetime and failure.attempts_at_latest > self.attempts_at_latest
        )


@attrs.frozen(kw_only=True)
class Plan:
    """What a run does with the failures it found."""

    #: Newest first, as found.
    to_resend: tuple[FailedWebhook, ...]
    #: Already resent for this very failure.
    skipped: tuple[FailedWebhook, ...]
    #: Of `to_resend`, the ids whose call was in flight when an earlier run stopped.
    again: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Ledger:
    """The state file: which failure each task was resent for, and the call in flight."""

    resent: Mapping[str, Mark] = attrs.field(factory=dict)
    #: The ids of the call that was under way when this was saved (empty between calls).
    in_flight: tuple[str, ...] = ()

    def plan(self, failures: Sequence[FailedWebhook]) -> Plan:
        to_resend, skipped = [], []
        for failure in failures:
            mark = self.resent.get(failure.id)
            if mark is None or mark.is_older_than(failure):
                to_resend.append(failure)
            else:
                skipped.append(failure)
        flying = set(self.in_flight)
        return Plan(
            to_resend=tuple(to_resend),
            skipped=tuple(skipped),
            again=tuple(f.id for f in to_resend if f.id in flying),
        )

    def start(self, batch: Sequence[FailedWebhook]) -> Ledger:
        """Before a call: its ids are in flight."""
        return attrs.evolve(self, in_flight=tuple(f.id for f in batch))

    def finish(
        self, batch: Sequence[FailedWebhook], outcomes: Sequence[WebhookResendOutcome]
    ) -> Ledger:
        """After a call: the resent ids are recorded with their failure; nothing in flight."""
        failures = {f.id: f for f in batch}
        resent = dict(self.resent)
        for outcome in outcomes:
            if outcome.resent:
                resent[outcome.id] = Mark.of(failures[outcome.id])
        return Ledger(resent=resent, in_flight=())

    def prune(self, earliest: datetime) -> Ledger:
        """Forget failures older than `earliest`: errors can no longer list them."""
        kept = {ident: mark for ident, mark in self.resent.items() if mark.datetime >= earliest}
        return attrs.evolve(self, resent=kept)

    def to_json(self) -> dict[str, Any]:
        return {
            "dfs_async_resend": LEDGER_FORMAT,
            "resent": {
                ident: {
                    "failure": mark.datetime.isoformat(),
                    "attempts_at_latest": mark.attempts_at_latest,
                }
                for ident, mark in sorted(self.resent.items())
            },
            "in_flight": list(self.in_flight),
        }

    @classmethod
    def from_json(cls, data: object) -> Ledger:
        if not isinstance(data, dict) or data.get("dfs_async_resend") != LEDGER_FORMAT:
            raise ValueError(f"not a resend-webhooks state file (format {LEDGER_FORMAT})")
        resent, in_flight = data.get("resent"), data.get("in_flight")
        if not isinstance(resent, dict):
            raise ValueError(f"bad resent {excerpt_json(resent)}")
        if not isinstance(in_flight, list) or not all(isinstance(i, str) for i in in_flight):
            raise ValueError(f"bad in_flight {excerpt_json(in_flight)}")
        marks = {}
        for ident, entry in resent.items():
            try:
                moment = datetime.fromisoformat(entry["failure"])
                count = entry["attempts_at_latest"]
            except (TypeError, KeyError, ValueError):
                raise ValueError(f"bad entry for {ident}: {excerpt_json(entry)}") from None
            if moment.tzinfo is None or type(count) is not int or count < 1:
                raise ValueError(f"bad entry for {ident}: {excerpt_json(entry)}")
            marks[ident] = Mark(datetime=moment, attempts_at_latest=count)
        return cls(resent=marks, in_flight=tuple(in_flight))


def excerpt_json(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:80] + "..."


@attrs.frozen(kw_only=True)
class ResendRow:
    """One line of -o: what happened to one task, and the failure it was resent for."""

    id: str
    #: ``resent``, ``refused``, or ``would resend`` (--dry-run).
    outcome: str
    status_code: int | None
    status_message: str | None
    #: The latest failure: ``pingback_url`` or ``postback_url``, when, where, the answer.
    function: str
    datetime: datetime
    http_url: str
    http_code: int
    http_response: str
    failed_attempts: int

    @classmethod
    def of(cls, failure: FailedWebhook, outcome: WebhookResendOutcome | None) -> ResendRow:
        latest = failure.latest
        return cls(
            id=failure.id,
            outcome="would resend"
            if outcome is None
            else "resent"
            if outcome.resent
            else "refused",
            status_code=None if outcome is None else outcome.status_code,
            status_message=None if outcome is None else outcome.status_message,
            function=latest.function,
            datetime=latest.datetime,
            http_url=latest.http_url,
            http_code=latest.http_code,
            http_response=latest.http_response,
            failed_attempts=failure.failed_attempts,
        )


@attrs.define
class Tally:
    """What the run found and did, for the summary."""

    found: int = 0
    deliveries: int = 0
    skipped: int = 0
    to_send: int = 0
    resent: int = 0
    calls: int = 0
    refused: Counter[int] = attrs.field(factory=Counter)

    def add(self, outcomes: Sequence[WebhookResendOutcome]) -> None:
        self.calls += 1
        for outcome in outcomes:
            if outcome.resent:
                self.resent += 1
            else:
                self.refused[outcome.status_code] += 1

    def summary(self, *, dry_run: bool) -> str:
        """``found 180 tasks with failed webhooks (250 failed deliveries); resent 178 in 2
        calls; refused 2 (40400: 1, 40501: 1); skipped 0 already resent``."""
        found = (
            f"found {plural(self.found, 'task')} with failed webhooks "
            f"({plural(self.deliveries, 'failed delivery', 'failed deliveries')})"
        )
        skipped = f"skipped {self.skipped:,} already resent"
        if dry_run:
            calls = -(-self.to_send // dfs_async.WEBHOOK_RESEND_MAX_IDS)
            return (
                f"{found}; would resend {self.to_send:,} in {plural(calls, 'call')}; "
                f"{skipped}; dry run: nothing was sent"
            )
        refused = sum(self.refused.values())
        text = f"{found}; resent {self.resent:,} in {plural(self.calls, 'call')}"
        if refused:
            codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(self.refused.items()))
            text += f"; refused {refused:,} ({codes})"
        else:
            text += "; refused 0"
        return f"{text}; {skipped}"


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
        if common.output is None:
            output = Output.to_stdout(common.format, columns)
        else:
            output = Output.to_file(common.output, common.format, columns, None)
        stack.callback(output.close)
        return output

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
