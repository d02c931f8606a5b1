/**
 * Reads the state a guard name shares in Redis, for `guarded-llm status`: the shared rates
 * (Bottleneck's keys), a provider pause, each replica's breaker, and the budgets (Redis ledger).
 */
import type { Redis } from 'ioredis';
import { windowText } from '../internal/windows';
import { shownKey } from '../money/budget-lines';
import { REPLICA_LIVE_MS } from './replica-presence';

export interface SharedRateState {
  dimension: string;
  /** The refill rate Redis holds, per minute. */
  perMinute: number;
  /** What is left in the bucket now (negative: in debt after a heavy call). */
  available: number;
  capacity: number;
  /** Replicas that used this limiter in the last 10 s. */
  activeReplicas: number;
}

export interface SharedBudgetState {
  key: string;
  window: string;
  /** 'tokens' for a token quota: then spentUsd and reservedUsd count tokens. */
  unit: 'usd' | 'tokens';
  spentUsd: number;
  reservedUsd: number;
  liveReservations: number;
}

export interface SharedState {
  name: string;
  pausedUntil?: string;
  rates: SharedRateState[];
  /** Each replica's breaker; `live`: heard from within REPLICA_LIVE_MS (else stopped, or cut off from Redis). */
  breakers: Array<{ replica: string; state: string; since: string; seen: string; live: boolean }>;
  budgets: SharedBudgetState[];
}

const DIMENSIONS = ['requests', 'tokens', 'inputTokens', 'outputTokens'];

export async function readSharedState(client: Redis, name: string): Promise<SharedState> {
  const prefix = `guarded-llm:{${name}}:`;
  const [seconds, micros] = (await client.time()) as [string | number, string | number];
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const state: SharedState = { name, rates: [], breakers: [], budgets: [] };

  const pause = Number(await client.get(`${prefix}pause`));
  if (pause > now) state.pausedUntil = new Date(pause).toISOString();

  for (const dimension of DIMENSIONS) {
    const id = `${prefix}${dimension}`;
    const s = await client.hgetall(`b_${id}_settings`);
    if (!s.reservoirIncreaseInterval) continue;
    const interval = Number(s.reservoirIncreaseInterval);
    const amount = Number(s.reservoirIncreaseAmount);
    const capacity = Number(s.reservoirIncreaseMaximum);
    let available = Number(s.reservoir);
    // What Bottleneck's next tick will have added since its last one.
    const intervals = Math.floor((now - Number(s.lastReservoirIncrease)) / interval);
    if (intervals > 0 && available < capacity) available = Math.min(capacity, available + intervals * amount);
    const activeReplicas = await client.zcount(`b_${id}_client_last_seen`, now - 10_000, '+inf');
    state.rates.push({ dimension, perMinute: (amount / interval) * 60_000, available, capacity, activeReplicas });
  }

  for (const [replica, json] of Object.entries(await client.hgetall(`${prefix}breakers`))) {
    try {
      const { state: breaker, at, seen = at } = JSON.parse(json) as { state: string; at: number; seen?: number };
      state.breakers.push({ replica, state: breaker, since: new Date(at).toISOString(), seen: new Date(seen).toISOString(), live: seen >= now - REPLICA_LIVE_MS });
    } catch {
      // not ours
    }
  }

  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}budget:*`, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      const fields = await client.hgetall(key);
      // A calendar window is stored as 'c:<period start>:<period end>' (see money/redis-scripts.ts).
      const calendar = fields.w?.startsWith('c:') ? fields.w.slice(2).split(':').map(Number) : undefined;
      const window = calendar ? 0 : Number(fields.w ?? 0);
      const slice = window > 0 ? Math.max(1, Math.floor(window / 60)) : 0;
      const counts = (start: number) => (calendar ? start >= calendar[0]! && now < calendar[1]! : window <= 0 || start + slice + window > now);
      let spentUsd = 0;
      let reservedUsd = 0;
      let liveReservations = 0;
      for (const [field, value] of Object.entries(fields)) {
        if (field.startsWith('s:')) {
          if (counts(Number(field.slice(2)))) spentUsd += Number(value);
        } else if (field.startsWith('r:')) {
          const [usd, expires] = value.split(' ').map(Number);
          if (expires! > now) {
            reservedUsd += usd!;
            liveReservations++;
          }
        }
      }
      const { key: shown, unit } = shownKey(key.slice(`${prefix}budget:`.length));
      state.budgets.push({ key: shown, unit, window: calendar ? `calendar period to ${new Date(calendar[1]!).toISOString()}` : windowText(window > 0 ? window : Infinity), spentUsd, reservedUsd, liveReservations });
    }
  } while (cursor !== '0');
  state.budgets.sort((a, b) => b.spentUsd + b.reservedUsd - (a.spentUsd + a.reservedUsd));
  return state;
}
