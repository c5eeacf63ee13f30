"""resend-webhooks, the pure part: the ledger that decides what to send, the rows, the summary.

The ledger remembers, for each task resent, the failure it was resent for (its datetime and
how many entries share that datetime); a task is sent again only when ``errors`` shows a newer
failure than that one. No I/O here: `dfs_async.cli.resend` reads and saves it around each call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import dfs_async
from dfs_async import FailedWebhook, WebhookResendOutcome

from .dates import When, resolve_when
from .progress import plural

__all__ = ["Ledger", "Mark", "Plan", "ResendRow", "Tally", "resolve"]

LEDGER_FORMAT = 1
#: How long the ledger remembers a failure: ``errors`` lists seven days, and a day more
#: allows for the server's clock being behind ours. An older failure cannot be listed again,
#: so forgetting it changes no decision (a newer failure is newer than any mark anyway).
LEDGER_REACH = timedelta(days=8)


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
