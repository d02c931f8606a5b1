/**
 * The Redis ledger's Lua scripts. One hash per budget key holds its charges by time slice
 * (`s:<slice start ms>` → usd), its live reservations (`r:<id>` → "usd expiresAtMs") and its
 * window (`w` → ms, 0 = none; for readers such as the CLI).
 * Time is Redis's own (TIME), so machines with skewed clocks agree on windows and TTLs.
 * Floats leave a script as strings: Redis would truncate a Lua number to an integer.
 */

/** Shared prelude: `now`, and `state(key, windowMs)` → spent, reserved, next release (expired entries dropped). */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function slice_of(window)
  if window <= 0 then return 0 end
  return math.max(1, math.floor(window / 60))
end
local function state(key, window)
  local all = redis.call('HGETALL', key)
  local spent, reserved, oldest = 0, 0, nil
  local slice = slice_of(window)
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    local kind = string.sub(f, 1, 2)
    if kind == 's:' then
      local start = tonumber(string.sub(f, 3))
      if window > 0 and start + slice + window <= now then
        redis.call('HDEL', key, f)
      else
        spent = spent + tonumber(v)
        if oldest == nil or start < oldest then oldest = start end
      end
    elseif kind == 'r:' then
      local sep = string.find(v, ' ', 1, true)
      local amount, expires = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
      if expires <= now then redis.call('HDEL', key, f) else reserved = reserved + amount end
    end
  end
  local release = -1
  if oldest ~= nil and window > 0 then release = oldest + slice + window end
  return spent, reserved, release
end
-- Idle keys leave Redis on their own; an expiry is only ever extended (other calls' holds live in the key).
local function keep(key, window, ttl)
  if window <= 0 then return end
  local want = window + slice_of(window) + ttl
  local current = redis.call('PTTL', key)
  if current == -1 or current < want then redis.call('PEXPIRE', key, want) end
end
local function out(list, spent, reserved, release)
  table.insert(list, string.format('%.17g', spent))
  table.insert(list, string.format('%.17g', reserved))
  table.insert(list, string.format('%.0f', release))
end
`;

/**
 * Reserve (or extend) `usd` on every budget, or on none: KEYS = budget hashes; ARGV = id, usd,
 * ttl ms, extend (0/1), then limit, window ms (0 = none), hard (0/1) per key.
 * Returns {1, states…} or {0, refused index (1-based), states up to it…}.
 */
export const RESERVE = `${PRELUDE}
local id, usd, ttl, extend = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local states, current = {}, {}
for i, key in ipairs(KEYS) do
  local limit, window, hard = tonumber(ARGV[2 + i * 3]), tonumber(ARGV[3 + i * 3]), ARGV[4 + i * 3] == '1'
  local spent, reserved, release = state(key, window)
  out(states, spent, reserved, release)
  if hard and spent + reserved + usd > limit * (1 + 1e-12) then
    local refused = {0, i}
    for _, s in ipairs(states) do table.insert(refused, s) end
    return refused
  end
  local held = 0
  if extend then
    local v = redis.call('HGET', key, 'r:' .. id)
    if v then held = tonumber(string.sub(v, 1, string.find(v, ' ', 1, true) - 1)) end
  end
  current[i] = held
end
local result = {1}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[3 + i * 3])
  redis.call('HSET', key, 'r:' .. id, string.format('%.17g', current[i] + usd) .. ' ' .. string.format('%.0f', now + ttl), 'w', window)
  keep(key, window, ttl)
  local spent, reserved, release = state(key, window)
  out(result, spent, reserved, release)
end
return result
`;

/**
 * Settle a reservation to its actual cost, exactly once: KEYS = budget hashes, then the
 * settled-marker key; ARGV = id, usd, marker ttl ms, then window ms per budget. A settle that
 * arrives twice (a command resent after a reconnect, a replay after an outage) charges nothing
 * the second time. Returns the states after.
 */
export const SETTLE = `${PRELUDE}
local id, usd, marker_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marker = KEYS[#KEYS]
local first = redis.call('SET', marker, '1', 'NX', 'PX', marker_ttl)
local result = {}
for i = 1, #KEYS - 1 do
  local key, window = KEYS[i], tonumber(ARGV[3 + i])
  redis.call('HDEL', key, 'r:' .. id)
  if first and usd > 0 then
    local slice = slice_of(window)
    local start = 0
    if slice > 0 then start = math.floor(now / slice) * slice end
    redis.call('HINCRBYFLOAT', key, 's:' .. string.format('%.0f', start), ARGV[2])
    redis.call('HSET', key, 'w', window)
    keep(key, window, 0)
  end
  local spent, reserved, release = state(key, window)
  out(result, spent, reserved, release)
end
return result
`;

/** Drop a reservation: KEYS = budget hashes; ARGV = id. */
export const RELEASE = `
for _, key in ipairs(KEYS) do redis.call('HDEL', key, 'r:' .. ARGV[1]) end
return 1
`;

/** Keep a live reservation from expiring: KEYS = budget hashes; ARGV = id, ttl ms. */
export const TOUCH = `${PRELUDE}
local id, ttl = ARGV[1], tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local v = redis.call('HGET', key, 'r:' .. id)
  if v then
    redis.call('HSET', key, 'r:' .. id, string.sub(v, 1, string.find(v, ' ', 1, true) - 1) .. ' ' .. string.format('%.0f', now + ttl))
    if redis.call('PTTL', key) > 0 and redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end
return 1
`;

/** States of budget keys: KEYS = budget hashes; ARGV = window ms per key. */
export const STATES = `${PRELUDE}
local result = {}
for i, key in ipairs(KEYS) do
  local spent, reserved, release = state(key, tonumber(ARGV[i]))
  out(result, spent, reserved, release)
end
return result
`;

/**
 * Give back part of an earlier charge: KEYS = budget hashes; ARGV = usd, charged-at ms, then
 * window ms per key. The charge's slice is found by its time (the slice, or a neighbour, as
 * Redis's clock and the caller's may differ by a hair); a slice already gone gives nothing.
 */
export const REFUND = `${PRELUDE}
local usd, at = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 + i])
  local slice = slice_of(window)
  local start = 0
  if slice > 0 then start = math.floor(at / slice) * slice end
  for _, s in ipairs({start, start - slice, start + slice}) do
    local field = 's:' .. string.format('%.0f', s)
    local v = tonumber(redis.call('HGET', key, field))
    if v then
      redis.call('HINCRBYFLOAT', key, field, string.format('%.17g', -math.min(v, usd)))
      break
    end
    if slice == 0 then break end
  end
end
return 1
`;
