"""Build hook: the sdist without the `.gitignore` that hatchling puts in every sdist.

hatchling force-includes the VCS ignore file, beyond the reach of `exclude`, so that a build from
an unpacked sdist leaves out what the repository ignores. This sdist picks its files with an
allow-list (`only-include` in pyproject.toml), so that file would select nothing: it is only
repository plumbing in a user's download. tests/test_packaging.py pins what the sdist holds.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class SdistWithoutGitignore(BuildHookInterface):  # type: ignore[type-arg]
    """Drops `.gitignore` from the files hatchling adds to the sdist whatever the selection."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        forced: dict[str, str] = build_data["force_include"]
        for source in [source for source, target in forced.items() if target == ".gitignore"]:
            del forced[source]
