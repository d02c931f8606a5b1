/**
 * The Redis ledger's Lua scripts. One hash per budget (or quota) key holds its charges by time
 * slice (`s:<slice start ms>` → amount), its live reservations (`r:<id>` → "amount expiresAtMs")
 * and its window (`w`; for readers such as the CLI). A window argument is a sliding window's
 * length in ms ('0' = none), or a calendar period 'c:<start ms>:<end ms>' (computed by the caller
 * in UTC: charges before the start no longer count, the key expires after the end).
 * Time is Redis's own (TIME), so machines with skewed clocks agree on windows and TTLs.
 * Floats leave a script as strings: Redis would truncate a Lua number to an integer.
 */

/** Shared prelude: `now`, and `state(key, window)` → spent, reserved, next release (expired entries dropped). */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- A window argument: 's', length ms (0 = none) | 'c', period start, period end.
local function window_of(w)
  if string.sub(w, 1, 2) == 'c:' then
    local sep = string.find(w, ':', 3, true)
    return 'c', tonumber(string.sub(w, 3, sep - 1)), tonumber(string.sub(w, sep + 1))
  end
  return 's', tonumber(w), 0
end
local function slice_of(length)
  if length <= 0 then return 0 end
  return math.max(1, math.floor(length / 60))
end
-- Where a charge made at \`at\` is kept: its slice, or the calendar period's start.
local function slice_start(w, at)
  local kind, a = window_of(w)
  if kind == 'c' then return a end
  local slice = slice_of(a)
  if slice == 0 then return 0 end
  return math.floor(at / slice) * slice
end
local function state(key, w)
  local kind, a, b = window_of(w)
  local all = redis.call('HGETALL', key)
  local spent, reserved, oldest = 0, 0, nil
  local slice = 0
  if kind == 's' then slice = slice_of(a) end
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    local prefix = string.sub(f, 1, 2)
    if prefix == 's:' then
      local start = tonumber(string.sub(f, 3))
      local gone = (kind == 'c' and start < a) or (kind == 's' and a > 0 and start + slice + a <= now)
      if gone then
        redis.call('HDEL', key, f)
      else
        spent = spent + tonumber(v)
        if oldest == nil or start < oldest then oldest = start end
      end
    elseif prefix == 'r:' then
      local sep = string.find(v, ' ', 1, true)
      local amount, expires = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
      if expires <= now then redis.call('HDEL', key, f) else reserved = reserved + amount end
    end
  end
  local release = -1
  if oldest ~= nil then
    if kind == 'c' then release = b elseif a > 0 then release = oldest + slice + a end
  end
  return spent, reserved, release
end
-- Idle keys leave Redis on their own; an expiry is only ever extended (other calls' holds live in the key).
local function keep(key, w, ttl)
  local kind, a, b = window_of(w)
  local want
  if kind == 'c' then want = b - now + ttl elseif a > 0 then want = a + slice_of(a) + ttl else return end
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
 * Reserve (or extend) on every line, or on none: KEYS = budget hashes; ARGV = id, ttl ms,
 * extend (0/1), then limit, window, hard (0/1), amount per key.
 * Returns {1, states…} or {0, refused index (1-based), states up to it…}.
 */
export const RESERVE = `${PRELUDE}
local id, ttl, extend = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local states, current = {}, {}
for i, key in ipairs(KEYS) do
  local base = 4 * i
  local limit, window, hard, amount = tonumber(ARGV[base]), ARGV[base + 1], ARGV[base + 2] == '1', tonumber(ARGV[base + 3])
  local spent, reserved, release = state(key, window)
  out(states, spent, reserved, release)
  if hard and spent + reserved + amount > limit * (1 + 1e-12) then
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
  local base = 4 * i
  local window, amount = ARGV[base + 1], tonumber(ARGV[base + 3])
  redis.call('HSET', key, 'r:' .. id, string.format('%.17g', current[i] + amount) .. ' ' .. string.format('%.0f', now + ttl), 'w', window)
  keep(key, window, ttl)
  local spent, reserved, release = state(key, window)
  out(result, spent, reserved, release)
end
return result
`;

/**
 * Settle a reservation to its actual cost, exactly once: KEYS = budget hashes, then the
 * settled-marker key; ARGV = id, marker ttl ms, the call's bit in the marker (a bitmap), or -1
 * for a marker key of its own, then window and amount per budget. A settle that arrives twice (a
 * command resent after a reconnect, a replay after an outage) charges nothing the second time.
 * Returns the states after.
 */
export const SETTLE = `${PRELUDE}
local id, marker_ttl, bit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marker = KEYS[#KEYS]
local first
if bit >= 0 then
  first = redis.call('SETBIT', marker, bit, 1) == 0
  redis.call('PEXPIRE', marker, marker_ttl)
else
  first = redis.call('SET', marker, '1', 'NX', 'PX', marker_ttl)
end
local result = {}
for i = 1, #KEYS - 1 do
  local key, window, amount = KEYS[i], ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  redis.call('HDEL', key, 'r:' .. id)
  if first and tonumber(amount) > 0 then
    redis.call('HINCRBYFLOAT', key, 's:' .. string.format('%.0f', slice_start(window, now)), amount)
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

/** States of budget keys: KEYS = budget hashes; ARGV = window per key. */
export const STATES = `${PRELUDE}
local result = {}
for i, key in ipairs(KEYS) do
  local spent, reserved, release = state(key, ARGV[i])
  out(result, spent, reserved, release)
end
return result
`;

/**
 * Give back part of an earlier charge: KEYS = budget hashes; ARGV = charged-at ms, then window
 * (for a calendar one, the period of the charge) and amount per key. The charge's slice is found
 * by its time (the slice, or a neighbour, as Redis's clock and the caller's may differ by a hair);
 * a slice already gone gives nothing.
 */
export const REFUND = `${PRELUDE}
local at = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local window, amount = ARGV[2 * i], tonumber(ARGV[1 + 2 * i])
  local kind, a = window_of(window)
  local slice = 0
  if kind == 's' then slice = slice_of(a) end
  local start = slice_start(window, at)
  for _, s in ipairs({start, start - slice, start + slice}) do
    local field = 's:' .. string.format('%.0f', s)
    local v = tonumber(redis.call('HGET', key, field))
    if v and amount > 0 then
      redis.call('HINCRBYFLOAT', key, field, string.format('%.17g', -math.min(v, amount)))
      break
    end
    if slice == 0 then break end
  end
end
return 1
`;
