-- Hand a payload to the node whose connection has an id (a notice, a
-- close), deciding in one step whether the id is on another node, and
-- whether that node hears it (PUBLISH counts the listeners: none means
-- its subscriber is gone, as a dead node's is).
-- KEYS[1] the id's owner hash, KEYS[2] the boot key, KEYS[3] the
-- restoring key (set for a while by the nodes that found Redis lost its
-- data, while they write again who they have)
-- ARGV[1] deadline ms, ARGV[2] this node, ARGV[3] the node channels'
-- prefix ('<prefix>:inbox:'), ARGV[4] the payload, ARGV[5] the node keys'
-- prefix ('<prefix>:node:', whose '<node>' key is its heartbeat)
-- Returns 'sent', 'held' (its connection there is held for a resume),
-- 'off' (no other node has it: nothing sent), 'away' (the node that has
-- it lives but does not hear now: its subscriber is reconnecting;
-- 'unknown': Redis lost its data and the nodes have not all said again
-- who they have, so no node having the id proves nothing), or {'late'}.
local node = redis.call('HGET', KEYS[1], 'node')
if not node then
  if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then
    return 'unknown'
  end
  return 'off'
end
if node == ARGV[2] then
  return 'off'
end
if redis.call('PUBLISH', ARGV[3] .. node, ARGV[4]) == 0 then
  if redis.call('EXISTS', ARGV[5] .. node) == 1 then
    return 'away'
  end
  return 'off'
end
if redis.call('HGET', KEYS[1], 'held') then
  return 'held'
end
return 'sent'
