-- What a new socket of an organization starts from, atomically: the epoch (created
-- if none exists, so a lost Redis starts a new one), the latest seq and, for a
-- resume, the retained history.
--
-- KEYS[1] meta hash   KEYS[2] history stream
-- ARGV[1] a fresh epoch, if none exists   ARGV[2] '1' to read the history
-- Returns {epoch, seq, created, {seq1, json1, seq2, json2, ...}}.
local epoch = redis.call('hget', KEYS[1], 'epoch')
local created = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('hset', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('del', KEYS[2])
  created = 1
end
local seq = tonumber(redis.call('hget', KEYS[1], 'seq'))
local frames = {}
if ARGV[2] == '1' then
  for _, entry in ipairs(redis.call('xrange', KEYS[2], '-', '+')) do
    frames[#frames + 1] = tonumber(string.match(entry[1], '^(%d+)'))
    frames[#frames + 1] = entry[2][2]
  end
end
return {epoch, seq, created, frames}
