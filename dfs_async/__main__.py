"""`python -m dfs_async ...` runs the `dfs-async` command line."""

import sys


def _main() -> int:
    # A Ctrl-C while the command line is still being imported is an interruption like any
    # other (exit 130, one line), not a traceback; from `main` on, it handles Ctrl-C itself.
    # (The package, dfs_async/__init__.py, is imported before this file runs: a Ctrl-C
    # during that import still shows Python's own KeyboardInterrupt.)
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(_main())
