"""Pure paging rules: which page to ask next, which records are new, and the resume state.

No I/O here; the client's pager drives these functions with the replies it gets.

Strategy:
- A stream is ``offset``/``limit`` paging over a list the server may change while we page.
  Offsets advance by what the page held; a page shorter than asked for is the last one, so
  N records cost ``N // page_size + 1`` calls and no call follows a short page. With
  `max_items`, the last request asks only for what is still missing, and never more than
  `max_items` records are yielded.
- Records inserted at the head between two calls (errors arrive newest first, a ``desc``
  id_list grows at the head) push records already received onto the next page. Every record
  has a key (a task's ``id``; for an errors entry, a digest of all its fields, since one task
  id may fail several times). A record whose key is among the last `page_size` keys received,
  in list order, is dropped as overlap. That absorbs as many new records between two calls as
  the previous call asked for, with one page of keys held however long the stream. So a list
  that may grow at its head (or has been seen to) is always asked for in full pages, even
  near `max_items` (records past it are not yielded): a short request would let the list
  outrun the offsets.
- A server that does not page as asked must not make a stream that never ends, nor one that
  silently skips records. A reply with more records than the limit is an error. So is a reply
  as long as asked for that holds only records already yielded: a server ignoring ``offset``
  sends the same head page forever, and a list that grew at its head by a whole page looks
  the same; skipping ahead would lose a page if the offset was ignored. The position stays
  before that page, so a resumed stream asks for it again.
- The position is always a place in the list: after a whole page, or, for a stop mid-page,
  just after the last record handed over, as if the page had ended there. Resuming from it is
  the same as asking for the next page, so the same overlap rule covers it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._models import TaskError, TaskId

__all__ = [
    "PageRequest",
    "PagerState",
    "PagingError",
    "StreamCursor",
    "check_received",
    "record_key",
]

R = TypeVar("R")

STATE_VERSION = 1
MAX_PAGE_SIZE = 1000


@attrs.frozen(kw_only=True)
class PageRequest:
    """One call's position: ``offset`` and ``limit`` to add to the fixed parameters."""

    offset: int
    limit: int


class PagingError(Exception):
    """The server's pages break the paging rules; the message says how (the pager adds where)."""


def check_received(request: PageRequest, received: int) -> None:
    """A reply may hold at most as many entries as asked for."""
    if received > request.limit:
        raise PagingError(
            f"the server sent {received} records for limit {request.limit} at offset "
            f"{request.offset}: it is not paging as asked"
        )


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
    #: Keys of the last `page_size` records before `offset`, in list order (overlap).
    seen: tuple[str, ...]
    #: Whether the list may grow at its head while we page (errors, a ``desc`` id_list), or
    #: has been seen to: pages are then always asked for in full, so the offsets keep pace.
    head_grows: bool = False
    done: bool = False

    def next_request(self) -> PageRequest | None:
        """The next call to make, or ``None`` when the stream is complete."""
        if self.done:
            return None
        limit = self.page_size
        if self.max_items is not None:
            missing = self.max_items - self.yielded
            if missing <= 0:
                return None
            if not self.head_grows:
                limit = min(limit, missing)
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
            "head_grows": self.head_grows,
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
            "head_grows": bool,
            "done": bool,
        }
        for name, kind in expected.items():
            if not isinstance(data.get(name), kind) or (
                kind is int and isinstance(data.get(name), bool)
            ):
                raise ValueError(f"resume state field {name!r} is missing or of the wrong type")
        if not all(isinstance(key, str) for key in data["seen"]):
            raise ValueError("resume state field 'seen' must hold strings")
        page_size, max_items = data["page_size"], data["max_items"]
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"resume state field 'page_size' must be 1..{MAX_PAGE_SIZE}")
        if max_items is not None and max_items < 1:
            raise ValueError("resume state field 'max_items' must be at least 1")
        for name in ("offset", "yielded"):
            if data[name] < 0:
                raise ValueError(f"resume state field {name!r} must not be negative")
        return cls(
            api=data["api"],
            function=data["function"],
            params=dict(data["params"]),
            page_size=data["page_size"],
            max_items=data["max_items"],
            offset=data["offset"],
            yielded=data["yielded"],
            seen=tuple(data["seen"]),
            head_grows=data["head_grows"],
            done=data["done"],
        )


@attrs.define
class StreamCursor:
    """The mutable progress of one stream, advanced page by page and record by record.

    `begin_page` takes a page and returns its new records; `consume` is called as each of them
    reaches the consumer; `end_page` moves past the page; `snapshot` gives the position at any
    moment.
    """

    state: PagerState
    _request: PageRequest | None = None
    _keys: Sequence[str] = ()
    #: For each record of the page, its place in the server's result list (nulls count).
    _positions: Sequence[int] = ()
    #: For each new record, its index among the page's records.
    _kept: list[int] = attrs.field(factory=list)
    _consumed: int = 0
    #: The position once the whole page is handed over, worked out once per page.
    _after: PagerState | None = None

    def begin_page(
        self,
        request: PageRequest,
        received: int,
        records: Sequence[R],
        keys: Sequence[str],
        positions: Sequence[int] | None = None,
    ) -> tuple[list[R], list[str]]:
        """Register a page; returns its new records (overlap dropped) and their keys.

        Raises `PagingError` for a reply longer than asked for, or as long as asked for and
        holding only records already yielded; the position then stays before the page.
        """
        check_received(request, received)
        state = self.state
        known = frozenset(state.seen)
        kept = [index for index, key in enumerate(keys) if key not in known]
        if keys and not kept and received == request.limit:
            raise PagingError(
                f"the page at offset {request.offset} repeats {len(keys)} records already "
                "yielded and nothing new: the server is not paging by offset (or the list grew "
                "at its head by a whole page); the stream's state is just before this page"
            )
        if state.max_items is not None:
            del kept[state.max_items - state.yielded :]
        yielded = state.yielded + len(kept)
        self._request = request
        self._keys = keys
        self._positions = positions if positions is not None else range(len(keys))
        self._kept = kept
        self._consumed = 0
        self._after = attrs.evolve(
            state,
            offset=request.offset + received,
            yielded=yielded,
            seen=_last_keys(state.seen, keys, state.page_size),
            head_grows=state.head_grows or len(kept) < len(keys),
            done=received < request.limit
            or (state.max_items is not None and yielded >= state.max_items),
        )
        return [records[index] for index in kept], [keys[index] for index in kept]

    def consume(self) -> None:
        """The next new record of the current page has been handed to the consumer."""
        self._consumed += 1

    def end_page(self) -> PagerState:
        """The whole page has been handed over: move the position past it."""
        self.state = self._after_page()
        self._request = None
        self._after = None
        self._consumed = 0
        return self.state

    def snapshot(self) -> PagerState:
        """The position now: after the last record handed over."""
        request = self._request
        if request is None or self._consumed == 0:
            return self.state
        if self._consumed == len(self._kept):
            return self._after_page()  # all handed over: no need to ask for this page again
        # Stopped mid-page: the position is just after the last record handed over, as if
        # the page had ended there (records dropped as overlap before it included).
        last = self._kept[self._consumed - 1]
        dropped_before = last + 1 - self._consumed
        return attrs.evolve(
            self.state,
            offset=request.offset + self._positions[last] + 1,
            yielded=self.state.yielded + self._consumed,
            seen=_last_keys(self.state.seen, self._keys[: last + 1], self.state.page_size),
            head_grows=self.state.head_grows or dropped_before > 0,
        )

    def next_request_after_page(self) -> PageRequest | None:
        """The call that will follow the current page (to prefetch it), if there is one."""
        return self._after_page().next_request()

    def request_before_records(self, request: PageRequest, received: int) -> PageRequest | None:
        """The call after a reply of `received` entries, named before its records are built.

        ``None`` when there is none, or when it cannot be named yet: then it is
        `next_request_after_page`, once `begin_page` has the records. Without `max_items` the
        next request depends on the reply's length alone: a full page is followed by the
        next one at ``offset + received``, a short page by nothing. That is exactly what
        `next_request_after_page` gives after `begin_page` (the property tests hold it), and
        when `begin_page` refuses the page instead, the stream ends there and the call sent
        early is cancelled unread. So the pager may send it first, and the server works on the
        next page while this one is decoded. With `max_items`, whether the stream is done
        depends on how many records are new, which only the records tell.
        """
        check_received(request, received)
        state = self.state
        if state.max_items is not None or state.done or received < request.limit:
            return None
        return PageRequest(offset=request.offset + received, limit=state.page_size)

    def _after_page(self) -> PagerState:
        return self._after if self._request is not None and self._after is not None else self.state


def _last_keys(old: Sequence[str], new: Sequence[str], size: int) -> tuple[str, ...]:
    """The keys of the last `size` places before the new offset, in list order.

    A key of `old` that `new` holds again has moved (the list shifted): it keeps only its
    new place, as the list has it now.
    """
    latest = dict.fromkeys(reversed([*old, *new]))
    return tuple(reversed(list(latest)[:size]))
