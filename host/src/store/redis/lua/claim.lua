-- Claim an id for a new connection on a node: the id's next generation,
-- and the rooms it is in (the new connection keeps them). The node that
-- had it is told on its own channel, in the same atomic step, so it
-- replaces its older connection (4001) whatever order things reach it in.
-- With a session: when the id is held on that node for a resume with
-- this session, the claim resumes it, and that node is asked to hand it
-- over to this one.
-- The id's notice log (lua/route.lua) holds what was acked to it and
-- not yet written to its socket: when the node that had it is dead (its
-- heartbeat gone) or hands it over, the claim returns the log (the new
-- connection gets what the dead node never wrote; a handover carries
-- it anyway); when a live node had it, what that connection was sent
-- goes with it (as on one node), and the log is dropped.
-- KEYS[1] the id's owner hash (gen, node, held, session), KEYS[2] the
-- id's rooms set, KEYS[3] the id's notice log
-- ARGV[1] deadline ms (Redis clock), ARGV[2] the claiming node,
-- ARGV[3] the id, ARGV[4] the node channels' prefix ('<prefix>:inbox:'),
-- ARGV[5] the presented session's hash ('' none), ARGV[6] the node keys'
-- prefix ('<prefix>:node:'; each node's ids are the set '<...><node>:ids'),
-- ARGV[7] the presence channel, ARGV[8] the new connection's session hash
-- ('' none)
-- Returns {generation, {room, ...}, resumed (0/1), dead (0/1: the node
-- that had it is dead), {entry, payload, ...} (the log, oldest first),
-- ending (0/1: it was held on a live node, which ends the hold and says
-- so with an empty handover)}, or {'late'}: nothing written.
local old = redis.call('HGET', KEYS[1], 'node')
local dead = 0
if old and old ~= ARGV[2] and redis.call('EXISTS', ARGV[6] .. old) == 0 then
  dead = 1
end
local held = redis.call('HGET', KEYS[1], 'held')
local resumed = 0
if ARGV[5] ~= '' and old and old ~= ARGV[2]
    and redis.call('HGET', KEYS[1], 'held')
    and redis.call('HGET', KEYS[1], 'session') == ARGV[5] then
  resumed = 1
end
-- Held on a live node, and not resumed: that hold ends there (its rooms
-- hear `left`) and this connection starts afresh, in no room.
local ending = 0
if resumed == 0 and held and old and old ~= ARGV[2] and dead == 0 then
  ending = 1
end
-- Greater than the last, and than Redis's clock in microseconds: a
-- Redis that lost its data (restarted without persistence) still gives
-- every claim a generation greater than any before it.
local last = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
-- (Written with '%.0f': Lua would write a number this large as 1.7e+15.)
local gen = string.format('%.0f', math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2])))
redis.call('HSET', KEYS[1], 'gen', gen)
redis.call('HSET', KEYS[1], 'node', ARGV[2])
redis.call('HDEL', KEYS[1], 'held', 'session')
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'session', ARGV[8])
end
redis.call('PERSIST', KEYS[1])
redis.call('SADD', ARGV[6] .. ARGV[2] .. ':ids', ARGV[3])
if old and old ~= ARGV[2] then
  redis.call('SREM', ARGV[6] .. old .. ':ids', ARGV[3])
end
redis.call('PUBLISH', ARGV[7], 'on\n' .. ARGV[2] .. '\n' .. ARGV[3])
if old and old ~= ARGV[2] then
  local word = 'claimed\n' .. ARGV[3] .. '\n' .. gen
  if resumed == 1 then
    word = word .. '\n' .. ARGV[2]
  elseif ending == 1 then
    word = word .. '\n!' .. ARGV[2]
  end
  redis.call('PUBLISH', ARGV[4] .. old, word)
end
local logged = {}
if ending == 1 then
  -- A fresh start, as on one server: the hold's rooms hear `left` there.
  redis.call('DEL', KEYS[2])
end
if dead == 1 or resumed == 1 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
    logged[#logged + 1] = e[1]
    logged[#logged + 1] = e[2][2]
  end
elseif old and old ~= ARGV[2] then
  redis.call('DEL', KEYS[3])
end
-- The rooms go with the id (a connection on this node whose claim lost
-- a race may never have registered to join them here).
return {tonumber(gen), redis.call('SMEMBERS', KEYS[2]), resumed, dead, logged, ending}
