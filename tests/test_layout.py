"""The emulator's rooms: what each may import, and that none outgrows a reader's sitting."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import dfs_async._calendar
import dfs_async._endpoints
import dfs_async.testing

TESTING = Path(dfs_async.testing.__file__).resolve().parent
MODULES = sorted(TESTING.glob("*.py"))

#: The client's private modules the emulator may import: the rules both must read alike (the
#: reach of a window; a CALLS/SECONDS rate, which `python -m dfs_async.testing` reads).
SHARED = frozenset({"dfs_async._calendar", "dfs_async._ratespec"})
#: The rooms that decide (no aiohttp, directly or through a sibling).
PURE = ("_calendar", "_data", "_datasets", "_requests", "_responses", "_window")


def imported(path: Path, package: str) -> set[str]:
    """Every module name the module at `path` (in `package`) imports."""
    return imported_by(path.read_text(encoding="utf-8"), package)


def imported_by(source: str, package: str) -> set[str]:
    """Every module name `source` imports, relative ones resolved (``from .. import x`` too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            # `from pkg import name` may import a submodule: count it as one.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def private_client_modules(names: set[str]) -> set[str]:
    """The names of `dfs_async`'s own private modules (``dfs_async._x...``) among `names`."""
    found = set()
    for name in names:
        parts = name.split(".")
        if len(parts) >= 2 and parts[0] == "dfs_async" and parts[1].startswith("_"):
            found.add(".".join(parts[:2]))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_testing_imports_no_private_client_module_but_the_shared_rule(path: Path) -> None:
    """No module of dfs_async.testing imports a private dfs_async._x module other than SHARED."""
    names = imported(path, "dfs_async.testing")
    assert private_client_modules(names) - SHARED == set()


def test_the_import_check_sees_every_spelling() -> None:
    """Absolute, relative (``from .. import _x``, ``from .._x import y``) imports all count."""
    source = (
        "import dfs_async._json\n"
        "from dfs_async._models import TaskId\n"
        "from .. import _convert\n"
        "from .._errors import DecodeError\n"
        "from . import _data\n"
        "from dfs_async import Client\n"
        "from dfs_async._calendar import months_before\n"
        "if TYPE_CHECKING:\n"
        "    from dfs_async._pager import Pager\n"
    )
    names = imported_by(source, "dfs_async.testing")
    assert private_client_modules(names) == {
        "dfs_async._json",
        "dfs_async._models",
        "dfs_async._convert",
        "dfs_async._errors",
        "dfs_async._calendar",
        "dfs_async._pager",
    }


def test_the_pure_rooms_reach_no_aiohttp_even_through_a_sibling() -> None:
    """Requests, responses, the window, the data sets and the calendar import no aiohttp."""
    graph = {path.stem: imported(path, "dfs_async.testing") for path in MODULES}
    graph["_calendar"] = imported(Path(dfs_async._calendar.__file__), "dfs_async")
    for room in PURE:
        seen, todo = set(), [room]
        while todo:
            stem = todo.pop()
            if stem in seen:
                continue
            seen.add(stem)
            names = graph[stem]
            assert not any(name.split(".")[0] == "aiohttp" for name in names), (room, stem)
            todo.extend(
                name.rsplit(".", 1)[1]
                for name in names
                if name.startswith("dfs_async.testing._") and name.count(".") == 2
            )
            todo.extend("_calendar" for name in names if name == "dfs_async._calendar")


def test_the_calendar_rule_is_standard_library_only_and_the_clients_own() -> None:
    """_calendar imports only the standard library, and the client's endpoints use it as is."""
    names = imported(Path(dfs_async._calendar.__file__), "dfs_async")
    assert {name.split(".")[0] for name in names} <= sys.stdlib_module_names | {"__future__"}
    assert dfs_async._endpoints.months_before is dfs_async._calendar.months_before
    assert dfs_async._endpoints.ERRORS_DAYS == dfs_async._calendar.ERRORS_DAYS == 7


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_every_emulator_module_is_under_500_lines(path: Path) -> None:
    """Each room of dfs_async.testing fits in one sitting (under 500 lines)."""
    assert len(path.read_text(encoding="utf-8").splitlines()) < 500
