-- Which history is this, and is it the one the worker knew? Loaded in front of acquire.lua
-- and release.lua, which call it first.
--
-- Redis's clock, not the worker's: every host agrees on "now" whatever its own clock says.
-- Times are whole microseconds of it: below 2**53 they are exact in Lua's doubles, in
-- sorted-set scores, and in the integers a script returns.
--
-- The epoch hash (epoch_key): id, at (when this history began), writes (how many script runs
-- wrote to it). It never expires, and every run of either script counts one write.
-- seen, seen_writes: the epoch the worker saw last ('' if none) and the most writes it saw in
-- it; new_id: the id for a new epoch. Returns now, the epoch's id and its writes.
local function history(epoch_key, seen, seen_writes, new_id)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local epoch = redis.call('HGET', epoch_key, 'id')
  local writes = tonumber(redis.call('HGET', epoch_key, 'writes') or '0')
  if not epoch or (seen == epoch and tonumber(seen_writes) > writes) then
    -- No epoch (this key's first use, or Redis lost everything), or fewer writes than this
    -- worker saw (a restart from an older snapshot, a replica that was behind, keys evicted):
    -- a new history begins now. Whatever it lacks is older than now.
    epoch = new_id
    redis.call('HSET', epoch_key, 'id', epoch, 'at', now, 'writes', 0)
  end
  writes = redis.call('HINCRBY', epoch_key, 'writes', 1)
  return now, epoch, writes
end
