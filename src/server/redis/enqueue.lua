-- Queues a write-sync request's items, all or none (after publish_fn.lua): each
-- item is XADDed to its priority's stream and announced with SYNC_QUEUED.
--
-- KEYS[1] meta   KEYS[2] history   KEYS[3] channel   KEYS[4] the priority's stream
-- KEYS[5] counts hash
-- ARGV[1] history length   ARGV[2] fresh epoch   ARGV[3] publish time (µs)
-- ARGV[4] capacity (--max-queued-items, per organization)   ARGV[5] group
-- ARGV[6] queued at (ms)   ARGV[7] priority
-- then per item: id, pfaId, outcome, the QUEUED event's JSON without seq.
-- Returns {1} or, when the organization's backlog would pass the capacity,
-- {0, backlog}.
local n = (#ARGV - 7) / 4
local backlog = tonumber(redis.call('hget', KEYS[5], 'waiting') or '0')
  + tonumber(redis.call('hget', KEYS[5], 'processing') or '0')
if backlog + n > tonumber(ARGV[4]) then
  return {0, backlog}
end
redis.pcall('xgroup', 'create', KEYS[4], ARGV[5], '0', 'MKSTREAM')
for i = 0, n - 1 do
  local at = 8 + 4 * i
  redis.call('xadd', KEYS[4], '*', 'id', ARGV[at], 'pfa', ARGV[at + 1],
    'outcome', ARGV[at + 2], 'priority', ARGV[7], 'queued', ARGV[6])
  publish(KEYS[1], KEYS[2], KEYS[3], ARGV[at + 3], ARGV[1], ARGV[2], ARGV[3])
end
redis.call('hincrby', KEYS[5], 'waiting', n)
return {1}
