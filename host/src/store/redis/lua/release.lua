-- An id went offline on a node for good (its rooms heard `left`): no node
-- has it, it is in no room. The generation stays, to go on rising, for a
-- day after (a key per id ever seen would otherwise stay for ever).
-- What its notice log kept goes too (what a connection was sent goes
-- with it, as on one node).
-- KEYS[1] the id's owner hash, KEYS[2] the id's rooms set, KEYS[3] its
-- notice log
-- ARGV[1] deadline ms, ARGV[2] the releasing node, ARGV[3] ttl ms,
-- ARGV[4] the id, ARGV[5] the node keys' prefix, ARGV[6] the presence
-- channel, ARGV[7] the generation of the connection that ended (a newer
-- claim, even on this node, keeps the id: the max u64 matches any)
-- Returns 1 (released), 0 (another node has it), or {'late'}.
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then
  return 0
end
if ARGV[7] ~= '18446744073709551615'
    and redis.call('HGET', KEYS[1], 'gen') ~= ARGV[7] then
  return 0
end
redis.call('HDEL', KEYS[1], 'node', 'held', 'session')
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', ARGV[5] .. ARGV[2] .. ':ids', ARGV[4])
redis.call('PUBLISH', ARGV[6], 'off\n' .. ARGV[2] .. '\n' .. ARGV[4])
return 1
