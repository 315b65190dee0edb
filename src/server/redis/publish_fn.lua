-- One publish of an organization, atomically (after centrifugal/centrifuge's
-- broker_history_add_stream.lua): read or create the epoch, take the next seq,
-- append the event to the capped history stream, PUBLISH it. Publish order is
-- so seq order on every instance. Every script that publishes starts with this
-- function (publish.lua and the queue's scripts), so numbering is one code path.
--
-- meta: hash (epoch, seq)   history: stream   channel: pub/sub channel
-- json: the event's JSON without seq (an object: ends with '}')
-- keep: history length (0: no history)   fresh: a fresh epoch, if none exists
-- at: publish wall time in microseconds (for the pub/sub lag)
-- Returns {epoch, seq, created (1 if the epoch was created now)}.
local function publish(meta, history, channel, json, keep, fresh, at)
  local epoch = redis.call('hget', meta, 'epoch')
  local created = 0
  if not epoch then
    epoch = fresh
    redis.call('hset', meta, 'epoch', epoch, 'seq', 0)
    redis.call('del', history)
    created = 1
  end
  local seq = redis.call('hincrby', meta, 'seq', 1)
  local text = string.sub(json, 1, -2) .. ',"seq":' .. seq .. '}'
  if tonumber(keep) > 0 then
    redis.call('xadd', history, 'MAXLEN', tonumber(keep), seq .. '-1', 'd', text)
  end
  redis.call('publish', channel, seq .. ':' .. epoch .. ':' .. at .. ':' .. text)
  return {epoch, seq, created}
end
