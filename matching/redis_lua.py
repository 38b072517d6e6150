"""The Lua scripts of :mod:`matching.redis`: every pairing decision is one of these.

Each script runs atomically inside Redis, so two nodes racing can never give a
seeker two listeners or push a listener over its capacity. Every script starts
with the same prelude: it refreshes the calling node's presence key and reports
whether that key had lapsed (then the node must register again what it holds).

Common ARGV: 1 node id, 2 now (wall seconds as text, with 7 decimals: 18
characters until the year 2286), 3 TTL of queue structures, 4 TTL of the
presence key; the script's own arguments follow.
Optional strings arrive as ``""`` for None and ``"v:<value>"`` otherwise.

Numbers cost here: Lua turns a number given to ``redis.call`` into text with
``snprintf("%.17g")``, ``string.format`` goes through printf, and ``tonumber``
through strtod, ~600 to ~2,700 instructions each (callgrind of redis-server),
where a pairing's scripts had ~65 of them. So the scripts keep what they pass
to Redis as text where they can: TTLs as they arrive, small counts through
``small``, wall times in their fixed-width text.

The scripts name keys they build themselves instead of passing them in KEYS,
which a single Redis (not Redis Cluster) allows; see the data layout in
:mod:`matching.redis`.
"""

from __future__ import annotations

_PRELUDE = r"""
local P = 'hearth:'  -- the names below are written out: Lua does not fold '..' of constants
local WAITING = 'hearth:waiting'
local AVAILABLE = 'hearth:available'
local LISTENERS = 'hearth:listeners'
local FREE = 'hearth:free'
local NODES = 'hearth:nodes'
local ROOMS = 'hearth:rooms'
local TIMES = 'hearth:match_times'
local ARRIVALS = 'hearth:arrivals'
local HEADS = 'hearth:heads'
local LORDER = 'hearth:listener_order'
local CHANNEL = 'hearth:queue'
local ME = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local TTL_S = ARGV[3]
local STRIDE = 17592186044416      -- 2^44: one risk level's band of scores
local ORDINARY = 8796093022208     -- 2^43: ordinary arrivals start here, heads below
local LEVEL = {crisis = 0, elevated = 1, normal = 2}
local RANK = {normal = 0, elevated = 1, crisis = 2}

local lapsed = not redis.call('SET', P .. 'node:' .. ME, NOW_S, 'EX', ARGV[4], 'GET')
local changed = false

local function int(x) return string.format('%d', x) end  -- integral values only
local DIGITS = '0123456789'
local function small(n)  -- int(n), without printf for 0 to 9 (rooms, mostly)
  if n >= 0 and n < 10 then return string.sub(DIGITS, n + 1, n + 1) end
  return int(n)
end
-- Open rooms are scored in whole seconds: a small sorted set keeps an integral score
-- as an integer, where a fraction is kept as text that every insert parses again for
-- each member it passes (strtod was a tenth of Redis's time a pairing; perf).
local NOW_WHOLE = string.match(NOW_S, '^%d+')
local function touch(key) redis.call('EXPIRE', key, TTL_S) end

-- NODES: every node whose presence key was (re)created, so that a change is published
-- only when a live node other than the caller can hear it. The heartbeat prunes it.
if lapsed then
  redis.call('SADD', NODES, ME)
  touch(NODES)
end
local function opt(s) if s == '' then return false end return string.sub(s, 3) end

local alive_cache = {[ME] = true}  -- the SET above: the caller's node is alive
local function alive(node)
  local a = alive_cache[node]
  if a == nil then
    a = redis.call('EXISTS', P .. 'node:' .. node) == 1
    alive_cache[node] = a
  end
  return a
end

local function tkey(s) return P .. 'ticket:' .. s end
local function lkey(s) return P .. 'listener:' .. s end
local function rkey(s) return P .. 'lrooms:' .. s end

local function load_ticket(s)
  local f = redis.call('HMGET', tkey(s), 'node', 'risk', 'topic', 'language', 'note', 'since',
                       'arrival')
  if not f[1] then return nil end
  return {seat = s, node = f[1], risk = f[2], topic = f[3], language = f[4], note = f[5],
          since = f[6], arrival = tonumber(f[7])}
end

local function drop_ticket(s)
  redis.call('ZREM', WAITING, s)
  redis.call('DEL', tkey(s))
  changed = true
end

local function load_listener(s)
  local f = redis.call('HMGET', lkey(s), 'node', 'status', 'topics', 'languages', 'capacity',
                       'rooms', 'free_since', 'held_until', 'order', 'fkey')
  if not f[1] then return nil end
  return {seat = s, node = f[1], status = f[2], topics = cjson.decode(f[3]),
          languages = cjson.decode(f[4]), capacity = tonumber(f[5]), rooms = tonumber(f[6]),
          free_since = f[7], held_until = tonumber(f[8]), order = f[9], fkey = f[10]}
end

-- FREE holds every listener that is available with room to spare (held or not), as
-- 'rooms|free_since|order|seat' in fixed width, all scores 0: its lexical order is the
-- order of fairness (fewest rooms, then free the longest, then first on shift), so a
-- request reads only up to the first free fitting entry. The listener's hash keeps its
-- current entry in 'fkey'. 7 decimals keep distinct wall times distinct (a double near
-- 1.7e9 resolves ~2.4e-7 s). free_since and order are kept in the hash as the fixed-width
-- text that goes here (a record written otherwise is formatted here).
-- ... are more of the hash's fields, as name, value: they go in the same HSET as a new fkey.
local function fixed(s, width, fmt)
  if #s == width then return s end
  return string.format(fmt, tonumber(s))
end
local function reindex(l, ...)
  local want = false
  if l.status == 'available' and l.rooms < l.capacity then
    local r = small(l.rooms)
    want = string.rep('0', 6 - #r) .. r .. '|' .. fixed(l.free_since, 18, '%018.7f') .. '|'
           .. fixed(l.order, 12, '%012d') .. '|' .. l.seat
  end
  local fields = {...}
  if l.fkey ~= want then
    if l.fkey then redis.call('ZREM', FREE, l.fkey) end
    if want then
      redis.call('ZADD', FREE, '0', want)
      touch(FREE)
      fields[#fields + 1] = 'fkey'
      fields[#fields + 1] = want
    else
      redis.call('HDEL', lkey(l.seat), 'fkey')
    end
    l.fkey = want
  end
  if #fields > 0 then redis.call('HSET', lkey(l.seat), unpack(fields)) end
end

local function drop_listener(s)
  local fk = redis.call('HGET', lkey(s), 'fkey')
  if fk then redis.call('ZREM', FREE, fk) end
  redis.call('DEL', lkey(s), rkey(s))
  redis.call('SREM', AVAILABLE, s)
  redis.call('SREM', LISTENERS, s)
  changed = true
end

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function fits(t, l)
  return (#l.topics == 0 or not t.topic or contains(l.topics, t.topic))
     and (#l.languages == 0 or not t.language or contains(l.languages, t.language))
end

local function is_free(l)
  return l.status == 'available' and l.rooms < l.capacity and l.held_until <= NOW
end

local function score(risk, arrival) return LEVEL[risk] * STRIDE + arrival end

local room_prefix, room_count = '', 0
local function next_room()
  room_count = room_count + 1
  return string.sub(redis.sha1hex(room_prefix .. ':' .. room_count), 1, 24)
end

local function pair(t, l)
  local room = next_room()
  l.rooms = l.rooms + 1
  reindex(l, 'rooms', small(l.rooms))
  redis.call('SADD', rkey(l.seat), room)
  touch(rkey(l.seat))
  redis.call('SET', P .. 'room:' .. room, l.seat, 'EX', TTL_S)
  redis.call('ZADD', ROOMS, NOW_WHOLE, room)
  touch(ROOMS)
  redis.call('LPUSH', TIMES, NOW_S)
  redis.call('LTRIM', TIMES, '0', '19')
  touch(TIMES)
  changed = true
  return {room, t.seat, t.node, t.risk, t.topic, t.language, t.note, t.since, l.seat, l.node}
end

-- A listener that became free takes the first fitting seekers in queue order.
local function fill(l)
  local out = {}
  local start = 0
  while is_free(l) do
    local batch = redis.call('ZRANGE', WAITING, start, start + 99)
    if #batch == 0 then break end
    local removed = 0
    for _, s in ipairs(batch) do
      if not is_free(l) then break end
      local t = load_ticket(s)
      if not t then
        redis.call('ZREM', WAITING, s)
        removed = removed + 1
      elseif not alive(t.node) then
        drop_ticket(s)
        removed = removed + 1
      elseif fits(t, l) then
        drop_ticket(s)
        removed = removed + 1
        out[#out + 1] = pair(t, l)
      end
    end
    start = start + #batch - removed
  end
  return out
end

local function others_listen()
  for _, node in ipairs(redis.call('SMEMBERS', NODES)) do
    if node ~= ME and alive(node) then return true end
  end
  return false
end

-- Tell the other nodes, if something changed and one is there to hear it.
local function announce(did_change)
  if did_change and others_listen() then redis.call('PUBLISH', CHANNEL, ME) end
end

-- The reply is one JSON text: one bulk string is far cheaper for the client to read
-- than nested arrays (an empty table encodes as {}; false stays false).
local function finish(info, matches)
  announce(changed)
  return cjson.encode({lapsed, changed, info, matches})  -- booleans: no number to format
end

local function on_shift()
  local n = 0
  for _, s in ipairs(redis.call('SMEMBERS', AVAILABLE)) do
    local node = redis.call('HGET', lkey(s), 'node')
    if node and alive(node) then n = n + 1 end
  end
  return n
end
"""

# The two scripts of a pairing are functions of their own arguments (A), returning the
# script's info and matches: each runs as a script of its own (REQUEST, ROOM_ENDED) and
# as a step of BATCH, which runs several calls in one script.

# A: 1 seat, 2 node, 3 risk, 4 topic, 5 language, 6 note, 7 since, 8 head, 9 room prefix
_REQUEST = r"""
local function request(A)
  local seat = A[1]
  room_prefix, room_count = A[9], 0
  -- A seat asking again leaves its old place (a place without a ticket is stale anyway:
  -- skipped by fill and swept by the heartbeat).
  if redis.call('DEL', tkey(seat)) == 1 then redis.call('ZREM', WAITING, seat) end
  local t = {seat = seat, node = A[2], risk = A[3], topic = opt(A[4]),
             language = opt(A[5]), note = opt(A[6]), since = A[7]}
  local best = nil
  local start, page = 0, 4  -- the first entry fits most often: a short first page, then 32
  while not best do  -- FREE is in order of fairness: the first free fitting one is the fairest
    local batch
    if start == 0 and page == 4 then batch = redis.call('ZRANGE', FREE, '0', '3')
    else batch = redis.call('ZRANGE', FREE, start, start + page - 1) end
    page = 32
    if #batch == 0 then break end
    local removed = 0
    for _, m in ipairs(batch) do
      local s = string.match(m, '^[^|]*|[^|]*|[^|]*|(.*)$')
      local l = load_listener(s)
      if not l or l.fkey ~= m then  -- its hash expired or moved on: a stale entry
        redis.call('ZREM', FREE, m)
        if not l then redis.call('SREM', AVAILABLE, s) end
        removed = removed + 1
      elseif not alive(l.node) then
        drop_listener(s)
        removed = removed + 1
      elseif is_free(l) and fits(t, l) then
        best = l
        break
      end
    end
    start = start + #batch - removed
  end
  changed = true
  if best then return {}, {pair(t, best)} end
  local arrival
  if A[8] == '1' then
    arrival = redis.call('INCR', HEADS)
    touch(HEADS)
  else
    arrival = ORDINARY + redis.call('INCR', ARRIVALS)
    touch(ARRIVALS)
  end
  local key = tkey(seat)
  redis.call('HSET', key, 'node', t.node, 'risk', t.risk, 'since', t.since,
             'arrival', int(arrival))
  if t.topic then redis.call('HSET', key, 'topic', t.topic) end
  if t.language then redis.call('HSET', key, 'language', t.language) end
  if t.note then redis.call('HSET', key, 'note', t.note) end
  touch(key)
  redis.call('ZADD', WAITING, int(score(t.risk, arrival)), seat)
  touch(WAITING)
  return {}, {}
end
"""
REQUEST = _PRELUDE + _REQUEST + "return finish(request({unpack(ARGV, 5)}))\n"

# ARGV 5 seat
CANCEL = _PRELUDE + r"""
local removed = redis.call('ZREM', WAITING, ARGV[5])
redis.call('DEL', tkey(ARGV[5]))
changed = removed == 1
return finish({removed}, {})
"""

# ARGV 5 seat, 6 risk
RAISE_RISK = _PRELUDE + r"""
local t = load_ticket(ARGV[5])
if t and RANK[ARGV[6]] > RANK[t.risk] then
  redis.call('HSET', tkey(t.seat), 'risk', ARGV[6])
  redis.call('ZADD', WAITING, int(score(ARGV[6], t.arrival)), t.seat)
  changed = true
end
return finish({}, {})
"""

# ARGV 5 seat, 6 node, 7 status, 8 topics (JSON), 9 languages (JSON), 10 capacity,
# 11 rooms and 12 held_until (used only for a listener new to the queue), 13 room prefix
SET_SHIFT = _PRELUDE + r"""
local seat = ARGV[5]
room_prefix = ARGV[13]
local key = lkey(seat)
local old = redis.call('HMGET', key, 'rooms', 'held_until', 'free_since', 'order')
local rooms, held, free_since, order = old[1], old[2], old[3], old[4]
if not order then
  rooms, held, free_since = ARGV[11], ARGV[12], NOW_S
  order = string.format('%012d', redis.call('INCR', LORDER))
  touch(LORDER)
end
redis.call('HSET', key, 'node', ARGV[6], 'status', ARGV[7], 'topics', ARGV[8],
           'languages', ARGV[9], 'capacity', ARGV[10], 'rooms', rooms, 'held_until', held,
           'free_since', free_since, 'order', order)
touch(key)
redis.call('SADD', LISTENERS, seat)
touch(LISTENERS)
if ARGV[7] == 'available' then
  redis.call('SADD', AVAILABLE, seat)
  touch(AVAILABLE)
else
  redis.call('SREM', AVAILABLE, seat)
end
changed = true
local l = load_listener(seat)
reindex(l)
local matches = fill(l)
return finish({small(l.rooms), held, free_since}, matches)
"""

# ARGV 5 seat, 6 held_until, 7 room prefix
HOLD = _PRELUDE + r"""
room_prefix = ARGV[7]
local l = load_listener(ARGV[5])
if not l then return finish({}, {}) end
if l.held_until ~= tonumber(ARGV[6]) then
  redis.call('HSET', lkey(l.seat), 'held_until', ARGV[6])
  l.held_until = tonumber(ARGV[6])
  changed = true
end
return finish({}, fill(l))
"""

# A: 1 room, 2 room prefix
_ROOM_ENDED = r"""
local function room_ended(A)
  room_prefix, room_count = A[2], 0
  local seat = redis.call('GETDEL', P .. 'room:' .. A[1])
  redis.call('ZREM', ROOMS, A[1])
  if not seat then return {}, {} end
  redis.call('SREM', rkey(seat), A[1])
  local l = load_listener(seat)
  if not l then return {}, {} end
  l.rooms = math.max(0, l.rooms - 1)
  l.free_since = NOW_S
  reindex(l, 'rooms', small(l.rooms), 'free_since', NOW_S)
  changed = true
  return {}, fill(l)
end
"""
ROOM_ENDED = _PRELUDE + _ROOM_ENDED + "return finish(room_ended({unpack(ARGV, 5)}))\n"

# ARGV 5..: calls of request and room_ended in order, each as its name, the number of its
# arguments, then them. The prelude (the presence key), the check for other nodes and
# the PUBLISH are done once for all, where each script of its own pays them (~12 us a
# call; docs/performance.md). The reply: {lapsed, {{changed, info, matches}, ...}}.
BATCH = _PRELUDE + _REQUEST + _ROOM_ENDED + r"""
local STEPS = {request = request, room_ended = room_ended}
local out, any = {}, false
local i = 5
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  changed = false
  local info, matches = STEPS[ARGV[i]]({unpack(ARGV, i + 2, i + 1 + n)})
  out[#out + 1] = {changed, info, matches}
  any = any or changed
  i = i + 2 + n
end
announce(any)
return cjson.encode({lapsed, out})
"""

# ARGV 5 seat, 6.. rooms the listener is in (after the backend lost them)
RESTORE_ROOMS = _PRELUDE + r"""
local seat = ARGV[5]
local l = load_listener(seat)
if not l then return finish({}, {}) end
for i = 6, #ARGV do
  redis.call('SADD', rkey(seat), ARGV[i])
  redis.call('SET', P .. 'room:' .. ARGV[i], seat, 'EX', TTL_S)
  redis.call('ZADD', ROOMS, NOW_WHOLE, ARGV[i])
end
touch(rkey(seat))
touch(ROOMS)
local n = redis.call('SCARD', rkey(seat))
l.rooms = n
reindex(l, 'rooms', small(n))
changed = true
return finish({}, {})
"""

# ARGV 5 seat
DROP_LISTENER = _PRELUDE + r"""
if redis.call('EXISTS', lkey(ARGV[5])) == 1 then drop_listener(ARGV[5]) end
return finish({}, {})
"""

# ARGV 5.. seats; info: waiting, on shift, recent match times (newest first), ranks
PLACES = _PRELUDE + r"""
local ranks = {}
for i = 5, #ARGV do
  local r = redis.call('ZRANK', WAITING, ARGV[i])
  ranks[#ranks + 1] = r or -1
end
return finish({redis.call('ZCARD', WAITING), on_shift(), redis.call('LRANGE', TIMES, 0, 19),
               ranks}, {})
"""

# ARGV 5.. seats; info: per seat, empty (no shift on record) or {the listener's fields,
# how many waiting seekers fit it}. The queue is read once for all of them.
LISTENERS = _PRELUDE + r"""
local found, fields, counts = {}, {}, {}
for i = 5, #ARGV do
  local f = redis.call('HMGET', lkey(ARGV[i]), 'node', 'status', 'topics', 'languages',
                       'capacity', 'rooms', 'free_since', 'held_until')
  if f[1] then
    found[#found + 1] = {i = i - 4, topics = cjson.decode(f[3]), languages = cjson.decode(f[4])}
    fields[i - 4] = f
    counts[i - 4] = 0
  end
end
if #found > 0 then
  for _, s in ipairs(redis.call('ZRANGE', WAITING, 0, -1)) do
    local f = redis.call('HMGET', tkey(s), 'node', 'topic', 'language')
    if f[1] and alive(f[1]) then
      local t = {topic = f[2], language = f[3]}
      for _, l in ipairs(found) do
        if fits(t, l) then counts[l.i] = counts[l.i] + 1 end
      end
    end
  end
end
local out = {}
for i = 1, #ARGV - 4 do
  if fields[i] then out[i] = {fields[i], counts[i]} else out[i] = {} end
end
return finish(out, {})
"""

# info: waiting, on shift, rooms, waiting crisis, elevated, normal
STATS = _PRELUDE + r"""
redis.call('ZREMRANGEBYSCORE', ROOMS, '-inf', '(' .. (NOW - tonumber(TTL_S)))
local by = {}
for level, n in pairs(LEVEL) do
  by[level] = redis.call('ZCOUNT', WAITING, n * STRIDE, '(' .. int((n + 1) * STRIDE))
end
return finish({redis.call('ZCARD', WAITING), on_shift(), redis.call('ZCARD', ROOMS),
               by.crisis, by.elevated, by.normal}, {})
"""

# ARGV 5 epoch candidate, 6 sweep lock ms, 7 number of ticket seats, then ticket seats, then
# listener seats (both empty on beats that do not refresh this node's keys).
# info: epoch, tickets gone, listeners gone
HEARTBEAT = _PRELUDE + r"""
local EPOCH = P .. 'epoch'
redis.call('SADD', NODES, ME)
for _, node in ipairs(redis.call('SMEMBERS', NODES)) do
  if not alive(node) then redis.call('SREM', NODES, node) end
end
redis.call('SET', EPOCH, ARGV[5], 'NX', 'EX', TTL_S)
touch(EPOCH)
local epoch = redis.call('GET', EPOCH)
for _, k in ipairs({WAITING, AVAILABLE, FREE, NODES, LISTENERS, ROOMS, TIMES, ARRIVALS,
                    HEADS, LORDER}) do
  touch(k)
end
local gone_tickets, gone_listeners = {}, {}
local n = tonumber(ARGV[7])
for i = 8, 7 + n do
  if redis.call('EXPIRE', tkey(ARGV[i]), TTL_S) == 0 then
    gone_tickets[#gone_tickets + 1] = ARGV[i]
  end
end
for i = 8 + n, #ARGV do
  local s = ARGV[i]
  if redis.call('EXPIRE', lkey(s), TTL_S) == 0 then
    gone_listeners[#gone_listeners + 1] = s
  else
    touch(rkey(s))
    for _, room in ipairs(redis.call('SMEMBERS', rkey(s))) do
      touch(P .. 'room:' .. room)
      redis.call('ZADD', ROOMS, 'XX', NOW_WHOLE, room)
    end
  end
end
-- One node a period sweeps out the waiters and listeners of nodes that are gone.
if redis.call('SET', P .. 'sweep', ME, 'NX', 'PX', ARGV[6]) then
  for _, s in ipairs(redis.call('ZRANGE', WAITING, 0, -1)) do
    local node = redis.call('HGET', tkey(s), 'node')
    if not node then
      redis.call('ZREM', WAITING, s)
      changed = true
    elseif not alive(node) then
      drop_ticket(s)
    end
  end
  for _, s in ipairs(redis.call('SMEMBERS', LISTENERS)) do
    local node = redis.call('HGET', lkey(s), 'node')
    if not node or not alive(node) then drop_listener(s) end
  end
end
return finish({epoch, gone_tickets, gone_listeners}, {})
"""

SCRIPTS = {
    "request": REQUEST,
    "cancel": CANCEL,
    "raise_risk": RAISE_RISK,
    "set_shift": SET_SHIFT,
    "hold": HOLD,
    "room_ended": ROOM_ENDED,
    "batch": BATCH,
    "restore_rooms": RESTORE_ROOMS,
    "drop_listener": DROP_LISTENER,
    "places": PLACES,
    "listeners": LISTENERS,
    "stats": STATS,
    "heartbeat": HEARTBEAT,
}
