"""The shared rate limit: one quota for every worker process on an account, kept in Redis.

``async with RedisBackend(url) as shared, Client(limiter=shared) as client:`` gives every
process (on any host) that uses the same Redis and prefix the contract of the in-process
limiter, across all of them: never more than `calls` calls in any rolling `period` per account
and endpoint, each call stamped when its reply arrived, calls in flight holding their slots, a
full burst after idle time and the full rate on long streams.

Strategy:
- Two small Lua scripts do all the arithmetic inside Redis, so each decision is atomic across
  workers and uses one clock, Redis's own (``TIME``): hosts whose clocks disagree still agree
  on every stamp. Workers only ever sleep for durations the script computed.
- Per key, a sorted set of finished calls (token -> reply stamp) and one of calls in flight
  (token -> lease end). A call may start when finished-in-window + in-flight + the waiters ahead
  of it is below `calls`; otherwise it sleeps until the stamp that must leave the window does.
  A call in flight will be stamped "now or later", so when the slot it holds is the one needed,
  the sleep is a whole period: a lower bound, after which the worker asks again.
- A worker killed mid-call cannot release: its entry's lease (``lease`` seconds, longer than the
  client's timeout) runs out, and it then counts as a call replied at the lease's end, and
  leaves the window a period later like any other.
- Fairness: waiters queue in Redis in arrival order (a sorted set of tickets), and a waiter may
  take a slot only if there are enough free slots for itself and every waiter ahead of it. Each
  waiter sleeps until its own turn, so no worker starves and none polls in a tight loop. A
  ticket carries a deadline (its next poll plus a grace second): a worker that died while
  waiting drops out of the queue; a live one that was merely late comes back with its place.
- A 40202 seen by any worker sets a pause key that expires a period later; every worker's
  acquire sees it.
- Lost history. Redis can lose some or all of a key's history: a restart without persistence,
  a flush, a restart from an older snapshot, a failover to a replica that was behind, an
  eviction. A history missing stamps would allow a burst on top of calls just made. Each key
  has an epoch hash (an id, when it began, and a count of the scripts' writes) that never
  expires. Every worker remembers the epoch it saw last and the highest write count it saw in
  it. A missing epoch, or one whose count is below what a worker saw, is a lost history: a new
  epoch begins, and every worker that knew the old one pauses the key until
  ``max(period, lease)`` after the new one began. By then every lost stamp has left the window,
  and every lost call in flight has replied (its release stamps it again in the new history)
  or died.
- Redis unreachable: each acquire keeps trying for `retry_for` seconds (a restart or failover
  takes less), each try bounded by what is left, waiting between tries as the client's retry
  policy says (full jitter, so workers that lost Redis together do not come back together),
  then raises `RedisUnavailableError`; or with ``fallback=True`` warns and limits that key in
  this process alone (a `LocalLimiter` seeded with this process's latest calls and those
  still in flight), trying Redis again every `reconnect_after` seconds and carrying the calls
  it made meanwhile over into the shared history. Errors that retrying cannot fix (wrong
  type, no permission, failed authentication) raise `RedisBackendError` at once, fallback or
  not.

Why not the `limits` library: its Redis moving window stamps each hit when it is *taken*, with
the worker's own clock (``time.time()``), in whole-second windows, and has no notion of a call
in flight or of a stamp written when the reply arrives. Under it, a slow reply lets the server
count more than `calls` in a window, and skewed hosts disagree; it also only answers yes or no,
leaving waiting and fairness to the caller. Those are this package's whole job.

The rooms: `_scripts` (the Lua scripts, read from the ``.lua`` files beside it, and their
keys, arguments and replies), `_connection` (redis-py's client, what counts as unreachable,
and trying again with the package's retry policy), `_limiter` (acquire, release, pause),
`_fallback` (this process's own record of its calls, and the per-process limit while Redis
is away), `_backend` (`RedisBackend`, which hands out the limiters).

redis-py is imported when a `RedisBackend` is made, so importing this package (and dfs_async)
never needs it.
"""

from ._backend import RedisBackend

__all__ = ["RedisBackend"]
