"""How far back the endpoints reach: the one rule the client and the emulator share.

The documentation says id_list reaches back "six months" ("one month" with
``include_metadata``) and errors "seven days". The client reads the months as calendar months
(the same day and time, clamped to the month's end) and refuses an older window before any call;
the emulator refuses it as the server. Both import this module, so a window the client accepts is
never refused by the emulator, on any date. Standard library only: `dfs_async.testing` imports
nothing else of the client.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

__all__ = [
    "ERRORS_DAYS",
    "ID_LIST_METADATA_MONTHS",
    "ID_LIST_MONTHS",
    "errors_earliest",
    "id_list_earliest",
    "months_before",
]

#: How far back the windows may reach (the endpoint documentation).
ID_LIST_MONTHS = 6
ID_LIST_METADATA_MONTHS = 1
ERRORS_DAYS = 7


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (clamped to the month's end)."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def id_list_earliest(now: datetime, *, include_metadata: bool) -> datetime:
    """The oldest `datetime_from` id_list accepts at `now`."""
    return months_before(now, ID_LIST_METADATA_MONTHS if include_metadata else ID_LIST_MONTHS)


def errors_earliest(now: datetime) -> datetime:
    """The oldest `datetime_from` errors accepts at `now`."""
    return now - timedelta(days=ERRORS_DAYS)
