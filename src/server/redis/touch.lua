-- Keeps an entry this consumer still works on from being claimed: resets its idle
-- time if it is pending for this consumer, and never takes another's.
--
-- KEYS[1] the entry's stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] entry id
-- Returns 1 if the entry is still this consumer's, else 0.
local mine = redis.call('xpending', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #mine == 0 then
  return 0
end
redis.call('xclaim', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
