"""Every Python block in README.md and docs/ is type-checked, and those marked runnable run.

A page's fenced ``python`` blocks are all checked by mypy in the project's strict configuration
(one mypy run for all of them). A block preceded by the line ``<!-- docs-example: run -->`` is
also executed: it must be self-contained and reach nothing but the emulator on 127.0.0.1.
Coroutine functions named ``test_*`` that such a block defines are then awaited on looptime's
virtual clock, as the docs say a user's own tests would be. Anything else is a failure: a block
in a language this collector cannot check (``pycon``), a mark it does not know, a mark with no
block after it.

Fragments may use the names in `PRELUDE` without defining them (a `client`, a `login`, ...),
and a block with a top-level ``await``/``async for``/``async with`` is checked as the body of
an async function, which is where such code runs.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import looptime
import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = frozenset({"python", "py", "python3"})
#: Languages that look like Python but that this collector can neither run nor type-check.
UNCHECKABLE = frozenset({"pycon", "pytb", "doctest"})
MARK = re.compile(r"^<!--\s*docs-example:\s*(?P<what>[\w-]*)\s*-->$")
NO_BLOCK = "a docs-example mark with no block after it"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")

#: Names a fragment may use without defining them, with their types. Aliased imports, so that a
#: block that uses `dfs_async` or `datetime` must still import them itself.
PRELUDE = """\
import datetime as _docs_datetime
import dfs_async as _docs_dfs_async

login: str
password: str
client: _docs_dfs_async.Client
datetime_from: _docs_datetime.datetime
datetime_to: _docs_datetime.datetime
"""


@attrs.frozen
class Block:
    """One fenced Python block: where it is, its source, and whether it is marked runnable."""

    page: str
    line: int  # of the block's first source line in the page, 1-based
    source: str
    run: bool

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@attrs.frozen
class Problem:
    """A place in a page that no check covers."""

    page: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.message}"


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def extract(page: str, text: str) -> tuple[list[Block], list[Problem]]:
    """The Python blocks of one page, and what in it no check covers."""
    blocks: list[Block] = []
    problems: list[Problem] = []

    def problem(line: int, message: str) -> None:
        problems.append(Problem(page, line, message))

    lines = text.splitlines()
    mark: int | None = None  # the line of a run mark waiting for its block
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        found = MARK.match(line.strip())
        if found:
            if mark is not None:
                problem(mark, NO_BLOCK)
            mark = number
            if found.group("what") != "run":
                problem(number, f"unknown mark {found.group('what')!r}; the mark is 'run'")
            continue
        fence = FENCE.match(line)
        if fence is None:
            if line.strip() and mark is not None:
                problem(mark, NO_BLOCK)
                mark = None
            continue
        indent, marker = fence.group("indent"), fence.group("fence")
        words = fence.group("info").split()
        language = words[0].lower() if words else "plain"
        start = number
        body: list[str] = []
        while number < len(lines):
            inner = lines[number]
            number += 1
            closing = inner.strip()
            if closing.startswith(marker) and not closing.strip(marker[0]):
                break
            # Fences indented in a list item: their lines carry the same indent.
            body.append(inner[len(indent) :] if inner.startswith(indent) else inner.lstrip())
        else:
            problem(start, "a code block that is never closed")
        if language in PYTHON:
            blocks.append(Block(page, start + 1, "\n".join(body) + "\n", run=mark is not None))
        elif language in UNCHECKABLE:
            problem(start, f"a {language} block can be neither run nor type-checked")
        elif mark is not None:
            problem(mark, f"a run mark before a {language} block")
        mark = None
    if mark is not None:
        problem(mark, NO_BLOCK)
    return blocks, problems


def collect(root: Path = ROOT) -> tuple[list[Block], list[Problem]]:
    """Every Python block of every page, and every problem found."""
    blocks: list[Block] = []
    problems: list[Problem] = []
    for path in pages(root):
        found, trouble = extract(path.relative_to(root).as_posix(), path.read_text("utf-8"))
        blocks += found
        problems += trouble
    return blocks, problems


def _needs_async_body(source: str) -> bool:
    """Whether the block awaits at its top level (valid only inside an async function)."""
    try:
        compile(source, "<block>", "exec", flags=ast.PyCF_ONLY_AST)
        compile(source, "<block>", "exec")
    except SyntaxError:
        try:
            compile(source, "<block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError:
            return False  # a real syntax error: mypy reports it at its line
        return True
    return False


def module_source(block: Block) -> tuple[str, int]:
    """The block as a module for mypy, and how many lines come before the block's first."""
    if _needs_async_body(block.source):
        header = PRELUDE + "\n\nasync def _docs_example() -> None:\n"
        return header + textwrap.indent(block.source, "    "), header.count("\n")
    return PRELUDE + block.source, PRELUDE.count("\n")


_MYPY_LINE = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+):(?P<rest>.*)$")


def type_check(blocks: Sequence[Block], workdir: Path) -> list[str]:
    """mypy's complaints about the blocks, each at its place in its page."""
    files: dict[str, tuple[Block, int]] = {}
    for number, block in enumerate(blocks):
        path = workdir / f"docs_example_{number}.py"
        source, offset = module_source(block)
        path.write_text(source, encoding="utf-8")
        files[path.name] = (block, offset)
    if not files:
        return []
    done = subprocess.run(  # noqa: S603 - our own interpreter running mypy on our own files
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-error-summary",
            "--hide-error-context",
            "--show-error-codes",
            *(str(workdir / name) for name in files),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    complaints = []
    for line in done.stdout.splitlines():
        found = _MYPY_LINE.match(line)
        if found is None or Path(found.group("file")).name not in files:
            complaints.append(line)
            continue
        block, offset = files[Path(found.group("file")).name]
        # Lines of the block's own source map back to the page; prelude lines keep their place.
        at = int(found.group("line")) - offset
        where = f"{block.page}:{block.line + at - 1}" if at >= 1 else f"{block.where} (prelude)"
        complaints.append(f"{where}:{found.group('rest')}")
    if done.returncode not in (0, 1) or (done.returncode == 1 and not complaints):
        complaints.append(f"mypy failed to run ({done.returncode}): {done.stderr.strip()}")
    return complaints


def _tests_defined(namespace: dict[str, Any]) -> Iterator[Callable[[], Coroutine[Any, Any, Any]]]:
    for name, value in namespace.items():
        if name.startswith("test_") and inspect.iscoroutinefunction(value):
            yield value


def run_block(block: Block) -> None:
    """Execute a runnable block; await the `test_*` coroutines it defines on a virtual clock."""
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    exec(compile(block.source, block.where, "exec"), namespace)  # noqa: S102 - our own docs
    for test in _tests_defined(namespace):
        loop = looptime.new_event_loop()
        try:
            loop.run_until_complete(test())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                asyncio.set_event_loop(None)


BLOCKS, PROBLEMS = collect()
RUNNABLE = [block for block in BLOCKS if block.run]


def test_every_block_is_covered() -> None:
    """No page holds a block or a mark that neither the type check nor the runner covers."""
    assert [str(problem) for problem in PROBLEMS] == []
    assert any(block.page == "README.md" for block in BLOCKS)
    assert RUNNABLE, "no block is marked runnable"


def test_every_block_type_checks(tmp_path: Path) -> None:
    """mypy --strict (the project's configuration) accepts every Python block of every page."""
    assert type_check(BLOCKS, tmp_path) == []


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
def test_runnable_block_runs(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    """A block marked runnable runs to its end against the emulator, raising nothing."""
    run_block(block)
    capsys.readouterr()


# -- the collector itself -------------------------------------------------------------------------

PAGE = """\
Text.

<!-- docs-example: run -->
```python
print("runs")
```

```python
x: int = "not an int"
```

  ```py
  await something()
  ```

```sh
echo not python
```
"""


def test_extract_finds_blocks_marks_and_lines() -> None:
    """Blocks come with their first source line, their mark, and indented fences unindented."""
    blocks, problems = extract("page.md", PAGE)
    assert problems == []
    assert blocks == [
        Block("page.md", 5, 'print("runs")\n', run=True),
        Block("page.md", 9, 'x: int = "not an int"\n', run=False),
        Block("page.md", 13, "await something()\n", run=False),
    ]


def test_extract_reports_what_no_check_covers() -> None:
    """A pycon block, an unknown mark, a mark before a shell block or before text all fail."""
    text = (
        "```pycon\n>>> 1 + 1\n2\n```\n"
        "<!-- docs-example: skip -->\n```python\npass\n```\n"
        "<!-- docs-example: run -->\n```sh\necho\n```\n"
        "<!-- docs-example: run -->\nSome text.\n"
    )
    _, problems = extract("page.md", text)
    assert [str(problem) for problem in problems] == [
        "page.md:1: a pycon block can be neither run nor type-checked",
        "page.md:5: unknown mark 'skip'; the mark is 'run'",
        "page.md:9: a run mark before a sh block",
        "page.md:13: a docs-example mark with no block after it",
    ]


def test_type_check_reports_a_wrong_block_at_its_page_line(tmp_path: Path) -> None:
    """A block that does not type-check is reported at its line in its page, async or not."""
    blocks, _ = extract("page.md", PAGE)
    complaints = type_check(blocks, tmp_path)
    by_place = {complaint.split(": error: ")[0]: complaint for complaint in complaints}
    assert sorted(by_place) == ["page.md:13", "page.md:9"], complaints
    assert "Incompatible types in assignment" in by_place["page.md:9"]
    assert 'Name "something" is not defined' in by_place["page.md:13"]


def test_run_block_fails_when_the_example_fails() -> None:
    """A runnable block that raises, or defines a test whose assertion fails, fails the run."""
    with pytest.raises(ZeroDivisionError):
        run_block(Block("page.md", 1, "1 / 0\n", run=True))
    failing = "async def test_it() -> None:\n    assert 1 == 2\n"
    with pytest.raises(AssertionError):
        run_block(Block("page.md", 1, failing, run=True))


# -- the benchmark figures -------------------------------------------------------------------------


def _figures_hook() -> Any:
    """docs/_hooks/benchmark_figures.py, which MkDocs loads by path (docs/ is no package)."""
    path = ROOT / "docs" / "_hooks" / "benchmark_figures.py"
    spec = importlib.util.spec_from_file_location("benchmark_figures", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROW = {
    "name": "quota.dfs_async",
    "measured": 540.0,
    "baseline": 540.0,
    "unit": "s",
    "baseline_label": "optimum",
    "ratio": 1.0,
    "target": "<= 1.01 and 0 rejected",
    "passed": True,
    "note": "100 calls, 0 rejected",
}
REPORT = {
    "smoke": False,
    "machine": {
        "cpus": 2,
        "cpu_model": "Some CPU",
        "python": "3.11.7",
        "implementation": "CPython",
        "platform": "Linux",
    },
    "rows": [
        ROW,
        {**ROW, "name": "decode.x", "measured": 341_000.0, "baseline": 86_000.0, "unit": "rec/s"},
        {**ROW, "name": "stream.y", "measured": 0.00718, "ratio": 0.0012, "passed": None},
        {**ROW, "name": "memory.z", "measured": 4.96, "unit": "MB", "passed": False, "note": "a|b"},
    ],
}


def test_figures_table_has_one_line_per_row_in_order() -> None:
    """The table holds every row of the results, in their order, each figure in its unit."""
    table = _figures_hook().render_table(REPORT["rows"]).splitlines()
    assert table[2:] == [
        "| quota.dfs_async | 540.0 s | 540.0 s (optimum) | 1.00 | <= 1.01 and 0 rejected | PASS "
        "| 100 calls, 0 rejected |",
        "| decode.x | 341k rec/s | 86k rec/s (optimum) | 1.00 | <= 1.01 and 0 rejected | PASS "
        "| 100 calls, 0 rejected |",
        "| stream.y | 7.2 ms | 540.0 s (optimum) | 0.001 | <= 1.01 and 0 rejected | info "
        "| 100 calls, 0 rejected |",
        "| memory.z | 4.96 MB | 540.00 MB (optimum) | 1.00 | <= 1.01 and 0 rejected | FAIL "
        "| a\\|b |",
    ]


def test_figures_fill_the_marks_and_refuse_an_unknown_row() -> None:
    """Marks become figures; a page quoting a row or field the results lack stops the build."""
    hook = _figures_hook()
    page = 'At {{ bench("quota.dfs_async", "measured") }} ({{ bench("memory.z", "result") }}).'
    assert hook.render_page(page, REPORT) == "At 540.0 s (FAIL)."
    machine = hook.render_page("<!-- benchmarks: machine -->", {**REPORT, "smoke": True})
    assert machine.startswith("Measured on 2 CPUs (Some CPU), CPython 3.11.7, Linux.")
    assert '!!! warning "A smoke run"' in machine
    with pytest.raises(hook.BenchmarkDocsError, match=r"row 'quota\.gone', which"):
        hook.render_page('{{ bench("quota.gone", "ratio") }}', REPORT)
    with pytest.raises(hook.BenchmarkDocsError, match="unknown benchmark field 'speed'"):
        hook.render_page('{{ bench("quota.dfs_async", "speed") }}', REPORT)


def test_committed_results_are_a_full_run_the_benchmarks_page_can_quote() -> None:
    """benchmarks/results.json is a full run, and every figure the page asks for is in it."""
    hook = _figures_hook()
    report = hook.load()
    assert report["smoke"] is False
    page = hook.render_page((ROOT / "docs" / "benchmarks.md").read_text("utf-8"), report)
    assert "{{" not in page
    assert "<!-- benchmarks:" not in page
    for row in report["rows"]:
        assert f"| {row['name']} |" in page
