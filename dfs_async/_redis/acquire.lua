-- The acquire script: take a slot, or learn how long to wait before asking again.
-- KEYS: 1 done   zset  token -> reply stamp     (finished calls)
--       2 flight zset  token -> lease end       (calls in flight)
--       3 queue  zset  ticket -> arrival order  (waiters, first come first served)
--       4 alive  zset  ticket -> deadline       (when a silent waiter counts as dead)
--       5 pause  string, exists while every call must wait (40202, lost history)
--       6 epoch  hash   id, at, writes: which history this is; never expires
-- ARGV: 1 calls  2 period  3 lease  4 how long idle keys are kept (ms)  5 ticket
--       6 order ('' for a new waiter)  7 token
--       8 epoch the worker saw last ('' if none)  9 the most writes it saw in it
--       10 id for a new epoch  11 how long a waiter's ticket outlives its promised poll
--       12.. pairs (token, age or -1): calls a worker made while Redis was away
-- Arguments arrive as strings; every time and duration is in microseconds.
local calls = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local keep = tonumber(ARGV[4])
-- How long a waiter's ticket outlives the moment it said it would ask again.
local grace = tonumber(ARGV[11])
local now, epoch, writes = history(KEYS[6], ARGV[8], ARGV[9], ARGV[10])

local lost = 0
if ARGV[8] ~= '' and ARGV[8] ~= epoch then
  -- This worker knew another history, so it was lost. Every lost stamp is older than the new
  -- epoch, so all have left the window a period after it began; every lost call in flight
  -- started before it, so within a lease it has replied (its release stamps it again, in
  -- this history) or died. Pause until both hold.
  lost = 1
  local at = tonumber(redis.call('HGET', KEYS[6], 'at'))
  local ms = math.ceil((at + math.max(period, lease) - now) / 1000)
  -- Never shorten a longer pause (PTTL is -2 when there is none); PX needs at least 1 ms.
  if ms > 0 and ms > redis.call('PTTL', KEYS[5]) then
    redis.call('SET', KEYS[5], '1', 'PX', ms)
  end
end

-- A lease that ran out belongs to a worker that died mid-call: count that call as replied at
-- the lease's end (no later reply can be missed by then, since the lease exceeds the timeout).
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZADD', KEYS[1], expired[i + 1], expired[i])
end
-- ... and it is no longer in flight.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)

-- Calls made through the fallback limiter join the history: finished ones at their stamp,
-- those still in flight with a fresh lease (their release will stamp them).
for i = 12, #ARGV - 1, 2 do
  local age = tonumber(ARGV[i + 1])
  if age >= 0 then
    -- NX: a stamp already here (its release, or an earlier carry) stays as it is.
    redis.call('ZADD', KEYS[1], 'NX', now - age, ARGV[i])
  elseif not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    -- Unless its release got here first: then it is finished, and in flight no more.
    redis.call('ZADD', KEYS[2], now + lease, ARGV[i])
  end
end

-- A stamp a whole period old has left the window (s <= now - period, as in SlidingWindow).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)

-- Waiters that missed their deadline died: their tickets must not block the queue. A live
-- waiter that was only late comes back below with its original order, so keeps its place.
-- (Times are whole microseconds, so "before now" is "at most now - 1".)
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - 1)
if #dead > 0 then
  redis.call('ZREM', KEYS[3], unpack(dead))
  redis.call('ZREM', KEYS[4], unpack(dead))
end
-- (Re)join the queue: a new waiter (tonumber('') is nil) queues as of now; one asking again
-- gives its original order, so a ticket that was dropped or lost comes back in its place.
local order = tonumber(ARGV[6]) or now
redis.call('ZADD', KEYS[3], order, ARGV[5])

-- Kinds: 0 go, 1 wait for a stamp to leave the window, 2 wait for a call in flight, 3 paused.
local kind
local wait
local paused = redis.call('PTTL', KEYS[5])
if redis.call('ZSCORE', KEYS[2], ARGV[7]) then
  -- This token already holds a slot: an earlier try of this same acquire was granted but its
  -- reply was lost on the way. Granting again is what makes retrying safe; a pause that began
  -- since does not take the slot back (the worker would hold it, unused, for a lease).
  kind = 0
elseif paused > 0 then
  -- Paused: everyone waits out the pause (PTTL is in ms), then asks again in queue order.
  kind = 3
  wait = paused * 1000
else
  -- rank: waiters ahead of this one; used: slots held by stamps in the window and by calls
  -- in flight.
  local rank = redis.call('ZRANK', KEYS[3], ARGV[5])
  local done = redis.call('ZCARD', KEYS[1])
  local used = done + redis.call('ZCARD', KEYS[2])
  if used + rank < calls then
    -- Free slots for this waiter and for every waiter ahead of it: take one.
    kind = 0
    redis.call('ZADD', KEYS[2], now + lease, ARGV[7])
  else
    -- The (index + 1)-th oldest entry must leave the window first. Finished calls come first
    -- (oldest stamp first); calls in flight will be stamped now or later.
    local index = used + rank - calls
    if index < done then
      kind = 1
      local entry = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
      wait = tonumber(entry[2]) + period - now
    else
      -- The entry is a call in flight (or one a waiter ahead will start): its stamp is now
      -- or later, so a period from now is a lower bound; ask again then.
      kind = 2
      wait = period
    end
  end
end
if kind == 0 then
  -- Served: the ticket leaves the queue.
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[5])
  wait = 0
else
  -- The waiter promises to ask again after `wait`; past that and the grace, it is dead.
  redis.call('ZADD', KEYS[4], now + wait + grace, ARGV[5])
end
-- Idle keys vanish once nothing in them can matter any more: a lease ends, its stamp leaves
-- the window a period later, a waiter's ticket outlives its wait by the grace.
for i = 1, 4 do
  redis.call('PEXPIRE', KEYS[i], keep)
end
return {kind, wait, order, epoch, lost, writes}
