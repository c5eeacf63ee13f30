"""The `dfs-async` command line: export a stream of task ids or errors to JSONL or CSV.

    dfs-async id-list --from 2026-11-01 --to "2026-11-22 12:00" -o tasks.jsonl --state tasks.state
    dfs-async errors --function backlinks/live --format csv
    dfs-async id-list --emulate --from 30d                 # the built-in emulator, no account

Strategy: the stream is read a page at a time. Each page is written whole (one `write`, then
flush and fsync), and only then is the state file replaced (temp file + `os.replace`), so the
state never claims a record the output does not hold. The state also records the output's size;
a resumed run first cuts the output back to that size, so a run killed between the two writes
(even by SIGKILL) still resumes without a duplicate. That is why `--state` needs `-o`: standard
output cannot be cut back. The output is opened only when the first page has arrived, so a run
that fails at once leaves an existing file as it was. SIGINT and SIGTERM cancel the main task,
and a task is only cancelled where it awaits, never in the middle of writing a page.

Everything that reads a file or the terminal before the stream (the arguments' paths, the state
file, the password) is done before the event loop starts: a Ctrl-C there is a plain
KeyboardInterrupt, which `main` turns into exit 130 like any other.

One module per job: `parser` (the arguments, standard library only, so --help is instant),
`dates`, `options`, `files` (checked before anything runs), `account` and `secrets`, `state`,
`writers`, `progress`, `export` (the loop) and `signals`, `emulate`, `locks`, `logs`, `main`,
`resend` for resend-webhooks, `sqlite` for an export into an SQLite store (`-o FILE.sqlite`),
and `report` for the report over one. Only the public API of `dfs_async` (and `dfs_async.testing`
for `--emulate`) is used here; `rich` is imported only when a progress display is shown. The
command line is the interface: these modules' Python names are not a public API.
"""

from .main import main

__all__ = ["main"]
