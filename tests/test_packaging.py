"""The distributions: what the sdist and the wheel carry, and the metadata an index shows."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
#: The version's one source (pyproject.toml reads it from there: `dynamic = ["version"]`).
VERSION = re.search(
    r'^__version__ = "([^"]+)"$',
    (ROOT / "dfs_async" / "_version.py").read_text(encoding="utf-8"),
    re.MULTILINE,
)[1]  # type: ignore[index]
STEM = f"dfs_async-{VERSION}"

# What an sdist is for: building and testing the package. The CI script and git's own files
# are not; docs/ and mkdocs.yml belong in it once the manual exists. hatch_build.py is the hook
# that keeps .gitignore out, shipped so that the sdist builds again.
SDIST_TOP = {
    "PKG-INFO",
    "pyproject.toml",
    "hatch_build.py",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "dfs_async",
    "tests",
    "examples",
    "benchmarks",
} | ({"docs", "mkdocs.yml"} & {path.name for path in ROOT.iterdir()})


def build(source: Path, out: Path, *targets: str) -> list[Path]:
    """Build `targets` ("sdist", "wheel") of the project in `source` with hatchling's PEP 517 hooks.

    Called in a child whose working directory is the project, as a frontend would, but without
    an isolated build environment: hatchling is in the test extra, so nothing is downloaded.
    """
    code = "import sys, hatchling.build as hooks\n" + "".join(
        f"print(hooks.build_{target}(sys.argv[1]))\n" for target in targets
    )
    built = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [out / name for name in built.stdout.split()]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel of this working tree, built once."""
    sdist, wheel = build(ROOT, tmp_path_factory.mktemp("dist"), "sdist", "wheel")
    return {"sdist": sdist, "wheel": wheel}


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"{STEM}.dist-info/METADATA").decode("utf-8")
    return Parser().parsestr(text, headersonly=True)


def test_sdist_holds_exactly_the_sources_and_the_license(dist: dict[str, Path]) -> None:
    """The sdist's top level is exactly the package, tests, examples, benchmarks, metadata files."""
    assert dist["sdist"].name == f"{STEM}.tar.gz"
    with tarfile.open(dist["sdist"]) as archive:
        names = archive.getnames()
        license_text = archive.extractfile(f"{STEM}/LICENSE")
        assert license_text is not None
        assert license_text.read() == (ROOT / "LICENSE").read_bytes()
    assert {name.split("/")[0] for name in names} == {STEM}
    top = {name.split("/")[1] for name in names if "/" in name}
    assert top == SDIST_TOP
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_wheel_holds_the_package_and_the_license(dist: dict[str, Path]) -> None:
    """The wheel is the package (typed) and its dist-info, which holds the LICENSE text."""
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = archive.namelist()
        license_text = archive.read(f"{STEM}.dist-info/licenses/LICENSE")
    assert {name.split("/")[0] for name in names} == {"dfs_async", f"{STEM}.dist-info"}
    assert "dfs_async/py.typed" in names
    assert "dfs_async/testing/__init__.py" in names
    assert license_text == (ROOT / "LICENSE").read_bytes()


def test_the_unpacked_sdist_builds_the_same_wheel(dist: dict[str, Path], tmp_path: Path) -> None:
    """A wheel built from the unpacked sdist (as pip does) holds exactly the files of ours."""
    with tarfile.open(dist["sdist"]) as archive:
        archive.extractall(tmp_path, filter="data")
    (again,) = build(tmp_path / STEM, tmp_path, "wheel")
    with zipfile.ZipFile(dist["wheel"]) as ours, zipfile.ZipFile(again) as theirs:
        assert sorted(theirs.namelist()) == sorted(ours.namelist())
        assert theirs.read(f"{STEM}.dist-info/METADATA") == ours.read(f"{STEM}.dist-info/METADATA")


def test_license_is_mit_for_the_dfs_async_developers() -> None:
    """LICENSE is the MIT licence, 2026, in the name the package's authors carry."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 dfs-async developers\n")
    assert "Permission is hereby granted, free of charge" in text
    assert [author["name"] for author in PROJECT["authors"]] == ["dfs-async developers"]


def test_metadata_declares_license_pythons_and_urls(dist: dict[str, Path]) -> None:
    """The wheel's metadata: MIT with its file, Python 3.11+, exactly the tested versions, URLs."""
    metadata = wheel_metadata(dist["wheel"])
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.11"
    pythons = {
        classifier.removeprefix("Programming Language :: Python :: ")
        for classifier in metadata.get_all("Classifier", [])
        if classifier.startswith("Programming Language :: Python :: ")
    }
    assert pythons == {"3", "3 :: Only", "3.11", "3.12", "3.13"}
    assert metadata.get_all("Project-URL") == [
        "DataForSEO id_list reference, https://docs.dataforseo.com/v3/backlinks/id_list",
    ]


def test_classifiers_list_the_pythons_ci_runs() -> None:
    """The versions in the classifiers are exactly those .ci/run builds and tests on."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    match = re.search(r"^PYTHONS=\(([^)]*)\)$", script, re.MULTILINE)
    assert match is not None, "`.ci/run` no longer sets PYTHONS=(...)"
    declared = {
        classifier.removeprefix("Programming Language :: Python :: ")
        for classifier in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    }
    assert set(match.group(1).split()) == declared
    minimum = min(declared, key=lambda version: tuple(map(int, version.split("."))))
    assert PROJECT["requires-python"] == f">={minimum}"
