"""Run the emulator as a process: `python -m dfs_async.testing --port 0`.

It prints one line, `dfs-async emulator listening on http://HOST:PORT`, then serves until SIGINT
or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence
from datetime import datetime, timezone

from dfs_async._ratespec import parse_rate

from ._emulator import Emulator
from ._live import Live

#: Six calendar months are at most 184 days (July to December); two more cover the data's
#: margin before "now", so any window the API accepts at the start finds data all through.
SIX_MONTHS_DAYS = 186


def _rate_limit(text: str) -> tuple[int, float] | None:
    if text == "off":
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or off") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dfs_async.testing",
        description="Serve an emulator of DataForSEO's id_list and errors endpoints.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument("--tasks", type=int, default=2500, help="generated id_list tasks")
    parser.add_argument("--errors", type=int, default=300, help="generated errors entries")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--days",
        type=int,
        default=SIX_MONTHS_DAYS,
        help="the tasks lie over this many days before the start (default "
        f"{SIX_MONTHS_DAYS}: every window of six calendar months, whatever the date)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=(10, 60.0),
        help="CALLS/SECONDS per login and path, or off (default 10/60)",
    )
    parser.add_argument(
        "--rate-limit-headers",
        action="store_true",
        help="send X-RateLimit-Limit and X-RateLimit-Remaining",
    )
    parser.add_argument(
        "--live",
        choices=("posted", "done"),
        help="live mode: tasks posted, queued and completed as time passes; the id_list window "
        "filters on this timestamp",
    )
    parser.add_argument(
        "--live-sort",
        choices=("posted", "done"),
        default="posted",
        help="live mode: the timestamp id_list results are sorted by (default posted)",
    )
    parser.add_argument("--login", default="login")
    parser.add_argument("--password", default="password")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    emulator = Emulator(
        args.login,
        args.password,
        n_tasks=args.tasks,
        n_errors=args.errors,
        seed=args.seed,
        data_days=args.days,
        rate_limit=args.rate_limit,
        rate_limit_headers=args.rate_limit_headers,
        host=args.host,
        port=args.port,
        live=None
        if args.live is None
        else Live(
            start=datetime.now(timezone.utc),
            seed=args.seed,
            window_on=args.live,
            sort_on=args.live_sort,
        ),
    )
    async with emulator:
        print(f"dfs-async emulator listening on {emulator.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve until a termination signal."""
    asyncio.run(_serve(_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
