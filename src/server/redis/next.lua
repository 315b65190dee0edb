-- The next item for one consumer of an organization, highest priority first: an
-- item another consumer left pending for at least the claim time (XAUTOCLAIM),
-- else a new one (XREADGROUP; it moves from waiting to processing).
--
-- KEYS[1] counts hash   KEYS[2..] the priority streams, highest first
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] claim after (ms)
-- Returns {stream index, entry id, claimed (0/1), field, value, ...}, or
-- {0, backlog} when there is nothing (backlog: waiting + processing).
for pass = 1, 2 do
  for k = 2, #KEYS do
    if redis.call('exists', KEYS[k]) == 1 then
      local entry = nil
      if pass == 1 then
        local r = redis.pcall('xautoclaim', KEYS[k], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', 1)
        if type(r) == 'table' and not r.err and r[2][1] then
          entry = r[2][1]
        end
      else
        local r = redis.pcall('xreadgroup', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1,
          'STREAMS', KEYS[k], '>')
        if type(r) == 'table' and not r.err and r[1][2][1] then
          entry = r[1][2][1]
          redis.call('hincrby', KEYS[1], 'waiting', -1)
          redis.call('hincrby', KEYS[1], 'processing', 1)
        end
      end
      if entry then
        local out = {tostring(k - 1), entry[1], pass == 1 and '1' or '0'}
        for _, v in ipairs(entry[2]) do
          out[#out + 1] = v
        end
        return out
      end
    end
  end
end
return {'0', tostring(tonumber(redis.call('hget', KEYS[1], 'waiting') or '0')
  + tonumber(redis.call('hget', KEYS[1], 'processing') or '0'))}
