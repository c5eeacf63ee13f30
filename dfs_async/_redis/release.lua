-- The release script: the call's reply arrived (or it failed), stamp it now.
-- KEYS: 1 done  2 flight  3 epoch
-- ARGV: 1 token  2 how long to keep the key (ms)  3 epoch the worker saw last
--       4 the most writes it saw in it  5 id for a new epoch
local now, epoch, writes = history(KEYS[3], ARGV[3], ARGV[4], ARGV[5])

-- No longer in flight ...
redis.call('ZREM', KEYS[2], ARGV[1])
-- ZADD, not a move: it also stamps a call whose lease already ran out (the later stamp, now,
-- is the safe one) or whose entry Redis lost meanwhile (the stamp comes back).
redis.call('ZADD', KEYS[1], now, ARGV[1])
-- Kept until this stamp (and any lease) can no longer matter.
redis.call('PEXPIRE', KEYS[1], ARGV[2])
-- A new epoch begun here is noticed by the worker's next acquire, which pauses the key.
return {epoch, writes}
