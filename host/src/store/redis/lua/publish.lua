-- Keep a room message and publish it: the offset and the epoch are
-- assigned atomically with the append (Centrifugo's broker is the model).
-- KEYS[1] meta hash (epoch, top), KEYS[2] stream
-- ARGV[1] frame, ARGV[2] maxlen, ARGV[3] ttl ms, ARGV[4] deadline ms (Redis
-- clock), ARGV[5] epoch to start with if the room has none, ARGV[6] channel,
-- ARGV[7] the publishing node's id, ARGV[8] the id the frame skips ('' none)
-- Returns {epoch, offset}, or {'late'} when run after its deadline (a
-- paused Redis running what its client gave up on): nothing is written.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[4]) then
  return {'late'}
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- No meta: the room's history is new or was lost (expired, or Redis lost
  -- its data). A new epoch tells clients holding old offsets so.
  epoch = ARGV[5]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], top .. '-0', 'd', ARGV[1], 'x', ARGV[8])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[6],
  ARGV[7] .. '\n' .. epoch .. '\n' .. top .. '\n' .. ARGV[8] .. '\n' .. ARGV[1])
return {epoch, top}
