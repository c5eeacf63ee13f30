"""The two Lua scripts and their contract: the keys they take, what they are sent and answer.

The scripts live beside this module as ``.lua`` files (``history.lua`` is loaded in front of
each, since a Redis script cannot include another); every value they need arrives in KEYS or
ARGV. Nothing here talks to Redis.
"""

from __future__ import annotations

import enum
import hashlib
from importlib import resources

import attrs

__all__ = [
    "ACQUIRE_LUA",
    "GRACE",
    "RELEASE_LUA",
    "Decision",
    "LimiterKeys",
    "Verdict",
    "limiter_keys",
    "parse_decision",
]

# How long a waiter's ticket outlives the moment it said it would poll again. A live waiter
# polls within milliseconds of that moment; a dead one then blocks the queue for at most this.
GRACE = 1.0


def _script(name: str) -> str:
    return resources.files("dfs_async._redis").joinpath(name).read_text(encoding="utf-8")


#: Take a slot, or learn how long to wait (see acquire.lua for its KEYS and ARGV).
ACQUIRE_LUA = _script("history.lua") + _script("acquire.lua")
#: Stamp a call whose reply arrived (see release.lua).
RELEASE_LUA = _script("history.lua") + _script("release.lua")


@attrs.frozen
class LimiterKeys:
    """The Redis keys of one limiter; they share a hash tag, so a cluster keeps them together."""

    done: str
    flight: str
    queue: str
    alive: str
    pause: str
    epoch: str

    @property
    def acquire(self) -> list[str]:
        """The keys in the order the acquire script takes them."""
        return [self.done, self.flight, self.queue, self.alive, self.pause, self.epoch]

    @property
    def release(self) -> list[str]:
        """The keys in the order the release script takes them."""
        return [self.done, self.flight, self.epoch]


def limiter_keys(prefix: str, key: str) -> LimiterKeys:
    """The keys for a client's limiter key (``login:path``); the login itself never appears."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    base = f"{prefix}:{{{digest}}}"
    return LimiterKeys(
        done=f"{base}:done",
        flight=f"{base}:flight",
        queue=f"{base}:queue",
        alive=f"{base}:alive",
        pause=f"{base}:pause",
        epoch=f"{base}:epoch",
    )


class Verdict(enum.IntEnum):
    """What the acquire script decided (the codes it returns)."""

    #: Take the slot.
    GO = 0
    #: Wait until a stamp has left the window.
    STAMP = 1
    #: Wait a period for a call in flight (a lower bound: ask again then).
    IN_FLIGHT = 2
    #: Every call waits out a pause (a 40202, or a lost history).
    PAUSED = 3


@attrs.frozen(kw_only=True)
class Decision:
    """What the acquire script answered."""

    kind: Verdict
    #: Seconds to sleep before asking again (0.0 with GO).
    wait: float
    #: The waiter's place in the queue, to keep it when asking again.
    order: int
    #: The history the script saw.
    epoch: str
    #: Whether the worker had seen another history: Redis lost it.
    lost: bool
    #: How many writes that history has had, this one included.
    writes: int


def parse_decision(reply: object) -> Decision:
    """The acquire script's reply ``[kind, wait_us, order, epoch, lost, writes]``."""
    if not isinstance(reply, list) or len(reply) != 6:
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    kind, wait, order, epoch, lost, writes = reply
    if not (
        isinstance(kind, int)
        and kind in set(Verdict)
        and isinstance(wait, int)
        and isinstance(order, int)
        and isinstance(epoch, bytes)
        and isinstance(lost, int)
        and isinstance(writes, int)
    ):
        raise TypeError(f"unexpected reply from the acquire script: {reply!r}")
    return Decision(
        kind=Verdict(kind),
        wait=wait / 1_000_000,
        order=order,
        epoch=epoch.decode(),
        lost=bool(lost),
        writes=writes,
    )
