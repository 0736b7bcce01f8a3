-- Redis lost its data (restarted without persistence): a node says again
-- what it has — an id's node and generation, its rooms — and presence
-- hears it, so the others' copies have it again. Nothing if another node
-- claimed the id since, with a newer generation.
-- KEYS[1] the id's owner hash, KEYS[2] the id's rooms set
-- ARGV[1] this node, ARGV[2] the connection's generation, ARGV[3] the id,
-- ARGV[4] the node keys' prefix, ARGV[5] the presence channel,
-- ARGV[6..] the id's rooms here
-- Returns 1 (said again) or 0.
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'gen', ARGV[2], 'node', ARGV[1])
redis.call('SADD', ARGV[4] .. ARGV[1] .. ':ids', ARGV[3])
redis.call('PUBLISH', ARGV[5], 'on\n' .. ARGV[1] .. '\n' .. ARGV[3])
for i = 6, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  redis.call('PUBLISH', ARGV[5], 'join\n' .. ARGV[1] .. '\n' .. ARGV[3] .. '\n' .. ARGV[i])
end
return 1
