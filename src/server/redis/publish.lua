-- One publish (after publish_fn.lua, which this script is appended to).
-- KEYS[1] meta hash (epoch, seq)   KEYS[2] history stream   KEYS[3] channel
-- ARGV[1] the event's JSON without seq   ARGV[2] history length
-- ARGV[3] a fresh epoch, if none exists   ARGV[4] publish wall time (µs)
return publish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
