"""A rate written as ``CALLS/SECONDS`` (``10/60``): the one parser of it, for every command line.

The ``dfs-async`` command (``--emulate-rate``), the emulator's ``python -m dfs_async.testing``
(``--rate-limit``) and the examples (``--rate``) all read a rate with `parse_rate`, so one text
means one rate everywhere and every refusal says the same thing. Standard library and
`dfs_async._errors` only: a command parses its arguments before it loads aiohttp or attrs.
"""

from __future__ import annotations

import math

from ._errors import InvalidArgumentError

__all__ = ["parse_rate"]


def parse_rate(text: str) -> tuple[int, float]:
    """``CALLS/SECONDS`` (``10/2``) as ``(calls, seconds)``.

    CALLS is a whole number of at least 1, SECONDS a finite number above 0 (as Python's
    `int` and `float` read them, so blanks around either are fine). Anything else raises
    `InvalidArgumentError` (a `ValueError`) saying what to write; argparse callers turn it into
    their own usage error.
    """
    calls_text, sep, seconds_text = text.partition("/")
    try:
        calls, seconds = int(calls_text), float(seconds_text)
    except ValueError:
        calls, seconds = 0, 0.0
    if not sep or calls < 1 or not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidArgumentError(f"{text!r} is not a rate: expected CALLS/SECONDS such as 10/2")
    return calls, seconds
