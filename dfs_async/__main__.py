"""`python -m dfs_async ...` runs the `dfs-async` command line."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
