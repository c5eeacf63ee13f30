"""What the streams need of a client, as a protocol: `Client` satisfies it, tests fake it.

The pager, the follower, the endpoints and the webhook resend sit below the client: the client
builds them, so they must not import it back (not even for a type). They name here the few
things they use of it, and the client provides them. A test drives a pager through a fake of
this protocol, with no HTTP at all (tests/test_pager_protocol.py).

The call methods are underscored on purpose: `Client` provides them without making them
part of its public API (as gidgethub's ``GitHubAPI._request`` is the one method an adapter
provides). What a stream may ask of a client is this list, and nothing else of its members.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._errors import ClientClosedError

if TYPE_CHECKING:
    import asyncio
    from datetime import datetime

    from ._protocol import RawPage

__all__ = ["Calls", "ensure_open"]

T = TypeVar("T")


class Calls(Protocol):
    """The calls a stream makes through its client."""

    @property
    def closed(self) -> bool:
        """Whether `aclose()` has run: no call may start any more."""
        ...

    @property
    def prefetch(self) -> int:
        """Pages a pager fetches ahead of its consumer (0 or 1)."""
        ...

    def now(self) -> datetime:
        """The current time, aware and in UTC (injected in tests)."""
        ...

    def _spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a call as a task the client cancels if it is closed first."""
        ...

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds` on the loop clock; raise `ClientClosedError` as soon as the client
        closes meanwhile (a follower between polls)."""
        ...

    async def _fetch(self, path: str, task: Mapping[str, Any]) -> RawPage:
        """One page of a stream: the limiter, the call, its retries; the reply checked."""
        ...

    async def _call(
        self,
        path: str,
        body: bytes,
        read: Callable[[int, Mapping[str, str], bytes], T],
        *,
        label: str,
        done: Callable[[T], str],
    ) -> T:
        """Any other call (``webhook_resend``): `read` turns the reply into its result."""
        ...


def ensure_open(calls: Calls) -> None:
    """Raise `ClientClosedError` if the client is closed: a stream fails before any work."""
    if calls.closed:
        raise ClientClosedError("the client is closed; streams cannot continue after aclose()")
