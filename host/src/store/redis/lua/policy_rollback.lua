-- A cluster-wide rollback: the previous component becomes the active one
-- and the active one the previous, if the active one is still the one
-- the caller rolls back from (two nodes rolling back the same bad
-- version at once roll back once); then every node hears it.
-- KEYS[1] the active component (JSON {sha256, source}), KEYS[2] the
-- previous one
-- ARGV[1] deadline ms, ARGV[2] the SHA-256 rolled back from, ARGV[3] the
-- policy channel, ARGV[4] why, ARGV[5] '1' if automatic, ARGV[6] the node
-- Returns {'ok', previous} (restored), {'moved'}, {'none'}, or {'late'}.
local active = redis.call('GET', KEYS[1])
if not active or cjson.decode(active).sha256 ~= ARGV[2] then
  return {'moved'}
end
local previous = redis.call('GET', KEYS[2])
if not previous then
  return {'none'}
end
redis.call('SET', KEYS[1], previous)
redis.call('SET', KEYS[2], active)
redis.call('PUBLISH', ARGV[3], cjson.encode({
  op = 'rollback',
  from = cjson.decode(active),
  to = cjson.decode(previous),
  reason = ARGV[4],
  automatic = ARGV[5] == '1',
  node = ARGV[6],
}))
return {'ok', previous}
