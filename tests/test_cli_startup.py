"""The command line answers --help, --version and a bad argument without loading the client."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import dfs_async
from dfs_async.cli.parser import DEFAULT_RETRIES

#: What a fast answer must not import: the HTTP stack, the records' libraries, the client,
#: and the version lookup through the installed metadata.
HEAVY = ("aiohttp", "attr", "attrs", "cattrs", "dfs_async._client", "importlib.metadata")

PROBE = """
import contextlib, io, json, sys
from dfs_async.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "modules": sorted(sys.modules)}))
"""


def probe(*args: str) -> dict[str, object]:
    """Run the CLI with `args` in a fresh interpreter; its result and the modules it loaded."""
    result = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
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
    assert dir(dfs_async) == sorted(dfs_async.__all__)
    with pytest.raises(AttributeError, match=r"^module 'dfs_async' has no attribute 'Clinet'$"):
        dfs_async.Clinet  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_alone_loads_no_client() -> None:
    """`import dfs_async` costs nothing until a name is used."""
    script = "import sys, json, dfs_async; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(  # noqa: S603 -- our own interpreter
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert heavy_modules(json.loads(result.stdout)) == []
