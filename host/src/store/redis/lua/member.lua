-- An id joined or left a room: its rooms set follows, if the connection
-- that did it still has the id (a claim since moved it: nothing).
-- KEYS[1] the id's owner hash, KEYS[2] the id's rooms set
-- ARGV[1] deadline ms, ARGV[2] the connection's generation, ARGV[3] '+'
-- (joined) or '-' (left), ARGV[4] the room, ARGV[5] this node, ARGV[6]
-- the id, ARGV[7] the presence channel
-- Returns 1 (written), 0 (the id moved on), or {'late'}.
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then
  return 0
end
local word = 'leave'
if ARGV[3] == '+' then
  redis.call('SADD', KEYS[2], ARGV[4])
  word = 'join'
else
  redis.call('SREM', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[7], word .. '\n' .. ARGV[5] .. '\n' .. ARGV[6] .. '\n' .. ARGV[4])
return 1
