"""The two JSON parsers read the same documents to the same values, and refuse the same ones."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dfs_async import _json
from dfs_async._json import MAX_DEPTH, PARSERS, NotJSON, loads_json

needs_orjson = pytest.mark.skipif("orjson" not in PARSERS, reason="the speed extra is absent")


def outcome(parse: Any, text: str) -> tuple[str, Any]:
    """('ok', value) or ('refused', message): what a parser made of `text`."""
    try:
        return "ok", parse(text.encode(), text)
    except NotJSON as exc:
        return "refused", str(exc)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (0.0 and -0.0 differ; key order counts)."""
    pairs = [(a, b)]  # a list, not recursion: the documents nest up to 1024 levels
    while pairs:
        x, y = pairs.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            pairs.extend((x[key], y[key]) for key in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if math.copysign(1.0, x) != math.copysign(1.0, y) or x != y:
                return False
        elif x != y:
            return False
    return True


# Scalars as JSON text, including the edges where parsers tend to differ.
number_texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "1e400", "-1e400", "1E+308", "1.7976931348623159e308", "2.4703282292062328e-324",
            "1e-400", "-0", "-0.0", "18446744073709551615", "18446744073709551616",
            "-9223372036854775808", "-9223372036854775809", "1" + "0" * 400, "01", "1.", ".5",
            "+1", "0x10", "NaN", "Infinity", "-Infinity", "1e", "--1",
        ]
    ),
)  # fmt: skip
string_texts = st.one_of(
    st.text().map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text().map(json.dumps),
    st.sampled_from(
        [
            r'"\ud800"', r'"\udc00"', r'"\ud83d\ude00"', r'"\ude00\ud83d"', r'"\u0000"', '"\x7f"',
            '"\x1f"', r'"\x"', r'"\\ud800"', '"unterminated', r'"\u12"',
        ]
    ),
)  # fmt: skip
scalar_texts = st.one_of(
    number_texts, string_texts, st.sampled_from(["true", "false", "null", "nul", "True"])
)
blank = st.sampled_from(["", " ", "\n", "\t", "\r\n", "\x0b", "\xa0"])


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON-ish text: mostly valid documents, with the odd mistake a server could make."""
    kind = draw(st.sampled_from(["scalar", "array", "object"] if depth < 4 else ["scalar"]))
    if kind == "scalar":
        return draw(scalar_texts)
    items = draw(st.lists(json_texts(depth + 1), max_size=4))
    if kind == "object":
        keys = draw(st.lists(string_texts, min_size=len(items), max_size=len(items)))
        items = [f"{k}{draw(blank)}:{draw(blank)}{v}" for k, v in zip(keys, items, strict=True)]
    sep = draw(st.sampled_from([",", ", ", " ,", ",,"]))
    body = sep.join(items) + draw(st.sampled_from(["", "", "", ","]))
    opening, closing = ("[", "]") if kind == "array" else ("{", "}")
    return f"{opening}{draw(blank)}{body}{draw(blank)}{closing}"


@st.composite
def documents(draw: st.DrawFn, *, deep: bool = True) -> str:
    """A document of `json_texts`, sometimes wrapped to 1023, 1024 or 1025 levels in all."""
    text = draw(json_texts())
    depth = draw(st.sampled_from([0, 0, 0, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1]))
    if depth and deep:  # wrap it, so that the whole is nested exactly that deep or one less/more
        text = "[" * depth + text + "]" * depth
    return draw(blank) + text + draw(st.sampled_from(["", " ", "\n", " x", "]", "{}"]))


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(documents())
@example('{"cost": 1e400}')
@example('{"a": "\\ud800"}')
@example("[" * 100_000 + "]" * 100_000)
@example('{"a": 1, "b": 2, "a": 3}')
@example('[[{"":["\\ud800"],"":0}]]')  # the lone surrogate sits in a value a later key drops
@example("\ufeff{}")
def test_property_orjson_and_the_stdlib_agree(text: str) -> None:
    """Any document: both parsers give the same value, or both refuse it with one message."""
    mine, theirs = outcome(PARSERS["json"], text), outcome(PARSERS["orjson"], text)
    assert mine[0] == theirs[0], (mine, theirs)
    if mine[0] == "ok":
        assert same(mine[1], theirs[1]), (mine, theirs)
    else:
        assert mine[1] == theirs[1]


def flat(text: str) -> tuple[str, Any]:
    """What `_parse_flat` (the stdlib rules without recursion) makes of `text`."""
    try:
        value = _json._parse_flat(text)
        _json._check_surrogates(text)
    except NotJSON as exc:
        return "refused", str(exc)
    return "ok", value


@settings(max_examples=300, deadline=None)
@given(documents(deep=False))
def test_property_the_flat_parser_reads_like_the_c_parser(text: str) -> None:
    """The parser for over-deep documents gives json.loads' value or its very error message."""
    try:
        expected: tuple[str, Any] = "ok", loads_json(b"", text)
    except NotJSON as exc:
        expected = "refused", str(exc)
    got = flat(text)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "ok":
        assert same(got[1], expected[1])
    else:
        assert got[1] == expected[1]


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    """A caller that raised the recursion limit, so the C parser itself goes past 1024 levels."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@pytest.mark.usefixtures("deep_recursion")
@pytest.mark.parametrize(("depth", "accepted"), [(MAX_DEPTH, True), (MAX_DEPTH + 1, False)])
def test_a_raised_recursion_limit_does_not_raise_the_depth_limit(
    depth: int, accepted: bool
) -> None:
    """With the recursion limit at 10,000 the stdlib still stops at 1024 levels, like orjson."""
    text = '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    if accepted:
        assert loads_json(b"", text) == {"a": _nest(depth - 1)}
    else:
        with pytest.raises(NotJSON, match=r"^nested deeper than 1024 levels$"):
            loads_json(b"", text)


def _nest(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_the_default_parser_is_orjson_when_installed() -> None:
    """Replies are read by orjson with the speed extra, else by the standard library."""
    expected = PARSERS["orjson"] if "orjson" in PARSERS else PARSERS["json"]
    assert _json.default_parser is expected
