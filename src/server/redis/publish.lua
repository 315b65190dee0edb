-- One publish of an organization, atomically (after centrifugal/centrifuge's
-- broker_history_add_stream.lua): read or create the epoch, take the next seq,
-- append the event to the capped history stream, PUBLISH it. Publish order is
-- so seq order on every instance.
--
-- KEYS[1] meta hash (epoch, seq)   KEYS[2] history stream   KEYS[3] channel
-- ARGV[1] the event's JSON without seq (an object: ends with '}')
-- ARGV[2] history length (0: no history)   ARGV[3] a fresh epoch, if none exists
-- ARGV[4] publish wall time in microseconds (for the pub/sub lag)
-- Returns {epoch, seq, created (1 if the epoch was created now)}.
local epoch = redis.call('hget', KEYS[1], 'epoch')
local created = 0
if not epoch then
  epoch = ARGV[3]
  redis.call('hset', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('del', KEYS[2])
  created = 1
end
local seq = redis.call('hincrby', KEYS[1], 'seq', 1)
local json = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local keep = tonumber(ARGV[2])
if keep > 0 then
  redis.call('xadd', KEYS[2], 'MAXLEN', keep, seq .. '-1', 'd', json)
end
redis.call('publish', KEYS[3], seq .. ':' .. epoch .. ':' .. ARGV[4] .. ':' .. json)
return {epoch, seq, created}
