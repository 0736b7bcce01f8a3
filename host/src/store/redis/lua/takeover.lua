-- A surviving node takes over a dead one, once: the first to set the
-- claim key wins. Its ids are marked held (a connection elsewhere that
-- presents its session resumes it) and the node leaves the nodes set
-- and the list of what each node's policy is.
-- KEYS[1] the dead node's claim key, KEYS[2] the nodes set, KEYS[3] the
-- dead node's ids set (the ids' own hashes are named from ARGV[4]),
-- KEYS[4] what each node's policy is (a hash)
-- ARGV[1] deadline ms, ARGV[2] the dead node, ARGV[3] this node,
-- ARGV[4] '<prefix>:{id:'
-- Returns {1, {id, ...}, {generation, ...}} (taken over: each id still
-- on the dead node, with its generation, which its bury checks: a claim
-- since, even on a node of the same name come back, is not buried), {0}
-- (another node has), or {'late'}.
if not redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', 600000) then
  return {0}
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
local held, gens = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local owner = ARGV[4] .. id .. '}'
  if redis.call('HGET', owner, 'node') == ARGV[2] then
    redis.call('HSET', owner, 'held', '1')
    held[#held + 1] = id
    gens[#gens + 1] = redis.call('HGET', owner, 'gen') or '0'
  end
end
return {1, held, gens}
