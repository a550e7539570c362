"""The engine's Lua scripts. Each runs atomically inside Redis and touches keys of one hash slot,
so "next seq + append + publish" can never interleave with another node's publish, and a task
is taken off the queue by exactly one node.

Numbers: Lua 5.1 numbers are doubles, exact up to 2^53, so times travel in milliseconds.
"""

from __future__ import annotations

# A channel's meta hash holds, beside `epoch` and `top`, when each piece of housekeeping is next
# due, so that a publish in the steady state runs none of them (in Redis 7 each `redis.call`
# costs a few microseconds, and these were six of the publish script's fourteen):
# - `trim_due`: when the log's oldest entry passes the history TTL (its time + ttl). Entries
#   that MAXLEN drops only make the real oldest younger, so this is never late.
# - `expire_due`: when the channel's keys need their TTLs pushed out again. They are set to
#   twice the TTL (history for the log, the dedup window for ids and idx) and refreshed once
#   the smaller of the two has passed, so each key always outlives its content; an idle
#   channel's keys go within twice their TTL.
# - `sweep_due`: when expired dedup ids are next swept from ids and idx. A lingering expired id
#   is no duplicate (its expiry is checked when it is seen again) and the dedup size bounds
#   them; a sweep that found a full page is due again at once.

# Drops history older than the TTL from the head of a channel's log, a bounded amount per call
# (reads skip nothing: `history` trims before it reads), once `trim_due` has come. Expects
# `meta`, `log`, `now`, `ttl` and `trim_due` (meta's field, or nil).
_TRIM_BY_AGE = """
if not trim_due or tonumber(trim_due) <= now then
  local horizon = now - ttl
  local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #oldest > 0 and tonumber(oldest[1][2][2]) < horizon then
    for _ = 1, 16 do
      local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
      if #head == 0 then break end
      local keep = nil
      for _, entry in ipairs(head) do
        if tonumber(entry[2][2]) >= horizon then keep = entry[1]; break end
      end
      if keep then
        if keep ~= head[1][1] then redis.call('XTRIM', log, 'MINID', keep) end
        break
      end
      redis.call('XTRIM', log, 'MINID',
        (tonumber(string.match(head[#head][1], '^%d+')) + 1) .. '-0')
    end
    oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  end
  trim_due = now + ttl
  if #oldest > 0 then trim_due = tonumber(oldest[1][2][2]) + ttl end
  redis.call('HSET', meta, 'trim_due', trim_due)
end
"""

# KEYS: meta, log, ids, idx (see Keys.channel). ARGV: history_size, history_ttl_ms,
# dedup_window_ms, dedup_size, the fan-out pub/sub channel, this node's id and the Redis edge's
# mirror channel ('' for none), the same from call to call (the client encodes them once per
# channel); then now_ms, an epoch for a channel Redis does not know, and the envelopes in one
# argument (one argument, not three per envelope, keeps the client's command encoding cheap):
# per envelope the lengths of its id, sha256, encoding, and JSON before and after the
# position, as five big-endian uint32, then those five parts.
# Returns the epoch, then seq, duplicate (0/1) and sha256 per envelope. What it accepted goes
# out as one pub/sub message (see fanout.decode_publications): "epoch node created_ms\n", then
# per envelope its seq and length (big-endian uint64 and uint32) and the envelope's bytes; and,
# with a mirror channel, as one message each there: the JSON with its position.
PUBLISH = (
    """
-- One command over many arguments, a bounded number at a time (Lua's unpack has a limit).
local function in_chunks(command, key, args)
  for i = 1, #args, 1000 do
    redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
local meta, log, ids, idx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, window, dedup_size = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local fan, node, mirror, now = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local state = redis.call('HMGET', meta, 'epoch', 'top', 'trim_due', 'expire_due', 'sweep_due')
local epoch, top, trim_due, expire_due, sweep_due = state[1], 0, state[3], state[4], state[5]
if epoch then
  top = tonumber(state[2])
else
  -- A new channel, or one Redis lost: a new epoch tells subscribers their positions are void.
  epoch = ARGV[9]
  redis.call('DEL', log, ids, idx)
end
"""
    + _TRIM_BY_AGE
    + """
local due = {}
if not sweep_due or tonumber(sweep_due) <= now then
  local expired = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. now, 'LIMIT', 0, 256)
  if #expired > 0 then
    redis.call('HDEL', ids, unpack(expired))
    redis.call('ZREM', idx, unpack(expired))
    expire_due = nil  -- emptied keys are made again below without a TTL: set it
  end
  sweep_due = now + math.ceil(window / 8)
  if #expired == 256 then sweep_due = now end
  due[#due + 1], due[#due + 2] = 'sweep_due', sweep_due
end
local mirrored = {}
local out = {epoch}
local fanned = {epoch .. ' ' .. node .. ' ' .. ARGV[8] .. '\\n'}
-- Numbers become strings through sprintf, in `..` and in redis.call's arguments alike: each
-- string an envelope needs is made once (seq) or comes as given (now, size).
local expiry = tostring(now + window)
local added = false
local expiries, expiry_args = {}, {}  -- ids accepted here; ZADD's score and member pairs
local blob, at = ARGV[10], 1
while at <= #blob do
  local a, b, c, d, e, start = struct.unpack('>I4I4I4I4I4', blob, at)
  local id_end = start - 1 + a
  local sha_end = id_end + b
  local raw_end = sha_end + c
  local head_end = raw_end + d
  local tail_end = head_end + e
  local id = string.sub(blob, start, id_end)
  local sha = string.sub(blob, id_end + 1, sha_end)
  local raw = string.sub(blob, sha_end + 1, raw_end)
  at = tail_end + 1
  -- The common case, a new id, costs one HSETNX; a known one is a duplicate while its expiry
  -- has not passed (one accepted earlier in this call has its expiry added below).
  local hit = nil
  local seq = tostring(top + 1)
  if redis.call('HSETNX', ids, id, seq .. ':' .. sha) == 0 then
    hit = redis.call('HGET', ids, id)
    if not expiries[id] and tonumber(redis.call('ZSCORE', idx, id) or 0) < now then
      hit = nil
      redis.call('HSET', ids, id, seq .. ':' .. sha)
    end
  end
  if hit then
    local sep = string.find(hit, ':', 1, true)
    out[#out + 1] = tonumber(string.sub(hit, 1, sep - 1))
    out[#out + 1] = 1
    out[#out + 1] = string.sub(hit, sep + 1)
  else
    top = top + 1
    added = true
    redis.call('XADD', log, 'MAXLEN', ARGV[1], seq .. '-0', 't', ARGV[8], 'n', node, 'e', raw)
    expiries[id] = true
    -- The score is the expiry plus the seq's last ten bits as a fraction (exact in a double
    -- until 2^43 ms, the year 2248): ids accepted in the same millisecond then leave the
    -- dedup window oldest first, not in the order of their names.
    expiry_args[#expiry_args + 1] = expiry .. string.format('.%010d', (top % 1024) * 9765625)
    expiry_args[#expiry_args + 1] = id
    fanned[#fanned + 1] = struct.pack('>I8I4', top, c)
    fanned[#fanned + 1] = raw
    if mirror ~= '' then
      mirrored[#mirrored + 1] = string.sub(blob, raw_end + 1, head_end) .. ',"position":{"seq":"'
        .. seq .. '","epoch":"' .. epoch .. '"}' .. string.sub(blob, head_end + 1, tail_end)
    end
    out[#out + 1] = top
    out[#out + 1] = 0
    out[#out + 1] = sha
  end
end
if added then
  in_chunks('ZADD', idx, expiry_args)
  if #fanned > 1 then redis.call('PUBLISH', fan, table.concat(fanned)) end
  for _, json in ipairs(mirrored) do redis.call('PUBLISH', mirror, json) end
  local excess = redis.call('ZCARD', idx) - dedup_size
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', idx, excess)
    local gone = {}
    for j = 1, #popped, 2 do gone[#gone + 1] = popped[j] end
    in_chunks('HDEL', ids, gone)
  end
  -- After the writes: a key that does not exist yet takes no TTL.
  if not expire_due or tonumber(expire_due) <= now then
    redis.call('PEXPIRE', log, 2 * ttl)
    redis.call('PEXPIRE', ids, 2 * window)
    redis.call('PEXPIRE', idx, 2 * window)
    due[#due + 1], due[#due + 2] = 'expire_due', now + math.min(ttl, window)
  end
end
redis.call('HSET', meta, 'epoch', epoch, 'top', top, unpack(due))
return out
"""
)

# KEYS: meta, log. ARGV: now_ms, history_ttl_ms, first seq wanted ('' for the latest), limit.
# Returns {} for a channel Redis does not know, else epoch, top, the oldest seq kept (top + 1
# when none), the start used, and the entries.
HISTORY = (
    """
local meta, log = KEYS[1], KEYS[2]
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', meta, 'epoch', 'top', 'trim_due')
local epoch, trim_due = state[1], state[3]
if not epoch then return {} end
local top = tonumber(state[2])
"""
    + _TRIM_BY_AGE
    + """
local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
local first = top + 1
if #head > 0 then first = tonumber(string.match(head[1][1], '^%d+')) end
local limit = tonumber(ARGV[4])
local start
if ARGV[3] == '' then start = math.max(first, top - limit + 1)
else start = math.max(tonumber(ARGV[3]), first) end
local entries = {}
if start <= top and limit > 0 then
  entries = redis.call('XRANGE', log, start .. '-0', '+', 'COUNT', limit)
end
return {epoch, top, first, start, entries}
"""
)

# KEYS: a hash. ARGV: field. HGET and HDEL in one step.
HASH_POP = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then redis.call('HDEL', KEYS[1], ARGV[1]) end
return value
"""

# KEYS: idempotency, key_of. ARGV: key, task id. Returns the task id the key is bound to.
CLAIM_KEY = """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder then return holder end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return ARGV[2]
"""

# KEYS: idempotency, key_of. ARGV: key, task id.
RELEASE_KEY = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 0
"""

# KEYS: queue, queued, order. ARGV: task id, the member's sort prefix. Queued once.
ENQUEUE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local member = ARGV[2] .. string.format('%020d', redis.call('INCR', KEYS[3])) .. ':' .. ARGV[1]
redis.call('HSET', KEYS[2], ARGV[1], member)
redis.call('ZADD', KEYS[1], 0, member)
return 1
"""

# KEYS: queue, queued. ARGV: task id. 1 for the one caller that took the task off the queue.
DEQUEUE = """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], member)
return 1
"""

# KEYS: tasks, events, event_numbers, queue, queued, idempotency, key_of, deadlines.
# ARGV: task id.
DELETE_TASK = """
local id = ARGV[1]
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[8], id)
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[3], id)
local member = redis.call('HGET', KEYS[5], id)
if member then
  redis.call('HDEL', KEYS[5], id)
  redis.call('ZREM', KEYS[4], member)
end
local key = redis.call('HGET', KEYS[7], id)
if key then
  if redis.call('HGET', KEYS[6], key) == id then redis.call('HDEL', KEYS[6], key) end
  redis.call('HDEL', KEYS[7], id)
end
return 0
"""

# KEYS: event_numbers, events. ARGV: task id, events kept, encoded event (without its number).
# Returns the event's number.
APPEND_EVENT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], n .. '-0', 'e', ARGV[3])
return n
"""

# KEYS: deadlines. ARGV: now_ms. The tasks whose deadline has come, taken off the set at once,
# so each goes to one node.
DUE_DEADLINES = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 256)
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""
