"""An emulator of DataForSEO's id_list and errors endpoints, for tests, demos and benchmarks.

`Emulator` is an aiohttp server on 127.0.0.1 that answers as the API documentation describes
(and ``POST /v3/appendix/webhook_resend``, with tasks whose webhooks failed: `emu.webhooks`):
Basic auth, validation codes, offset/limit paging over deterministic synthetic data, a rolling
rate-limit window on the event loop's clock, and faults injected per request number.
It shares one rule with the client (the calendar reading of "six months"), nothing else of it.

    async with Emulator("login", "password", rate_limit=(10, 60.0)) as emu:
        emu.inject(2, Fault.http_status(502))      # the 2nd request received gets a 502
        ...                                         # point the code under test at emu.url
        assert emu.max_calls_in_window("/v3/backlinks/id_list", 60.0) <= 10

`Emulator(live=Live(...))` plays a live account instead (tasks posted, queued, completed;
errors arriving) on the loop clock; `emu.live.history` holds every version it ever held.

Run it as a process with `python -m dfs_async.testing --port 0` (see `--help`).
"""

from ._data import TaskSequence, generate_errors, generate_tasks
from ._emulator import Emulator, LoggedRequest
from ._faults import Fault
from ._live import Live
from ._webhooks import Hold, Resent, Webhooks, WebhookTask

__all__ = [
    "Emulator",
    "Fault",
    "Hold",
    "Live",
    "LoggedRequest",
    "Resent",
    "TaskSequence",
    "WebhookTask",
    "Webhooks",
    "generate_errors",
    "generate_tasks",
]
