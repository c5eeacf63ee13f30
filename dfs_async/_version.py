"""The package's version, the one place it is written (pyproject.toml reads it from here).

A module of its own so that `dfs-async --version` answers without importing
importlib.metadata (about 40 ms) or the client.
"""

__version__ = "0.1.0"
