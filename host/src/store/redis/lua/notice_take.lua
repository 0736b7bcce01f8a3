-- Hand over everything kept for an id: removed as it is read, so two
-- takers never get the same notice. Expired ones are left out.
-- KEYS[1] the box, KEYS[2] its counts, KEYS[3] the store's bytes,
-- KEYS[4] the boxes by expiry (the senders' zsets are not declared:
-- standalone Redis only)
-- ARGV[1] deadline ms, ARGV[2] the id, ARGV[3] now ms, ARGV[4] max age
-- ms, ARGV[5] '<prefix>:{id:'
-- Returns {dropped, entry, ...} (entries 'from\nat_ms\nuid\nframe',
-- oldest first), or {'late'}.
local now, age = tonumber(ARGV[3]), tonumber(ARGV[4])
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local dropped = tonumber(redis.call('HGET', KEYS[2], ':dropped') or '0')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[2])
local out = {dropped}
local freed = 0
for _, e in ipairs(entries) do
  local f, at, uid = string.match(e, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n')
  redis.call('ZREM', ARGV[5] .. f .. '}:out', ARGV[2] .. '\n' .. uid)
  freed = freed + #e - #f - #at - #uid - 3 + 64
  if tonumber(at) + age > now then
    table.insert(out, e)
  end
end
if freed > 0 then
  redis.call('DECRBY', KEYS[3], freed)
end
return out
