"""Pure paging rules: which page to ask next, which records are new, and the resume state.

No I/O here; the client's pager drives these functions with the replies it gets.

Strategy:
- A stream is ``offset``/``limit`` paging over a list the server may change while we page.
  Offsets advance by what the page held; a page shorter than asked for is the last one, so
  N records cost ``N // page_size + 1`` calls and never an extra empty call. With `max_items`,
  the last request asks only for what is still missing.
- Records inserted at the head between two calls (errors arrive newest first, a ``desc``
  id_list grows at the head) push records already yielded onto the next page. Every record
  has a key (a task's ``id``; for an errors entry, a digest of all its fields, since one task
  id may fail several times). A record whose key was among the keys of the previous page is
  dropped as overlap. The window of remembered keys is one page, so a shift of up to
  `page_size` records between two consecutive calls is absorbed.
- The resume state records the position at a page boundary plus the keys already yielded from
  the page in progress ("pending"), so a stream cut anywhere resumes without loss or
  repetition: the page is asked again and the pending records are dropped wherever they show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._models import TaskError, TaskId

__all__ = ["PageRequest", "PagerState", "StreamCursor", "record_key"]

STATE_VERSION = 1


@attrs.frozen
class PageRequest:
    """One call's position: ``offset`` and ``limit`` to add to the fixed parameters."""

    offset: int
    limit: int


def record_key(record: TaskId | TaskError) -> str:
    """The identity used to recognise a record seen twice across shifted pages."""
    if isinstance(record, TaskId):
        return record.id
    # An errors entry is the whole entry: the same task id appears once per failure.
    fields = (
        record.id,
        record.datetime.isoformat(),
        record.function,
        str(record.error_code),
        record.error_message,
        record.http_url,
        record.http_method,
        str(record.http_code),
        repr(record.http_time),
        record.http_response,
    )
    return hashlib.blake2b("\x1f".join(fields).encode(), digest_size=12).hexdigest()


@attrs.frozen(kw_only=True)
class PagerState:
    """Where a stream stands, as plain JSON-serialisable data (see :meth:`to_json`).

    Passing it back with ``resume=state`` continues the stream exactly after the last record
    the consumer received.
    """

    api: str
    function: str
    #: The request fields other than offset/limit, with the window already fixed.
    params: Mapping[str, Any]
    page_size: int
    max_items: int | None
    #: The offset of the next page to ask for.
    offset: int
    #: Records yielded so far.
    yielded: int
    #: Keys of records already received at or just before `offset` (overlap detection).
    seen: tuple[str, ...]
    #: Keys yielded from the page at `offset` before a stop mid-page. Those records come
    #: again (perhaps shifted further on); each is dropped when it does, and the pages ask
    #: for that many more records meanwhile.
    pending: tuple[str, ...] = ()
    done: bool = False

    def next_request(self) -> PageRequest | None:
        """The next call to make, or ``None`` when the stream is complete."""
        if self.done:
            return None
        limit = self.page_size
        if self.max_items is not None:
            limit = min(limit, self.max_items - self.yielded + len(self.pending))
            if limit <= 0:
                return None
        return PageRequest(offset=self.offset, limit=limit)

    def to_json(self) -> dict[str, Any]:
        """A dict of JSON types; `from_json` reads it back."""
        return {
            "version": STATE_VERSION,
            "api": self.api,
            "function": self.function,
            "params": dict(self.params),
            "page_size": self.page_size,
            "max_items": self.max_items,
            "offset": self.offset,
            "yielded": self.yielded,
            "seen": list(self.seen),
            "pending": list(self.pending),
            "done": self.done,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PagerState:
        """Read a state written by `to_json`; raises `ValueError` naming a bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("a resume state is a JSON object")
        if data.get("version") != STATE_VERSION:
            raise ValueError(
                f"unsupported resume state version {data.get('version')!r}; "
                f"this client writes version {STATE_VERSION}"
            )
        expected: dict[str, type | tuple[type, ...]] = {
            "api": str,
            "function": str,
            "params": dict,
            "page_size": int,
            "max_items": (int, type(None)),
            "offset": int,
            "yielded": int,
            "seen": list,
            "pending": list,
            "done": bool,
        }
        for name, kind in expected.items():
            if not isinstance(data.get(name), kind) or (
                kind is int and isinstance(data.get(name), bool)
            ):
                raise ValueError(f"resume state field {name!r} is missing or of the wrong type")
        for name in ("seen", "pending"):
            if not all(isinstance(key, str) for key in data[name]):
                raise ValueError(f"resume state field {name!r} must hold strings")
        return cls(
            api=data["api"],
            function=data["function"],
            params=dict(data["params"]),
            page_size=data["page_size"],
            max_items=data["max_items"],
            offset=data["offset"],
            yielded=data["yielded"],
            seen=tuple(data["seen"]),
            pending=tuple(data["pending"]),
            done=data["done"],
        )


@attrs.define
class StreamCursor:
    """The mutable progress of one stream, advanced page by page and record by record.

    `begin_page` takes a page's keys and says which records are new; `consume` is called as
    each new record reaches the consumer; `end_page` moves past the page; `snapshot` gives
    the position at any moment.
    """

    state: PagerState
    _request: PageRequest | None = None
    _keys: Sequence[str] = ()
    _received: int = 0
    _kept: int = 0
    _consumed: list[str] = attrs.field(factory=list)

    def begin_page(self, request: PageRequest, received: int, keys: Sequence[str]) -> list[bool]:
        """Register a page; returns, per record, whether it is new (to be yielded)."""
        known = frozenset(self.state.seen).union(self.state.pending)
        keep = [key not in known for key in keys]
        self._request = request
        self._keys = keys
        self._received = received
        self._kept = sum(keep)
        self._consumed = []
        return keep

    def consume(self, key: str) -> None:
        """One new record of the current page has been handed to the consumer."""
        self._consumed.append(key)

    def end_page(self) -> PagerState:
        """The whole page has been handed over: move the position past it."""
        self.state = self._after_page()
        self._request = None
        self._consumed = []
        return self.state

    def snapshot(self) -> PagerState:
        """The position now; mid-page, the page is asked again and what was yielded is skipped."""
        if self._request is None or not self._consumed:
            return self.state
        if len(self._consumed) == self._kept:
            return self._after_page()  # all handed over: no need to ask for this page again
        return attrs.evolve(
            self.state,
            yielded=self.state.yielded + len(self._consumed),
            pending=(*self.state.pending, *self._consumed),
        )

    def next_request_after_page(self) -> PageRequest | None:
        """The call that will follow the current page (to prefetch it), if there is one."""
        return self._after_page().next_request()

    def _after_page(self) -> PagerState:
        request = self._request
        if request is None:
            return self.state
        yielded = self.state.yielded + self._kept
        received = frozenset(self._keys)
        return attrs.evolve(
            self.state,
            offset=request.offset + self._received,
            yielded=yielded,
            seen=_last_keys(self.state.seen, self._keys, self.state.page_size),
            pending=tuple(key for key in self.state.pending if key not in received),
            done=self._received < request.limit
            or (self.state.max_items is not None and yielded >= self.state.max_items),
        )


def _last_keys(old: Sequence[str], new: Sequence[str], size: int) -> tuple[str, ...]:
    """The last `size` distinct keys of `old` then `new`, in the order received."""
    # A key seen again keeps its latest place (a resumed page repeats the keys it replays).
    latest = dict.fromkeys(reversed([*old, *new]))
    return tuple(reversed(list(latest)[:size]))
