"""The async drivers of webhook recovery: resend in calls of 100, gather the failed deliveries.

The rules (ids, batches, replies, grouping) are in `_webhooks.py`; calls go through the
client's one call path, with its limiter (one for ``webhook_resend``, apart from every other
endpoint's) and its retry policy.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._models import FailedWebhook, TaskError, WebhookResendOutcome
from ._webhooks import (
    WEBHOOK_RESEND_PATH,
    FailureGroups,
    batches,
    encode_resend_body,
    read_outcomes,
)

if TYPE_CHECKING:
    from ._calls import Calls
    from ._pager import Pager

__all__ = ["WebhookResend", "collect_failed_webhooks"]


class WebhookResend:
    """The resending of some tasks' webhooks: ``await`` it for every outcome at once, or
    ``async for`` it to get each call's outcomes as that call returns.

    One outcome per distinct id, in the order given. A call that fails (after the client's
    retries) raises; with ``async for``, the outcomes of the calls before it were already
    yielded. Single-use.
    """

    def __init__(self, client: Calls, ids: list[str]) -> None:
        self._client = client
        self._ids = ids
        self._started = False

    def __repr__(self) -> str:
        return f"<WebhookResend {len(self._ids)} ids in {self.calls} calls>"

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids to resend, each once, in the order given."""
        return tuple(self._ids)

    @property
    def calls(self) -> int:
        """How many calls it takes (at most 100 ids each; none for no ids)."""
        return len(batches(self._ids))

    def __await__(self) -> Generator[Any, None, list[WebhookResendOutcome]]:
        return self._all().__await__()

    def __aiter__(self) -> AsyncIterator[WebhookResendOutcome]:
        return self._iterate()

    async def _all(self) -> list[WebhookResendOutcome]:
        return [outcome async for outcome in self._iterate()]

    async def _iterate(self) -> AsyncGenerator[WebhookResendOutcome, None]:
        if self._started:
            raise RuntimeError("this webhook resend was already run; it is single-use")
        self._started = True
        for batch in batches(self._ids):
            for outcome in await _resend_batch(self._client, batch):
                yield outcome


async def _resend_batch(client: Calls, batch: Sequence[str]) -> list[WebhookResendOutcome]:
    def read(status: int, headers: Mapping[str, str], raw: bytes) -> list[WebhookResendOutcome]:
        return read_outcomes(
            endpoint=WEBHOOK_RESEND_PATH,
            http_status=status,
            headers=headers,
            body=raw,
            sent=batch,
        )

    def done(outcomes: list[WebhookResendOutcome]) -> str:
        resent = sum(outcome.resent for outcome in outcomes)
        return f": {resent} resent, {len(outcomes) - resent} refused"

    return await client._call(
        WEBHOOK_RESEND_PATH,
        encode_resend_body(batch),
        read,
        label=f"{len(batch)} ids",
        done=done,
    )


async def collect_failed_webhooks(pagers: Sequence[Pager[TaskError]]) -> list[FailedWebhook]:
    """Read the streams to their end, folding their entries into one per task."""
    groups = FailureGroups()
    for pager in pagers:
        async with pager:
            async for entry in pager:
                groups.add(entry)
    return groups.result()
