"""Checked by mypy, never run: webhook recovery keeps its precise types (no `Any` leaks)."""

from __future__ import annotations

from datetime import datetime
from typing import assert_type

import dfs_async


async def outcomes_are_typed(client: dfs_async.Client, start: datetime) -> None:
    failed = await client.api("serp").failed_webhooks(kind="pingback", datetime_from=start)
    assert_type(failed, list[dfs_async.FailedWebhook])
    assert_type(failed[0].latest, dfs_async.TaskError)
    assert_type(failed[0].failed_attempts, int)
    resend = client.webhook_resend(item.id for item in failed)
    assert_type(resend, dfs_async.WebhookResend)
    assert_type(await resend, list[dfs_async.WebhookResendOutcome])
    async for outcome in client.webhook_resend([]):
        assert_type(outcome, dfs_async.WebhookResendOutcome)
        assert_type(outcome.resent, bool)
        assert_type(outcome.status_code, int)
    assert_type(dfs_async.WEBHOOK_RESEND_MAX_IDS, int)
