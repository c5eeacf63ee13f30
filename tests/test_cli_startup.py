"""The command line answers --help, --version and a bad argument without loading the client."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

import dfs_async
from dfs_async.cli.parser import DEFAULT_RETRIES

#: What a fast answer must not import: the HTTP stack, the records' libraries, the client,
#: the version lookup through the installed metadata, typing (4 ms) and shutil (3 ms with the
#: bz2, lzma and zlib it loads; argparse imports it for the terminal's width unless told it).
HEAVY = (
    "aiohttp",
    "attr",
    "attrs",
    "cattrs",
    "dfs_async._client",
    "importlib.metadata",
    "shutil",
    "typing",
)

PROBE = """
import contextlib, io, json, sys
from dfs_async.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "modules": sorted(sys.modules)}))
"""


def uninstrumented() -> dict[str, str]:
    """This environment without coverage's switches: under `pytest --cov` a child process
    starts coverage first (its .pth files), which imports typing and shutil itself."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COV_CORE_", "COVERAGE_"))
    }


def probe(*args: str) -> dict[str, object]:
    """Run the CLI with `args` in a fresh interpreter; its result and the modules it loaded."""
    result = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        env=uninstrumented(),
    )
    data: dict[str, object] = json.loads(result.stdout)
    return data


def heavy_modules(modules: object) -> list[str]:
    """Those of `modules` that are, or live inside, one of HEAVY."""
    assert isinstance(modules, list)
    return [name for name in modules if any(name == h or name.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["id-list", "--help"], 0),
        (["errors", "--help"], 0),
        (["resend-webhooks", "--help"], 0),
        (["id-list", "--from", "yesterday"], 2),
        (["no-such-command"], 2),
    ],
)
def test_quick_answers_import_nothing_heavy(args: list[str], code: int) -> None:
    """--help, --version and argument errors load no aiohttp, attrs, cattrs or client code."""
    result = probe(*args)
    assert result["code"] == code
    assert heavy_modules(result["modules"]) == []


def test_an_export_does_load_the_client() -> None:
    """The probe can fail: past the parser (here a cross-check error) the client is loaded."""
    result = probe("id-list", "--from", "30d", "--state", "s.json")
    assert result["code"] == 2
    assert "dfs_async._client" in heavy_modules(result["modules"])


def test_the_version_is_the_installed_distributions() -> None:
    """dfs_async/_version.py is the one source: the installed metadata says the same."""
    assert dfs_async.__version__ == importlib.metadata.version("dfs-async")
    assert probe("--version")["out"] == f"dfs-async {dfs_async.__version__}\n"


def test_the_default_retries_are_the_librarys() -> None:
    """The parser's copy of the default (kept there so --help needs no attrs) is Retry()'s."""
    assert dfs_async.Retry().attempts - 1 == DEFAULT_RETRIES


def test_the_package_imports_its_names_on_first_use() -> None:
    """Every public name resolves lazily; dir() lists them; a wrong name is an AttributeError."""
    for name in dfs_async.__all__:
        assert getattr(dfs_async, name) is not None
    assert set(dfs_async.__all__) <= set(dir(dfs_async))
    with pytest.raises(AttributeError, match=r"^module 'dfs_async' has no attribute 'Clinet'$"):
        dfs_async.Clinet  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_alone_loads_no_client() -> None:
    """`import dfs_async` costs nothing until a name is used."""
    script = "import sys, json, dfs_async; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=uninstrumented(),
    )
    assert heavy_modules(json.loads(result.stdout)) == []


def run_fresh(script: str) -> str:
    """`script` in a fresh interpreter (no dfs_async name used yet); its standard output."""
    result = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env=uninstrumented(),
    )
    assert result.returncode == 0, result.stderr  # what went wrong, if anything
    return result.stdout


def test_dir_keeps_the_modules_own_names() -> None:
    """dir() lists the public names and what any module has (__all__, __file__, __path__)."""
    listed = set(dir(dfs_async))
    assert set(dfs_async.__all__) <= listed
    assert {"__all__", "__doc__", "__file__", "__name__", "__path__", "__spec__"} <= listed


def test_help_shows_every_public_name() -> None:
    """help(dfs_async) documents each public class and shows __all__, as a plain module's does."""
    text = run_fresh(
        "import pydoc, dfs_async; print(pydoc.render_doc(dfs_async, renderer=pydoc.plaintext))"
    )
    classes = [n for n in dfs_async.__all__ if isinstance(getattr(dfs_async, n), type)]
    assert [n for n in classes if f"class {n}(" not in text] == []
    assert "__all__ = [" in text


def test_the_lazy_table_matches_the_imports_type_checkers_see() -> None:
    """Each name comes at run time from its TYPE_CHECKING import (what mypy sees), all of them."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(dfs_async.__file__).read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    seen = {
        alias.asname or alias.name: ("." * node.level + (node.module or ""), alias.name)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == dfs_async._LAZY
    assert set(seen) | {"__version__"} == set(dfs_async.__all__)


def test_star_import_binds_every_public_name() -> None:
    """`from dfs_async import *` in a fresh interpreter binds each name of __all__ to its object."""
    script = (
        "from dfs_async import *\n"
        "import dfs_async, json\n"
        "unbound = [n for n in dfs_async.__all__ if globals()[n] is not getattr(dfs_async, n)]\n"
        "print(json.dumps(unbound))"
    )
    assert json.loads(run_fresh(script)) == []


def test_first_use_from_many_threads_at_once() -> None:
    """Eight threads touching every name first, all at once: each gets the one real object."""
    script = """
import json, threading, dfs_async
barrier = threading.Barrier(8)
seen, failures = [], []
def work(k):
    names = dfs_async.__all__[k::8] + dfs_async.__all__
    barrier.wait()
    try:
        seen.append({n: id(getattr(dfs_async, n)) for n in names})
    except BaseException as exc:
        failures.append(repr(exc))
threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
distinct = len({json.dumps(s, sort_keys=True) for s in seen})
print(json.dumps({"failures": failures, "distinct": distinct, "threads": len(seen)}))
"""
    assert json.loads(run_fresh(script)) == {"failures": [], "distinct": 1, "threads": 8}


def test_the_emulator_works_before_any_name_is_used() -> None:
    """`import dfs_async.testing` first, in a fresh interpreter: its emulator answers a client."""
    script = """
import asyncio, datetime, dfs_async.testing
async def main():
    now = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)
    clock = lambda: now
    emulator = dfs_async.testing.Emulator(n_tasks=3, now=clock, data_now=now, data_days=10)
    async with emulator:
        client = dfs_async.Client("login", "password", base_url=emulator.url, now=clock)
        async with client:
            return [t async for t in client.backlinks.id_list(now - datetime.timedelta(days=30))]
print(len(asyncio.run(main())))
"""
    assert run_fresh(script) == "3\n"


def test_records_unpickle_in_a_fresh_interpreter() -> None:
    """A pickled record or plain error loads where no dfs_async name was used before."""
    import pickle
    from datetime import datetime, timezone

    record = dfs_async.TaskId(
        id="a",
        url="u",
        datetime_posted=datetime(2026, 11, 1, tzinfo=timezone.utc),
        datetime_done=None,
        status="Ok.",
        cost=0.5,
        metadata={"target": "example.com"},
    )
    error = dfs_async.InvalidArgumentError("page_size must be 1..1000")
    data = pickle.dumps((record, error)).hex()
    script = f"import pickle; print(repr(pickle.loads(bytes.fromhex({data!r}))))"
    assert run_fresh(script) == repr((record, error)) + "\n"
