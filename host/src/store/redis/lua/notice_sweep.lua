-- Drop expired notices of the boxes whose oldest notice has expired (at
-- most ARGV[5] boxes a call), so the byte count and the senders' quotas
-- come back for ids that never return.
-- KEYS[1] the boxes by expiry, KEYS[2] the store's bytes (the boxes and
-- the senders' zsets are not declared: standalone Redis only)
-- ARGV[1] deadline ms, ARGV[2] now ms, ARGV[3] max age ms,
-- ARGV[4] '<prefix>:{id:', ARGV[5] boxes at most
-- Returns how many boxes were swept, or {'late'}.
local now, age, p = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, to in ipairs(due) do
  local box, counts = p .. to .. '}:n', p .. to .. '}:nc'
  while true do
    local head = redis.call('LINDEX', box, 0)
    if not head then break end
    local f, at, uid = string.match(head, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n')
    if tonumber(at) + age > now then
      redis.call('ZADD', KEYS[1], tonumber(at) + age, to)
      break
    end
    redis.call('LPOP', box)
    if redis.call('HINCRBY', counts, f, -1) <= 0 then
      redis.call('HDEL', counts, f)
    end
    redis.call('ZREM', p .. f .. '}:out', to .. '\n' .. uid)
    redis.call('DECRBY', KEYS[2], #head - #f - #at - #uid - 3 + 64)
  end
  if redis.call('LLEN', box) == 0 then
    -- The count of those dropped goes with the last of them.
    redis.call('DEL', box, counts)
    redis.call('ZREM', KEYS[1], to)
  end
end
return #due
