-- Keep a notice for an id no node has, within the sender's quotas, the
-- box's size and the store's byte cap, as the memory store does: a full
-- box drops the oldest notice of the sender with the most in it.
-- KEYS[1] the box (list `{id:TO}:n`, entries 'from\nat_ms\nuid\nframe'),
-- KEYS[2] its counts (hash `{id:TO}:nc`: sender -> notices, ':dropped'),
-- KEYS[3] the sender's outstanding notices (zset `{id:FROM}:out`, members
-- 'to\nuid' scored by expiry), KEYS[4] the store's bytes, KEYS[5] the
-- boxes by their oldest notice's expiry (zset), KEYS[6] the uid counter.
-- (KEYS[3..6] are other tags; a dropped notice's sender's zset is not
-- declared: standalone Redis only, docs/CLUSTER.md.)
-- ARGV[1] deadline ms, ARGV[2] from, ARGV[3] to, ARGV[4] frame,
-- ARGV[5] now ms, ARGV[6] max age ms, ARGV[7] per id, ARGV[8] per sender,
-- ARGV[9] per pair, ARGV[10] max bytes, ARGV[11] '<prefix>:{id:'
-- Returns {'ok'}, {'sender', n}, {'pair', n}, {'full'} or {'late'}.
local from, to, frame = ARGV[2], ARGV[3], ARGV[4]
local now, age = tonumber(ARGV[5]), tonumber(ARGV[6])
local OVERHEAD = 64

local function parse(e)
  local f, at, uid = string.match(e, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n')
  return f, tonumber(at), uid, #e - #f - #at - #uid - 3
end

-- Take one entry out of the box, counting it out everywhere.
local function remove(e)
  local f, at, uid, size = parse(e)
  redis.call('LREM', KEYS[1], 1, e)
  if redis.call('HINCRBY', KEYS[2], f, -1) <= 0 then
    redis.call('HDEL', KEYS[2], f)
  end
  redis.call('ZREM', ARGV[11] .. f .. '}:out', to .. '\n' .. uid)
  redis.call('DECRBY', KEYS[4], size + OVERHEAD)
  return size + OVERHEAD
end

-- What expired in the box goes first (oldest at the head).
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local _, at = parse(head)
  if at + age > now then break end
  remove(head)
end

redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local outstanding = redis.call('ZCARD', KEYS[3])
if outstanding >= tonumber(ARGV[8]) then
  return {'sender', tonumber(ARGV[8])}
end
local pair = tonumber(redis.call('HGET', KEYS[2], from) or '0')
if pair >= tonumber(ARGV[9]) then
  return {'pair', tonumber(ARGV[9])}
end

local cost = #frame + OVERHEAD
local victim, freed = nil, 0
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[7]) then
  local counts = redis.call('HGETALL', KEYS[2])
  local most, who = 0, nil
  for i = 1, #counts, 2 do
    local n = tonumber(counts[i + 1])
    if counts[i] ~= ':dropped' and n > most then
      most, who = n, counts[i]
    end
  end
  for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local f, _, _, size = parse(e)
    if f == who then
      victim, freed = e, size + OVERHEAD
      break
    end
  end
end
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
if bytes - freed + cost > tonumber(ARGV[10]) then
  return {'full'}
end
if victim then
  remove(victim)
  redis.call('HINCRBY', KEYS[2], ':dropped', 1)
end
local uid = redis.call('INCR', KEYS[6])
redis.call('RPUSH', KEYS[1], from .. '\n' .. now .. '\n' .. uid .. '\n' .. frame)
redis.call('HINCRBY', KEYS[2], from, 1)
redis.call('ZADD', KEYS[3], now + age, to .. '\n' .. uid)
redis.call('INCRBY', KEYS[4], cost)
local _, oldest = parse(redis.call('LINDEX', KEYS[1], 0))
redis.call('ZADD', KEYS[5], oldest + age, to)
return {'ok'}
