-- Hand a payload to the node that has an id (a notice, a close),
-- deciding in one step whether the id is on another node, and whether
-- that node hears it (PUBLISH counts the listeners: none means its
-- subscriber is gone, as a dead node's is).
-- A notice (ARGV[6] set) that is acked is also appended to the id's
-- notice log, in the same step: kept until the node that has the id has
-- written it to the socket (that node deletes it then), so that a node
-- that dies before that does not take it along: the id's next claim,
-- elsewhere, gets it (lua/claim.lua). The node is told the entry with
-- the frame ('logged\n<entry>\n<payload>').
-- KEYS[1] the id's owner hash, KEYS[2] the boot key, KEYS[3] the
-- restoring key (set for a while by the nodes that found Redis lost its
-- data, while they write again who they have), KEYS[4] the id's notice
-- log (a stream)
-- ARGV[1] deadline ms, ARGV[2] this node, ARGV[3] the node channels'
-- prefix ('<prefix>:inbox:'), ARGV[4] the payload, ARGV[5] the node keys'
-- prefix ('<prefix>:node:', whose '<node>' key is its heartbeat),
-- ARGV[6] the log's length cap ('' not a notice: nothing logged),
-- ARGV[7] the log's lifetime ms
-- Returns {what, entry}: what is 'here' (this node has the id: logged,
-- for this node to queue), 'sent', 'held' (its connection there is held
-- for a resume, or its node died and it is held for one elsewhere),
-- 'off' (no other node has it: nothing sent), 'away' (the node that has
-- it lives but does not hear now: its subscriber is reconnecting;
-- 'unknown': Redis lost its data and the nodes have not all said again
-- who they have, so no node having the id proves nothing); entry is the
-- log's entry ('' none). Or {'late'}.
local logging = ARGV[6] ~= ''
local function log()
  local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'p', ARGV[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
  return entry
end
local node = redis.call('HGET', KEYS[1], 'node')
if not node then
  if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then
    return {'unknown', ''}
  end
  return {'off', ''}
end
if node == ARGV[2] then
  if logging then
    return {'here', log()}
  end
  return {'off', ''}
end
local held = redis.call('HGET', KEYS[1], 'held')
local entry = ''
local payload = ARGV[4]
if logging then
  entry = log()
  payload = 'logged\n' .. entry .. '\n' .. payload
end
if redis.call('PUBLISH', ARGV[3] .. node, payload) == 0 then
  local alive = redis.call('EXISTS', ARGV[5] .. node) == 1
  if logging and held and not alive then
    -- Its node died and a survivor holds the id for a resume (lua/
    -- takeover.lua): the log keeps the notice for it.
    return {'held', entry}
  end
  if logging then
    redis.call('XDEL', KEYS[4], entry)
  end
  if alive then
    return {'away', ''}
  end
  return {'off', ''}
end
if held then
  return {'held', entry}
end
return {'sent', entry}
