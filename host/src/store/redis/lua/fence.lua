-- The deadline fence, put before every writing script but publish.lua
-- (scripts.rs): run after ARGV[1], its deadline in Redis's clock (ms; a
-- paused Redis running what its client gave up on), the script writes
-- nothing and answers {'late'}. `t` is Redis's TIME, for the script.
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then
  return {'late'}
end
