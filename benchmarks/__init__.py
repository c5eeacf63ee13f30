"""Benchmarks of dfs-async against the alternatives a user would reach for, side by side.

At DataForSEO's 10 calls a minute the server sets the pace, so "fast" means: no wasted call, no
wait beyond what the quota forces, latency hidden behind the consumer's work, and a client-side
CPU and memory cost that vanishes next to the network. Each benchmark measures one of these
against a baseline run in the same process, the same run, on the same emulator:

- ``decode``: raw page bytes to typed records (msgspec, the official client's models, orjson).
- ``stream``: 200,000 task IDs end to end with the limit lifted (raw aiohttp loop, official client).
- ``quota``: 100 pages under the real 10/60 s limit on a virtual clock (naive aiolimiter loops).
- ``memory``: peak traced memory streaming 1,000,000 task IDs against 10,000.
- ``pipelining``: a slow consumer with and without the one-page prefetch.
- ``cli``: the command line's start for --help/--version/a bad argument against a bare
  interpreter, and JSON Lines through orjson against the standard library.

``python -m benchmarks`` runs them all, prints a table and writes ``benchmarks/results.json``;
``--smoke`` runs tiny sizes in seconds; ``--only NAME`` runs one.
"""
