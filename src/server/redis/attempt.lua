-- Starts an attempt (after publish_fn.lua): if the entry is still pending for this
-- consumer (no other instance claimed it), counts the attempt, resets the entry's
-- idle time and publishes SYNC_PROCESSING.
--
-- KEYS[1] meta   KEYS[2] history   KEYS[3] channel   KEYS[4] the entry's stream
-- KEYS[5] attempts hash
-- ARGV[1] history length   ARGV[2] fresh epoch   ARGV[3] publish time (µs)
-- ARGV[4] group   ARGV[5] consumer   ARGV[6] entry id   ARGV[7] attempts field
-- ARGV[8] the PROCESSING event's JSON without seq
-- Returns the attempt's number (1-based), or -1 if the entry is not this consumer's.
local mine = redis.call('xpending', KEYS[4], ARGV[4], ARGV[6], ARGV[6], 1, ARGV[5])
if #mine == 0 then
  return -1
end
local n = redis.call('hincrby', KEYS[5], ARGV[7], 1)
redis.call('xclaim', KEYS[4], ARGV[4], ARGV[5], 0, ARGV[6], 'JUSTID')
publish(KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[1], ARGV[2], ARGV[3])
return n
