-- An item's terminal transition, atomically (after publish_fn.lua): if the entry
-- is still pending for this consumer, XACK + XDEL it, count it and publish its one
-- terminal event. A second call (or another consumer's, after a claim) finds it
-- gone and does nothing, so every item has exactly one terminal event.
--
-- KEYS[1] meta   KEYS[2] history   KEYS[3] channel   KEYS[4] the entry's stream
-- KEYS[5] counts hash   KEYS[6] attempts hash   KEYS[7] versions hash
-- ARGV[1] history length   ARGV[2] fresh epoch   ARGV[3] publish time (µs)
-- ARGV[4] group   ARGV[5] consumer   ARGV[6] entry id   ARGV[7] attempts field
-- ARGV[8] the terminal event's JSON without seq
-- ARGV[9] the counter: completed, failed or conflicts   ARGV[10] time in queue (ms)
-- ARGV[11] now (ms)   ARGV[12] pfaId   ARGV[13] its new version ('' for none)
-- Returns 1 if this call ended the item, 0 if it had ended already.
local mine = redis.call('xpending', KEYS[4], ARGV[4], ARGV[6], ARGV[6], 1, ARGV[5])
if #mine == 0 then
  return 0
end
redis.call('xack', KEYS[4], ARGV[4], ARGV[6])
redis.call('xdel', KEYS[4], ARGV[6])
redis.call('hdel', KEYS[6], ARGV[7])
redis.call('hincrby', KEYS[5], 'processing', -1)
redis.call('hincrby', KEYS[5], ARGV[9], 1)
redis.call('hincrby', KEYS[5], 'total_sync_ms', ARGV[10])
redis.call('hset', KEYS[5], 'last_sync_ms', ARGV[11])
if ARGV[13] ~= '' then
  redis.call('hset', KEYS[7], ARGV[12], ARGV[13])
end
publish(KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[1], ARGV[2], ARGV[3])
return 1
