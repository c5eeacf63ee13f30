"""The two data sets the emulator serves, kept in the order the API pages them (pure, no aiohttp).

Tasks are kept oldest first by `datetime_posted`, errors newest first by `datetime`, each beside a
list of epoch keys, so a window is two bisections and a page is a slice: no page costs more than
its own records. Generated tasks stay lazy (`_data.TaskSequence` renders a page's JSON directly);
records a caller passes are copied and sorted (stably, so equal times keep the caller's order).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import _data
from ._requests import ErrorsQuery, IdListQuery
from ._responses import encode_text, item

__all__ = ["DataSets"]


class DataSets:
    """The id_list tasks and the errors entries of one emulator."""

    def __init__(
        self,
        *,
        tasks: Sequence[Mapping[str, Any]] | None,
        errors: Sequence[Mapping[str, Any]] | None,
        n_tasks: int,
        n_errors: int,
        seed: int,
        created: datetime,
        data_days: int,
        now: Callable[[], datetime],
    ) -> None:
        # The clock is read only when a head insert finds its data set empty.
        self._now = now
        self._insert_rng = random.Random(f"dfs-async-insert-{seed}")
        self._tasks: list[dict[str, Any]] | _data.TaskSequence
        self._task_keys: list[int] | Sequence[int]
        if tasks is None:
            # Kept lazy whatever its size: pages are served from the generator's JSON text.
            generated = _data.TaskSequence(n_tasks, seed=seed, now=created, days=data_days)
            self._tasks = generated
            self._task_keys = generated.posted_keys
        else:
            # Keep the caller's order among equal times (sorted() is stable).
            pairs = sorted(
                ((_data.parse_api_datetime(t["datetime_posted"]), t) for t in tasks),
                key=lambda pair: pair[0],
            )
            self._tasks = [dict(record) for _, record in pairs]
            self._task_keys = [key for key, _ in pairs]

        source = (
            _data.generate_errors(n_errors, seed=seed, now=created) if errors is None else errors
        )
        pairs_e = sorted(
            ((_data.parse_api_datetime(e["datetime"]), e) for e in source),
            key=lambda pair: -pair[0],
        )
        self._errors: list[dict[str, Any]] = [dict(entry) for _, entry in pairs_e]
        # Negated times, so the newest-first list is ascending for bisect.
        self._error_keys: list[int] = [-key for key, _ in pairs_e]

    @property
    def tasks(self) -> Sequence[dict[str, Any]]:
        """The id_list data set, oldest first, records as the API returns them with metadata."""
        return self._tasks

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The errors data set, newest first."""
        return self._errors

    # -- reading -------------------------------------------------------------------------------

    def task_range(self, start: int, end: int) -> tuple[int, int]:
        """The indices [lo, hi) of the tasks posted in [start, end] (epoch seconds)."""
        return (
            bisect.bisect_left(self._task_keys, start),
            bisect.bisect_right(self._task_keys, end),
        )

    def select_errors(
        self, function: str | None, start: int | None, end: int | None
    ) -> list[dict[str, Any]]:
        """The stored entries in [start, end] of this function, newest first."""
        lo = 0 if end is None else bisect.bisect_left(self._error_keys, -end)
        hi = len(self._errors) if start is None else bisect.bisect_right(self._error_keys, -start)
        window = self._errors[lo:hi]
        if function is None:
            return window
        return [entry for entry in window if entry.get("function") == function]

    def id_list_page(self, query: IdListQuery) -> list[str]:
        """The page of id_list items this query asks for, each as JSON text."""
        lo, hi = self.task_range(query.start, query.end)
        if query.descending:
            first = hi - 1 - query.offset
            indices = range(first, max(first - query.limit, lo - 1), -1)
        else:
            first = lo + query.offset
            indices = range(first, min(first + query.limit, hi))
        tasks = self._tasks
        if isinstance(tasks, _data.TaskSequence):
            return [tasks.item_json(i, query.metadata) for i in indices]
        return [encode_text(item(tasks[i], query.metadata)) for i in indices]

    def errors_page(self, query: ErrorsQuery) -> list[str]:
        """The page of errors entries this query asks for, each as JSON text."""
        selected = self.select_errors(query.function, query.start, query.end)
        return [encode_text(entry) for entry in selected[query.offset : query.offset + query.limit]]

    def expected_id_list(
        self, start: int, end: int, descending: bool, metadata: bool
    ) -> list[dict[str, Any]]:
        """Every item id_list pages would return for this window, in order."""
        lo, hi = self.task_range(start, end)
        indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        return [item(self._tasks[i], metadata) for i in indices]

    # -- changing ------------------------------------------------------------------------------

    def add_error(self, entry: dict[str, Any]) -> None:
        """Store one more errors entry where its datetime puts it (newest first)."""
        key = -_data.parse_api_datetime(entry["datetime"])
        index = bisect.bisect_left(self._error_keys, key)
        self._errors.insert(index, entry)
        self._error_keys.insert(index, key)

    def insert_head(self, function: str, count: int) -> None:
        """Add `count` records newer than all others to the id_list or the errors data set."""
        if function == "id_list":
            self._insert_tasks(count)
        else:
            self._insert_errors(count)

    def _insert_tasks(self, count: int) -> None:
        keys = self._task_keys
        posted = keys[-1] + 1 if len(keys) else int(self._now().timestamp()) - 60
        if isinstance(self._tasks, _data.TaskSequence):
            self._tasks.add_newer(count, posted)
            return
        assert isinstance(keys, list)
        key = self._insert_rng.getrandbits(64)
        size = len(self._tasks)
        self._tasks.extend(_data.make_task(key, size + i, posted) for i in range(count))
        keys.extend([posted] * count)

    def _insert_errors(self, count: int) -> None:
        epoch = -self._error_keys[0] + 1 if self._errors else int(self._now().timestamp()) - 60
        entries = [_data.make_error(self._insert_rng, epoch) for _ in range(count)]
        self._errors[:0] = entries
        self._error_keys[:0] = [-epoch] * count
