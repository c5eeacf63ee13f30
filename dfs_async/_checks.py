"""The settings' argument checks, one wording for all: what is wrong and what to pass instead.

Each raises `InvalidArgumentError` (a ValueError) naming the argument, what it must be and
what it got, before anything is sent or connected. `RateLimit`, `Retry` and `RedisBackend`
use these; `attrs_validator` adapts one to an attrs field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard

import attrs

from ._errors import InvalidArgumentError

__all__ = ["attrs_validator", "flag", "number", "seconds", "whole"]


def whole(name: str, value: object, *, minimum: int) -> int:
    """`value` if it is an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(
            f"{name} must be a whole number of at least {minimum}, got {value!r}"
        )
    return value


def _finite(value: object) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def seconds(name: str, value: object, *, zero: bool = False) -> float:
    """`value` as a float if it is a finite number of seconds above 0 (or 0, with `zero`)."""
    if not _finite(value) or value < 0 or (value == 0 and not zero):
        kind = "a number of seconds, at least 0" if zero else "a positive number of seconds"
        raise InvalidArgumentError(f"{name} must be {kind}, got {value!r}")
    return float(value)


def number(name: str, value: object, *, minimum: float) -> float:
    """`value` as a float if it is a finite number of at least `minimum`."""
    if not _finite(value) or value < minimum:
        raise InvalidArgumentError(
            f"{name} must be a number of at least {minimum:g}, got {value!r}"
        )
    return float(value)


def flag(name: str, value: object) -> bool:
    """`value` if it is True or False (not 0, 1 or a string, which would be read as either)."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def attrs_validator(
    check: Callable[..., object], **options: Any
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs field validator that runs `check(field name, value, **options)`."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(attribute.name, value, **options)

    return validate
