/**
 * Per-scope rates (`limits.perScope`) shared by every process of one guard name: one tiny Redis
 * key per user (or tenant, session, workflow) that is over its rate, holding the bucket's
 * "theoretical arrival time" (GCRA). A key exists only while its bucket is not full, so idle keys
 * expire on their own, and a full bucket costs no memory at all.
 */
import type { Redis } from 'ioredis';
import { redisScript, runScript } from '../internal/redis-script';

/**
 * Takes `weight` units from a bucket of `capacity` refilled at `perMs` units per ms. The bucket is
 * empty at TAT (a time): it holds (capacity - (TAT - now) · perMs) now. A call that fits goes at
 * once; one that does not is granted its place in line (TAT moves on) and told how long to wait
 * for it — unless that wait is over `maxWait`, then nothing is taken. A call heavier than the
 * bucket goes when it is full and leaves it in debt. Time is Redis's own, so replicas agree.
 * Returns {1, wait} or {0, wait}; floats leave as strings (Redis would truncate a Lua number).
 */
const TAKE = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local per_ms, capacity, weight, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + math.min(weight, capacity) / per_ms - capacity / per_ms - now
if wait > max_wait then return {0, tostring(wait)} end
local next_tat = tat + weight / per_ms
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
if wait < 0 then wait = 0 end
return {1, tostring(wait)}
`);

/** Gives back `weight` units (a call that never went); a bucket that is full again has no key. */
const REFUND = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local next_tat = tat - tonumber(ARGV[2]) / tonumber(ARGV[1])
if next_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
end
return 1
`);

export type ScopeTake = { ok: true; waitMs: number } | { ok: false; retryAfterMs: number };

export interface ScopeRate {
  /** e.g. 'user:alice'. */
  key: string;
  /** Units per ms. */
  perMs: number;
  capacity: number;
}

export class SharedScopeRates {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
  ) {}

  private redisKey(key: string): string {
    return `${this.prefix}rate:${key}`;
  }

  /** Takes `weight` of the fleet's bucket for this scope key, or says how long until it could. */
  async take(rate: ScopeRate, weight: number, maxWaitMs: number): Promise<ScopeTake> {
    const reply = (await runScript(this.client, TAKE, [this.redisKey(rate.key)], [String(rate.perMs), String(rate.capacity), String(weight), String(maxWaitMs)])) as [number, string];
    const wait = Math.max(0, Number(reply[1]));
    return Number(reply[0]) === 1 ? { ok: true, waitMs: wait } : { ok: false, retryAfterMs: Math.ceil(wait) };
  }

  /** Best effort: Redis may be gone, and then the unit is simply spent. */
  refund(rate: ScopeRate, weight: number): void {
    runScript(this.client, REFUND, [this.redisKey(rate.key)], [String(rate.perMs), String(weight)]).catch(() => {});
  }
}
