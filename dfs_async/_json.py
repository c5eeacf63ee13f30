"""JSON text to Python values, the same documents accepted and refused with orjson as without.

Strategy: orjson (the `speed` extra) is fast and strict; the standard library is the fallback
and is made to read exactly what orjson reads, with the same values:

- NaN, Infinity and numbers too large for a float (``1e400``) are refused (orjson: "number is
  infinity"); integers outside the 64-bit range become floats, as orjson makes them.
- A lone UTF-16 surrogate escape (``"\\ud800"``) is refused: such a string cannot be written as
  UTF-8 later (orjson: "no low surrogate").
- Nesting deeper than 1024 arrays and objects is refused (orjson's own limit). The stdlib's C
  parser recurses and raises `RecursionError` near the interpreter's recursion limit instead,
  at a depth that depends on the caller's stack; a document it cannot parse that way is parsed
  again by `_parse_flat`, which keeps its containers on a list.

Whichever parser refuses a document, the reason is worked out by the stdlib rules (`loads_json`),
so one document gives one message with or without orjson. Each parser is a function
``(body, text) -> value`` raising `NotJSON`; `PARSERS` names those installed, for tests.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DEPTH", "PARSERS", "NotJSON", "Parser", "default_parser", "loads_json"]

#: The deepest nesting of arrays and objects a document may have (orjson's limit).
MAX_DEPTH = 1024

#: ``(body, text) -> value``: the body's bytes and the same body decoded from UTF-8.
Parser = Callable[[bytes, str], Any]

# How much of an offending number a message quotes.
_QUOTE = 40


class NotJSON(ValueError):
    """The body is not a JSON document this client reads; the message names the problem."""


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not a JSON number")


def _float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise NotJSON(f"the number {_quote(literal)} is too large for a float")
    return value


_INT_LOW, _INT_HIGH = -(2**63), 2**64 - 1


def _integer(literal: str) -> int | float:
    # orjson keeps an integer in [-2**63, 2**64 - 1] and reads any other as a float; so do we.
    # (Longer literals go straight to float(): int() refuses more than 4300 digits.)
    if len(literal) < 19:
        return int(literal)
    if len(literal) <= 21:
        value = int(literal)
        if _INT_LOW <= value <= _INT_HIGH:
            return value
    return _float(literal)


def _quote(literal: str) -> str:
    return literal if len(literal) <= _QUOTE else literal[:_QUOTE] + "..."


_DECODER = json.JSONDecoder(
    parse_float=_float, parse_int=_integer, parse_constant=_refuse_constant, strict=True
)
_decode = _DECODER.decode
# Two undocumented parts of json the stubs leave out: the scanner for one value at an index,
# ``(text, index) -> (value, end)`` (StopIteration if there is none; C, with our hooks), and
# the string scanner it uses.
_scan_once: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]
_scanstring: Callable[[str, int, bool], tuple[str, int]] = vars(json.decoder)["scanstring"]

# A surrogate escape, high or low; only then can a parsed string hold a lone surrogate, as
# the text itself is valid UTF-8 (read_reply decodes it strictly before parsing).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A string literal of a document already parsed (so well formed): quotes, escapes, the rest.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')

# Python 3.11's C parser counts each nested container against the recursion limit, so with a
# limit at or under MAX_DEPTH a document it parsed is no deeper. Later versions count against
# a separate, larger C limit, and a caller may raise the limit: then the depth is measured.
_DEPTH_FOLLOWS_RECURSION = sys.version_info < (3, 12)


def loads_json(body: bytes, text: str) -> Any:
    """The standard library's parser, held to orjson's rules (the reference for messages)."""
    del body  # parsed from the text: json.loads would guess UTF-16 or UTF-32 from bytes
    try:
        value = _decode(text)
    except RecursionError:
        value = _parse_flat(text)
    except json.JSONDecodeError as exc:
        raise NotJSON(str(exc)) from None
    else:
        if (
            not (_DEPTH_FOLLOWS_RECURSION and sys.getrecursionlimit() <= MAX_DEPTH)
            and text.count("[") + text.count("{") > MAX_DEPTH
        ):
            _check_depth(value)
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_surrogates(text)
    return value


def _check_depth(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= MAX_DEPTH:
                    raise NotJSON(f"nested deeper than {MAX_DEPTH} levels")
                stack.append((child, depth + 1))


def _check_surrogates(text: str) -> None:
    """Refuse a lone surrogate in any string of the (valid) document `text`.

    Read from the text, not from the parsed value: a key given twice keeps only its last value
    there, and orjson refuses a lone surrogate in the one dropped too.
    """
    for literal in _STRING.finditer(text):
        if _SURROGATE_ESCAPE.search(literal.group()) is None:
            continue
        string, _end = _scanstring(text, literal.start() + 1, True)
        found = _SURROGATE.search(string)
        if found is not None:
            raise NotJSON(f"a string holds the lone surrogate \\u{ord(found.group()):04x}")


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _parse_flat(text: str) -> Any:
    """What `json.loads` reads, for a document too deep for its recursion.

    Arrays and objects are opened and closed here, on a list; every other value goes to the C
    scanner. Error messages are the C parser's (as of Python 3.11), at the same positions.
    """
    skip = _WHITESPACE.match
    # Open containers, each with the key its next value goes under (objects only).
    stack: list[tuple[list[Any] | dict[str, Any], str]] = []
    index = skip(text, 0).end()  # type: ignore[union-attr]
    while True:
        # A value starts at `index`.
        char = text[index : index + 1]
        value: Any
        if char == "[" or char == "{":
            if len(stack) >= MAX_DEPTH:
                raise NotJSON(f"nested deeper than {MAX_DEPTH} levels")
            index = skip(text, index + 1).end()  # type: ignore[union-attr]
            closing = "]" if char == "[" else "}"
            if text[index : index + 1] != closing:
                container: list[Any] | dict[str, Any] = [] if char == "[" else {}
                key, index = _key(text, index) if char == "{" else ("", index)
                stack.append((container, key))
                continue
            value, index = ([] if char == "[" else {}), index + 1
        else:
            try:
                value, index = _scan_once(text, index)
            except StopIteration as stop:
                raise _syntax("Expecting value", text, stop.value) from None
            except json.JSONDecodeError as exc:
                raise NotJSON(str(exc)) from None
        # Put the value in its container, then close every container that ends here.
        while True:
            if not stack:
                end = skip(text, index).end()  # type: ignore[union-attr]
                if end != len(text):
                    raise _syntax("Extra data", text, end)
                return value
            container, key = stack[-1]
            if type(container) is list:
                container.append(value)
            else:
                container[key] = value  # type: ignore[call-overload]
            index = skip(text, index).end()  # type: ignore[union-attr]
            char = text[index : index + 1]
            if char == ",":
                index = skip(text, index + 1).end()  # type: ignore[union-attr]
                if type(container) is dict:
                    key, index = _key(text, index)
                    stack[-1] = (container, key)
                break
            if char != ("]" if type(container) is list else "}"):
                raise _syntax("Expecting ',' delimiter", text, index)
            stack.pop()
            value, index = container, index + 1


def _key(text: str, index: int) -> tuple[str, int]:
    """An object's key and its colon at `index`; returns the key and where its value starts."""
    if text[index : index + 1] != '"':
        raise _syntax("Expecting property name enclosed in double quotes", text, index)
    try:
        key, index = _scanstring(text, index + 1, True)
    except json.JSONDecodeError as exc:
        raise NotJSON(str(exc)) from None
    index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
    if text[index : index + 1] != ":":
        raise _syntax("Expecting ':' delimiter", text, index)
    return key, _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]


def _syntax(message: str, text: str, index: int) -> NotJSON:
    return NotJSON(str(json.JSONDecodeError(message, text, index)))


try:
    import orjson
except ImportError:  # pragma: no cover - the stdlib is the fallback when orjson is absent
    PARSERS: dict[str, Parser] = {"json": loads_json}
else:

    def loads_orjson(body: bytes, text: str) -> Any:
        """orjson, several times faster; a document it refuses is explained by `loads_json`."""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            refusal = exc
        loads_json(body, text)  # raises NotJSON naming the problem, as without orjson
        # Both parsers read the same documents (tests hold them to it); should they not, orjson
        # has the last word, as it would have without this explanation.
        raise NotJSON(f"orjson: {refusal}") from None

    PARSERS = {"json": loads_json, "orjson": loads_orjson}

#: The parser replies go through: orjson when installed, else the standard library.
default_parser: Parser = PARSERS.get("orjson", loads_json)
