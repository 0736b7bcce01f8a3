-- An id of a dead node whose hold ended (nobody resumed it): it goes
-- offline for good, as on the node it was on: no node has it, it is in
-- no room, and presence hears `off`. Nothing if another node claimed it
-- meanwhile.
-- What its notice log kept goes too (a hold that ends takes its queue
-- along, as on one node).
-- KEYS[1] the id's owner hash, KEYS[2] the id's rooms set, KEYS[3] its
-- notice log
-- ARGV[1] deadline ms, ARGV[2] the dead node, ARGV[3] ttl ms, ARGV[4] the
-- id, ARGV[5] the node keys' prefix, ARGV[6] the presence channel,
-- ARGV[7] its generation when the dead node was taken over (a claim
-- since, even by the dead node come back, moved it on)
-- Returns {1, {room, ...}} (buried: its rooms are to hear `left`),
-- {0} (moved on), or {'late'}.
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[2]
    or (redis.call('HGET', KEYS[1], 'gen') or '0') ~= ARGV[7] then
  return {0}
end
redis.call('SREM', ARGV[5] .. ARGV[2] .. ':ids', ARGV[4])
local rooms = redis.call('SMEMBERS', KEYS[2])
redis.call('HDEL', KEYS[1], 'node', 'held', 'session')
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[6], 'off\n' .. ARGV[2] .. '\n' .. ARGV[4])
return {1, rooms}
