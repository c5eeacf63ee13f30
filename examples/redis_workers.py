"""Several worker processes on one DataForSEO account, one rate limit shared through Redis.

Each worker is a process of its own (as it would be on several hosts) and streams its own
window of the account's id_list. Alone, each would allow itself the whole quota; through
`dfs_async.RedisBackend` they share it: together never more than `calls` per `period`, and
together using all of it.

    python examples/redis_workers.py --emulate
        against a local emulator (10 calls a second, to be quick) and, unless
        DFS_ASYNC_REDIS_URL is set, a throwaway redis-server on a free port
    DFS_ASYNC_REDIS_URL=redis://localhost:6379/0 python examples/redis_workers.py
        against the real API with DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD (10 calls a minute)

The Redis URL (which may hold a password) travels in the environment, never on a command line,
where `ps` would show it to every user of the host; only its redacted form is printed.

``python examples/redis_workers.py worker --help`` describes one worker alone; the parent runs
those as subprocesses, lets them all start at once, then prints what each did.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import dfs_async

# The package's own CALLS/SECONDS reader, so --rate means what the dfs-async command's does.
from dfs_async._ratespec import parse_rate

UTC = timezone.utc
PATH = "/v3/backlinks/id_list"
EMULATOR_LOGIN = "workers@example.com"
EMULATOR_PASSWORD = "emulator-password"  # noqa: S105 - the local emulator's, not a secret
SCRIPT = os.path.abspath(__file__)
#: The environment variable holding the Redis URL, for the parent and every worker.
REDIS_URL_ENV = "DFS_ASYNC_REDIS_URL"


def _rate(text: str) -> tuple[int, float]:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- one worker ---------------------------------------------------------------------------------


def worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis_workers.py worker",
        description="Stream one window of id_list under a rate limit shared through Redis "
        f"(its URL in ${REDIS_URL_ENV}).",
    )
    parser.add_argument("--base-url", default=dfs_async.DEFAULT_BASE_URL)
    parser.add_argument("--name", default="worker")
    parser.add_argument("--from", dest="start", required=True, help="ISO datetime, aware")
    parser.add_argument("--to", dest="end", required=True, help="ISO datetime, aware")
    parser.add_argument("--rate", type=_rate, default=(10, 60.0), help="CALLS/SECONDS")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--lease", type=float, default=180.0, help="RedisBackend lease")
    parser.add_argument("--timeout", type=float, default=120.0, help="Client timeout")
    parser.add_argument(
        "--wait-for-go",
        action="store_true",
        help="print 'ready', then start only once a line arrives on stdin",
    )
    return parser


async def work(args: argparse.Namespace) -> dict[str, Any]:
    """Stream the window; what this worker did, for the parent's summary."""
    calls, period = args.rate
    records = 0
    redis_url = os.environ.get(REDIS_URL_ENV)
    if not redis_url:
        raise SystemExit(f"set {REDIS_URL_ENV} to the Redis URL shared by all workers")
    async with (
        dfs_async.RedisBackend(redis_url, lease=args.lease) as shared,
        dfs_async.Client(
            base_url=args.base_url,
            rate_limit=dfs_async.RateLimit(calls=calls, period=period),
            limiter=shared,
            timeout=args.timeout,
        ) as client,
    ):
        pager = client.backlinks.id_list(
            datetime.fromisoformat(args.start),
            datetime.fromisoformat(args.end),
            page_size=args.page_size,
            max_items=args.max_items,
        )
        async with pager:
            async for page in pager.pages():
                records += len(page.records)
        stats = client.stats
    return {
        "name": args.name,
        "records": records,
        "calls": stats.calls,
        "rate_limited": stats.rate_limited,
        "rate_limit_waits": stats.rate_limit_waits,
        "seconds_waited": round(stats.seconds_waited, 3),
    }


def worker_main(argv: Sequence[str]) -> int:
    args = worker_parser().parse_args(argv)
    if args.wait_for_go:
        # Everything is imported by now: the parent can start every worker at the same moment.
        print("ready", flush=True)
        sys.stdin.readline()
    print(json.dumps(asyncio.run(work(args))), flush=True)
    return 0


# -- the parent -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redis_workers.py",
        description="Run worker processes that share one rate limit through Redis (its URL "
        f"in ${REDIS_URL_ENV}; with --emulate, a throwaway redis-server if unset).",
    )
    parser.add_argument("--emulate", action="store_true", help="use a local emulator")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--rate", type=_rate, default=None, help="CALLS/SECONDS (default 10/1 emulated, 10/60)"
    )
    parser.add_argument("--days", type=float, default=140.0, help="how far back the windows go")
    parser.add_argument("--page-size", type=int, default=None, help="default 10 emulated, 1000")
    parser.add_argument("--pages", type=int, default=15, help="pages per worker at most")
    return parser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_redis(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A redis-server on a free loopback port, without persistence; its URL.

    `env` is the server's environment (this process's by default).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install it, or pass --redis URL")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen([*command, "no"], stdout=subprocess.DEVNULL, env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 10.0
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


async def run(args: argparse.Namespace) -> int:
    calls, period = args.rate or ((10, 1.0) if args.emulate else (10, 60.0))
    page_size = args.page_size or (10 if args.emulate else 1000)
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get(REDIS_URL_ENV) or stack.enter_context(throwaway_redis())
        async with contextlib.AsyncExitStack() as async_stack:
            env = dict(os.environ)
            emulator = None
            base_url = dfs_async.DEFAULT_BASE_URL
            if args.emulate:
                from dfs_async.testing import Emulator

                emulator = await async_stack.enter_async_context(
                    Emulator(EMULATOR_LOGIN, EMULATOR_PASSWORD, rate_limit=(calls, period))
                )
                base_url = emulator.url
                env["DATAFORSEO_LOGIN"] = EMULATOR_LOGIN
                env["DATAFORSEO_PASSWORD"] = EMULATOR_PASSWORD
            elif not env.get("DATAFORSEO_LOGIN") or not env.get("DATAFORSEO_PASSWORD"):
                raise SystemExit("set DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD, or pass --emulate")
            shown = dfs_async.RedisBackend.redacted(redis_url)
            print(f"{args.workers} workers, {calls} calls per {period:g} s shared via {shown}")
            results = await run_workers(
                redis_url=redis_url,
                base_url=base_url,
                env=env,
                windows=split_days(args.days, args.workers),
                rate=(calls, period),
                page_size=page_size,
                max_items=page_size * args.pages,
            )
            for result in results:
                print(
                    f"  {result['name']}: {result['calls']} calls, {result['records']} records, "
                    f"waited {result['seconds_waited']} s, refused {result['rate_limited']}"
                )
            if emulator is not None:
                accepted = [r for r in emulator.requests if r.accepted and r.path == PATH]
                refused = sum(1 for r in emulator.requests if r.status_code != 20000)
                span = accepted[-1].time - accepted[0].time
                best = optimum_span(len(accepted), calls, period)
                print(
                    f"emulator: {len(accepted)} calls in {span:.3f} s (optimum {best:.3f} s), "
                    f"refused {refused}, at most "
                    f"{emulator.max_calls_in_window(PATH, period)} in any {period:g} s"
                )
    return 0


def split_days(days: float, parts: int) -> list[tuple[datetime, datetime]]:
    """`parts` consecutive windows covering the last `days` days (ending a minute ago)."""
    end = datetime.now(UTC) - timedelta(minutes=1)
    start = end - timedelta(days=days)
    step = (end - start) / parts
    return [(start + i * step, start + (i + 1) * step) for i in range(parts)]


def optimum_span(n: int, calls: int, period: float) -> float:
    """The least time from the first to the last of `n` calls: full bursts, a period apart."""
    return (math.ceil(n / calls) - 1) * period


async def run_workers(
    *,
    redis_url: str,
    base_url: str,
    env: dict[str, str],
    windows: Sequence[tuple[datetime, datetime]],
    rate: tuple[int, float],
    page_size: int,
    max_items: int | None,
) -> list[dict[str, Any]]:
    """Start one worker process per window, all at once; their results, in order."""
    env = {**env, REDIS_URL_ENV: redis_url}
    processes = []
    try:
        for number, (start, end) in enumerate(windows, 1):
            command = [
                *(sys.executable, SCRIPT, "worker", "--wait-for-go"),
                *("--base-url", base_url, "--name", f"w{number}"),
                *("--from", start.isoformat(), "--to", end.isoformat()),
                *("--rate", f"{rate[0]}/{rate[1]}", "--page-size", str(page_size)),
                *(("--max-items", str(max_items)) if max_items is not None else ()),
            ]
            processes.append(
                await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=env,
                )
            )
        for process in processes:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker did not start: {line!r}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            process.stdin.close()
        results = []
        for process in processes:
            assert process.stdout is not None
            output = await process.stdout.read()
            if await process.wait() != 0:
                raise RuntimeError(f"a worker failed with exit status {process.returncode}")
            results.append(json.loads(output.decode().strip().splitlines()[-1]))
        return results
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["worker"]:
        return worker_main(argv[1:])
    args = parser().parse_args(argv)
    if not args.emulate and not os.environ.get(REDIS_URL_ENV):
        parser().error(f"pass --emulate, or set {REDIS_URL_ENV} to run against the real API")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
