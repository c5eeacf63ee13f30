"""The one CALLS/SECONDS parser, shared by the command line, the emulator's module and examples."""

from __future__ import annotations

import ast
import math
import pathlib
import sys

import pytest

import dfs_async
from dfs_async import _ratespec
from dfs_async._ratespec import parse_rate

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/2", (10, 2.0)),
        ("10/60", (10, 60.0)),
        ("1/0.5", (1, 0.5)),
        ("2000/1e-3", (2000, 0.001)),
        (" 3 / 4 ", (3, 4.0)),
        ("1_0/6_0", (10, 60.0)),
    ],
)
def test_a_rate_reads_as_calls_and_seconds(text: str, rate: tuple[int, float]) -> None:
    """CALLS is a whole number of at least 1, SECONDS a finite number above 0."""
    parsed = parse_rate(text)
    assert parsed == rate
    assert (type(parsed[0]), type(parsed[1])) == (int, float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10",
        "10/",
        "/2",
        "0/2",
        "-1/2",
        "10/0",
        "10/-1",
        "10/inf",
        "10/nan",
        "1.5/2",
        "ten/2",
        "10/2/3",
        "10:2",
    ],
)
def test_anything_else_is_refused_saying_what_to_write(text: str) -> None:
    """An InvalidArgumentError (also a ValueError) quoting the text and the form to use."""
    with pytest.raises(dfs_async.InvalidArgumentError) as info:
        parse_rate(text)
    assert str(info.value) == f"{text!r} is not a rate: expected CALLS/SECONDS such as 10/2"
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ or info.value.__context__ is None


def test_seconds_is_finite() -> None:
    """A period of seconds that overflows a float is refused, not read as infinity."""
    assert math.isinf(float("1e400"))
    with pytest.raises(dfs_async.InvalidArgumentError):
        parse_rate("10/1e400")


def test_the_module_imports_only_the_standard_library_and_the_errors() -> None:
    """`_ratespec` loads without aiohttp or attrs: the command line parses arguments with it."""
    tree = ast.parse(pathlib.Path(_ratespec.__file__).read_text())
    absolute = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    relative = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
    }
    assert absolute <= set(sys.stdlib_module_names)
    assert relative <= {"_errors"}


@pytest.mark.parametrize(
    "path",
    ["dfs_async/cli/parser.py", "dfs_async/testing/__main__.py", "examples/redis_workers.py"],
)
def test_the_emulator_module_and_the_examples_use_it(path: str) -> None:
    """No second CALLS/SECONDS parser: the CLI, the emulator's module and the example import
    parse_rate and split no rate themselves."""
    source = (ROOT / path).read_text()
    tree = ast.parse(source)
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("_ratespec")
        for alias in node.names
    }
    assert names == {"parse_rate"}
    assert '.partition("/")' not in source
