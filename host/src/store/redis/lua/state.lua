-- Write the policy's state (a set, or a delete with no value): the value,
-- the key's next version, and the change on the state channel, in one
-- step, so every node's copy takes the changes in the order Redis made
-- them and a late one (a lower version) is told apart.
-- KEYS[1] the state hash, KEYS[2] the versions hash
-- ARGV[1] deadline ms, ARGV[2] this node, ARGV[3] 's' (set) or 'd'
-- (delete), ARGV[4] the key, ARGV[5] the value (set), ARGV[6] the channel
-- The change: 's|d', node, version, the key's length, then the key and
-- the value, whole (a key or a value may hold newlines).
-- Returns the version, or {'late'}.
local v = redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
if ARGV[3] == 's' then
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
  redis.call('PUBLISH', ARGV[6], 's\n' .. ARGV[2] .. '\n' .. v .. '\n' .. #ARGV[4] .. '\n' .. ARGV[4] .. ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[4])
  redis.call('PUBLISH', ARGV[6], 'd\n' .. ARGV[2] .. '\n' .. v .. '\n' .. #ARGV[4] .. '\n' .. ARGV[4])
end
return v
