-- An id's connection ended abruptly and is held for a resume: a notice
-- sent to it meanwhile is acked `held`, and a connection on another node
-- that presents its session resumes it there (`claim.lua`). A claim (a
-- resume, or a new connection) clears both.
-- KEYS[1] the id's owner hash
-- ARGV[1] deadline ms, ARGV[2] the held connection's generation,
-- ARGV[3] the hash of the session that may resume it
-- Returns 1 (written), 0 (the id moved on), or {'late'}.
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'held', '1', 'session', ARGV[3])
return 1
