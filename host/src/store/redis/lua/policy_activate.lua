-- A cluster-wide swap's second step: the new component becomes the
-- active one and the active one the previous (what a rollback restores),
-- unless another swap or rollback came first; then every node hears it.
-- The component pushed out of the two is dropped; the new one is kept
-- for good (it was kept with an expiry, in case the swap failed).
-- KEYS[1] the active component (JSON {sha256, source}), KEYS[2] the
-- previous one, KEYS[3] the new component's bytes
-- ARGV[1] deadline ms, ARGV[2] the active SHA-256 the swap started from
-- ('' for none), ARGV[3] the new component (JSON), ARGV[4] its SHA-256,
-- ARGV[5] the key prefix of components' bytes, ARGV[6] the policy
-- channel, ARGV[7] the announcement
-- Returns {1} (done), {0} (another came first), or {'late'}.
local active = redis.call('GET', KEYS[1])
local current = ''
if active then current = cjson.decode(active).sha256 end
if current ~= ARGV[2] then
  return {0}
end
if current ~= ARGV[4] then
  local previous = redis.call('GET', KEYS[2])
  if previous then
    local p = cjson.decode(previous).sha256
    if p ~= current and p ~= ARGV[4] then
      redis.call('DEL', ARGV[5] .. p)
    end
  end
  if active then
    redis.call('SET', KEYS[2], active)
  end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PERSIST', KEYS[3])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1}
