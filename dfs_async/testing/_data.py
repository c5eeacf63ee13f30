"""Synthetic, deterministic data sets for the emulator: id_list tasks and errors entries.

Tasks are computed from their index (`TaskSequence`), so a million of them cost no memory until
a page is asked for; small sets are materialised as plain lists. Errors are few and built eagerly.
"""

from __future__ import annotations

import functools
import json
import random
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Final, overload

__all__ = ["TaskSequence", "generate_errors", "generate_tasks"]

_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1
_DAY = 86_400

# Generated data stops this long before `now`, so records added later by `insert_head` (one
# second after the newest) still fall inside a window that ends at `now`.
_END_MARGIN = 600

# generate_tasks() returns up to this many tasks as a list of dicts (about 1 KB each); above it,
# a TaskSequence that computes each from its index. The emulator always keeps the sequence.
MATERIALISE_LIMIT = 20_000

_ACCOUNT = 1535  # the second group of DataForSEO's task ids looks like an account number

_FUNCTIONS = (
    "summary",
    "backlinks",
    "anchors",
    "referring_domains",
    "domain_pages",
    "history",
    "competitors",
    "bulk_ranks",
    "bulk_backlinks",
    "timeseries_summary",
)
_TARGETS = (
    "example.com",
    "dataforseo.com",
    "python.org",
    "wikipedia.org",
    "github.com",
    "aiohttp.org",
    "example.org",
    "docs.python.org",
)
_LIMITS = (10, 50, 100, 100, 1000)
_TASK_FAILURES = (
    "Internal Error.",
    "Invalid Field: 'target'.",
    "Unknown Fields in POST Data: limit.",
    "No Search Results.",
)
_ERROR_FUNCTIONS = (
    "backlinks/live",
    "backlinks/summary",
    "backlinks/backlinks",
    "backlinks/anchors",
    "backlinks/referring_domains",
    "backlinks/content_duplicates",
)
# (error_code, error_message, http_code): the documentation's example answers 50000 over HTTP 200
# and echoes the DataForSEO code as http_code for field errors.
_ERROR_KINDS = (
    (50000, "Internal Error.", 200),
    (50000, "Internal Error.", 200),
    (40501, "Invalid Field: 'target'.", 40501),
    (40501, "Invalid Field: 'limit'.", 40501),
    (40506, "Unknown Fields in POST Data: limit.", 40506),
    (40503, "Invalid POST data.", 40503),
)

_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}( [+-][0-9]{2}:[0-9]{2})?"
)


def parse_api_datetime(text: str) -> int:
    """Seconds since the epoch for `YYYY-MM-DD HH:MM:SS [+HH:MM]` (no offset means UTC)."""
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a DataForSEO datetime: {text!r}")
    if match.group(1) is None:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    else:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
    return int(moment.timestamp())


def format_api_datetime(epoch: int) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, without an offset."""
    return f"{_minute(epoch // 60)[0]}:{epoch % 60:02d}"


@functools.lru_cache(maxsize=4096)
def _minute(minute: int) -> tuple[str, str]:
    """`YYYY-MM-DD HH:MM` and `MMDDHHMM` of a minute since the epoch.

    Formatting dominates the cost of a generated record, and neighbouring records share minutes.
    """
    moment = time.gmtime(minute * 60)
    return time.strftime("%Y-%m-%d %H:%M", moment), time.strftime("%m%d%H%M", moment)


def _mix(value: int) -> int:
    """SplitMix64's finaliser: a cheap, well-spread 64-bit hash of an integer."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def task_id(epoch: int, noise: int, unique: int) -> str:
    """A task id in DataForSEO's form: `MMDDHHMM-account-server-flag-hex12`.

    `unique` goes through a bijection of 48-bit integers (odd multiplier, then xor), so distinct
    values below 2**48 give distinct ids.
    """
    server = noise % 500
    flag = "1000" if (noise >> 12) % 8 == 0 else "0000"
    tail = ((unique * 0x9E3779B97F4B) ^ 0x5C3F6F3C2B1D) & _MASK48
    return f"{_minute(epoch // 60)[1]}-{_ACCOUNT:04d}-{server:04d}-{flag}-{tail:012x}"


def _metadata_pool() -> list[tuple[str, str, str]]:
    """Every (url field, metadata JSON without its closing brace, cost) a generated task has."""
    pool = []
    for function in _FUNCTIONS:
        url = f"https://api.dataforseo.com/v3/backlinks/{function}/live"
        for target in _TARGETS:
            for limit in _LIMITS:
                for subdomains in ("false", "true"):
                    for status_type in ("all", "live", "live", "live"):
                        meta = (
                            f'{{"api":"backlinks","function":"{function}","target":"{target}",'
                            f'"limit":{limit},"include_subdomains":{subdomains},'
                            f'"backlinks_status_type":"{status_type}"'
                        )
                        cost = repr(round(0.02 + 0.00003 * limit, 5))
                        pool.append((f'"url":"{url}"', meta, cost))
    return pool


_POOL: Final = _metadata_pool()


def task_json(key: int, index: int, posted: int) -> tuple[str, str]:
    """Record `index` of the data set hashed by `key`, posted at `posted`, as JSON text.

    Returns the item without its closing brace and the metadata object, so that a page can be
    served without building and encoding dicts: `head + "}"` or `head + ',"metadata":' + meta +
    "}"`. Every string inserted here is free of quotes and backslashes; floats use `repr`, as
    `json.dumps` does.
    """
    noise = _mix(key ^ index)
    more = _mix(noise)
    url, meta, cost = _POOL[noise % len(_POOL)]
    if (more >> 40) % 5 == 0:
        meta = f'{meta},"tag":"job-{(more >> 44) % 1000:03d}"}}'
    else:
        meta += "}"
    if more % 50 == 0:  # about 2% are still uncompleted
        done = "null"
        status = "Task In Queue."
        cost = "0.0"
    else:
        done = f'"{format_api_datetime(posted + 1 + (more >> 8) % 60)} +00:00"'
        if (more >> 16) % 100 < 6:
            status = _TASK_FAILURES[(more >> 24) % len(_TASK_FAILURES)]
            cost = "0.0"
        else:
            status = "Ok."
    ident = task_id(posted, noise >> 32, index ^ ((key & 0xFFFF) << 32))
    head = (
        f'{{"id":"{ident}",{url},"datetime_posted":"{format_api_datetime(posted)} +00:00",'
        f'"datetime_done":{done},"status":"{status}","cost":{cost}'
    )
    return head, meta


def make_task(key: int, index: int, posted: int) -> dict[str, Any]:
    """Record `index` of the data set hashed by `key`, posted at `posted`, as a dict."""
    head, meta = task_json(key, index, posted)
    record: dict[str, Any] = json.loads(f'{head},"metadata":{meta}}}')
    return record


class TaskSequence(Sequence[dict[str, Any]]):
    """Generated id_list tasks, oldest first, each built from its index when asked for.

    Strategy: the data set spans `[start, start + span)` seconds; record `i` is posted at
    `start + i * step + jitter(i)` with `jitter < step`, so times increase with the index. To make
    ties possible, about one odd index in eight reuses the time of the index before it. When the
    span is too short for a step of two seconds, times are `start + i * span // n` (ties appear
    naturally). The order of records is their index, so ties have a stable order. Records are
    made as JSON text first (`item_json`, what the emulator serves) and parsed into the dicts
    this sequence returns, so both always agree.
    """

    __slots__ = (
        "_jitter_key",
        "_key",
        "_n",
        "_span",
        "_start",
        "_step",
        "_tail",
        "_tail_posted",
        "_tie_key",
    )

    def __init__(self, n: int, *, seed: int, now: datetime, days: int = 150) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        self._n = n
        self._key = _mix(seed & _MASK64)
        self._jitter_key = _mix(self._key ^ 0x6A09E667F3BCC908)
        self._tie_key = _mix(self._key ^ 0xBB67AE8584CAA73B)
        end = int(now.timestamp()) - _END_MARGIN
        self._start = end - days * _DAY
        self._span = days * _DAY
        self._step = self._span // n if n else 0
        self._tail: list[tuple[str, str]] = []
        self._tail_posted: list[int] = []

    def posted_at(self, index: int) -> int:
        """The epoch second at which record `index` (0-based, non-negative) was posted."""
        if index >= self._n:
            return self._tail_posted[index - self._n]
        if index & 1 and _mix(self._tie_key ^ index) % 8 == 0:
            index -= 1
        if self._step >= 2:
            return self._start + index * self._step + _mix(self._jitter_key + index) % self._step
        return self._start + index * self._span // self._n

    @property
    def posted_keys(self) -> Sequence[int]:
        """A lazy view of `posted_at` for every record, ascending (what `bisect` needs)."""
        return _PostedKeys(self)

    def add_newer(self, count: int, posted: int) -> None:
        """Append `count` new records posted at `posted` (not earlier than the last record)."""
        size = len(self)
        if size and posted < self.posted_at(size - 1):
            raise ValueError("added records must not be older than the newest one")
        # Another key than the generated part's, so new records do not repeat old ones.
        key = _mix(self._key ^ 0x3C6EF372FE94F82B)
        self._tail.extend(task_json(key, size + i, posted) for i in range(count))
        self._tail_posted.extend([posted] * count)

    def item_json(self, index: int, metadata: bool) -> str:
        """Record `index` (0-based, non-negative) as an id_list result item in JSON text."""
        if index >= self._n:
            head, meta = self._tail[index - self._n]
        else:
            head, meta = task_json(self._key, index, self.posted_at(index))
        return f'{head},"metadata":{meta}}}' if metadata else head + "}"

    def _build(self, index: int) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(self.item_json(index, True))
        return record

    def __len__(self) -> int:
        return self._n + len(self._tail)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        size = len(self)
        if isinstance(index, slice):
            return [self._build(i) for i in range(*index.indices(size))]
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("TaskSequence index out of range")
        return self._build(index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self._build(index)

    def __repr__(self) -> str:
        return f"<TaskSequence of {len(self)} generated tasks>"


class _PostedKeys(Sequence[int]):
    __slots__ = ("_tasks",)

    def __init__(self, tasks: TaskSequence) -> None:
        self._tasks = tasks

    def __len__(self) -> int:
        return len(self._tasks)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        size = len(self._tasks)
        if isinstance(index, slice):
            return [self._tasks.posted_at(i) for i in range(*index.indices(size))]
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("index out of range")
        return self._tasks.posted_at(index)


def generate_tasks(
    n: int, *, seed: int = 0, now: datetime, days: int = 150
) -> Sequence[dict[str, Any]]:
    """`n` id_list records posted over the `days` before `now`, oldest first, with metadata.

    Deterministic for a seed. Up to 20,000 records come back as a list; more as a `TaskSequence`
    that builds each record when it is read.
    """
    tasks = TaskSequence(n, seed=seed, now=now, days=days)
    if n <= MATERIALISE_LIMIT:
        return list(tasks)
    return tasks


def make_error(
    rng: random.Random, epoch: int, *, task: str | None = None, avoid_code: int | None = None
) -> dict[str, Any]:
    """One errors entry at `epoch`, for a new task or for `task` (then with another code)."""
    kinds = [kind for kind in _ERROR_KINDS if kind[0] != avoid_code]
    code, message, http_code = rng.choice(kinds)
    function = rng.choice(_ERROR_FUNCTIONS)
    if task is None:
        task = task_id(epoch - rng.randrange(60), rng.getrandbits(32), rng.getrandbits(48))
    return {
        "id": task,
        "datetime": format_api_datetime(epoch),
        "function": function,
        "error_code": code,
        "error_message": message,
        "http_url": f"https://api.dataforseo.com/v3/{function}",
        "http_method": "POST",
        "http_code": http_code,
        "http_time": round(rng.random() * 0.3, 4),
        "http_response": message,
    }


def generate_errors(n: int, *, seed: int = 0, now: datetime, days: int = 6) -> list[dict[str, Any]]:
    """`n` errors entries over the `days` before `now`, newest first; deterministic for a seed.

    About one entry in ten repeats the task id of an older entry with a later datetime and another
    error code, as in the documentation's example.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(f"dfs-async-errors-{seed}")
    end = int(now.timestamp()) - _END_MARGIN
    start = end - days * _DAY
    span = days * _DAY
    step = span // n if n else 0
    entries: list[dict[str, Any]] = []  # oldest first while building
    latest: dict[str, dict[str, Any]] = {}
    for index in range(n):
        if step >= 2:
            epoch = start + index * step + rng.randrange(step)
        else:
            epoch = start + index * span // n
        if entries and rng.random() < 0.1:
            # A retry of a recent task, failing differently from that task's latest entry.
            task = entries[rng.randrange(max(0, len(entries) - 50), len(entries))]["id"]
            entry = make_error(rng, epoch, task=task, avoid_code=latest[task]["error_code"])
        else:
            entry = make_error(rng, epoch)
        entries.append(entry)
        latest[entry["id"]] = entry
    entries.reverse()
    return entries
