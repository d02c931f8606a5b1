/**
 * Distributed mode: (a) goodput of three replica processes against one provider limit — sharing
 * it through Redis, against the two things teams do without it (give every replica the
 * provider's limit; split it statically); (b) ledger reserve+settle operations per second.
 */
import Redis from 'ioredis';
import { startFakeProvider } from '../lib/testing';
import { MemoryLedger, type BudgetLine, type Ledger } from '../lib/money/ledger';
import { RedisLedger } from '../lib/money/redis-ledger';
import { endClients } from '../lib/internal/end-client';
import { SharedScopeRates } from '../lib/distributed/shared-scope-rates';
import { startRedis } from '../__tests__/support/redis';
import { runReplicas, type ReplicaSpec } from '../__tests__/support/replicas';
import { fmt, table } from './support';

const RATE = 30; // the provider's limit, requests per second
const LOADS = [100, 50, 30]; // uneven: one busy replica, two quieter ones

async function goodput(redisUrl: string, log: (line: string) => void): Promise<string> {
  const total = LOADS.reduce((a, b) => a + b, 0);
  // The whole load at the provider's rate, after its one-second burst.
  const idealMs = ((total - RATE) / RATE) * 1000;
  const variants: Array<{ label: string; spec: (calls: number, i: number) => Partial<ReplicaSpec> }> = [
    { label: 'each replica set to the provider’s limit (no sharing)', spec: () => ({ options: { limits: { requestsPerMinute: RATE * 60, maxConcurrent: 20 }, cost: { budgets: [] } } }) },
    { label: 'limit split statically (⅓ each)', spec: () => ({ options: { limits: { requestsPerMinute: (RATE * 60) / 3, maxConcurrent: 20 }, cost: { budgets: [] } } }) },
    {
      label: '**shared through Redis**',
      spec: () => ({ redisUrl, options: { name: `bench-${Date.now()}`, limits: { requestsPerMinute: RATE * 60, maxConcurrent: 20 }, cost: { budgets: [] } } }),
    },
  ];
  const rows: Array<Array<string | number>> = [];
  for (const variant of variants) {
    const fake = await startFakeProvider({ limits: { requestsPerMinute: RATE * 60 }, outputTokens: 16 });
    const name = `bench-${Date.now()}`;
    const specs = LOADS.map((calls, i) => {
      const extra = variant.spec(calls, i);
      return {
        baseURL: fake.anthropicBaseURL,
        apiKey: 'sk-ant-bench',
        calls,
        concurrency: 20,
        model: 'claude-haiku-4-5',
        maxTokens: 32,
        ...extra,
        options: { ...extra.options, ...(extra.redisUrl ? { name } : {}) },
      } as ReplicaSpec;
    });
    const results = await runReplicas(specs.length, specs);
    const wallMs = Math.max(...results.map((r) => r.elapsedMs));
    const ok = results.reduce((n, r) => n + r.ok, 0);
    const failed = total - ok;
    const limited = fake.stats.byStatus[429] ?? 0;
    rows.push([variant.label, fmt(wallMs / idealMs), limited, failed]);
    log(`  ${variant.label}: ${fmt(wallMs / 1000)} s (${fmt(wallMs / idealMs)}× ideal), ${limited} × 429, ${failed} failed`);
    await fake.close();
  }
  return (
    `3 replica processes (${LOADS.join(' / ')} calls, 20 at a time each) against a provider limited to ${RATE} requests/s ` +
    `(1 s burst); time of the slowest replica over the ideal ${fmt(idealMs / 1000)} s.\n\n` +
    table(['replicas', '× ideal time', 'provider 429s', 'failed calls'], rows)
  );
}

async function ledgerOps(redisUrl: string, log: (line: string) => void): Promise<string> {
  const lines: BudgetLine[] = [
    { key: 'global', limit: 1e9, windowMs: 3_600_000, hard: true },
    { key: 'user:alice', limit: 1e9, windowMs: 86_400_000, hard: true },
  ];
  const client = new Redis(redisUrl);
  const memory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
  const measure = async (ledger: Ledger, label: string, n: number, concurrency: number) => {
    let next = 0;
    // The scripts' first load and the budgets' keys are once per fleet, not per call.
    for (let i = 0; i < 50; i++) {
      await ledger.reserve(`w${i}`, lines, 0.01);
      await ledger.settle(`w${i}`, 0.004);
    }
    const before = ledger instanceof RedisLedger ? await memory() : undefined;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const id = `c${next++}`; // as the guard names its calls
          await ledger.reserve(id, lines, 0.01);
          await ledger.settle(id, 0.004);
        }
      }),
    );
    const perSecond = n / ((performance.now() - started) / 1000);
    // What settled calls leave in Redis: their settled markers (kept 6 h, so that a resent settle charges once).
    const perCall = before === undefined ? undefined : ((await memory()) - before) / n;
    const left = perCall === undefined ? '—' : perCall < 1 ? '< 1 B' : `${fmt(perCall, 1)} B`;
    log(`  ${label}: ${fmt(perSecond, 0)} reserve+settle/s, Redis memory left per call ${left}`);
    return [label, concurrency, fmt(perSecond, 0), left];
  };
  const prefix = `bench:{${Date.now()}}:`;
  const rows = [
    await measure(new MemoryLedger(), 'in memory', 200_000, 1),
    await measure(new RedisLedger(client, prefix), 'Redis (Lua), one at a time', 3000, 1),
    await measure(new RedisLedger(client, `${prefix}b:`), 'Redis (Lua), 50 concurrent', 20_000, 50),
  ];
  await endClients([client], { quit: true });
  return `Reserve then settle on two budgets (global + user), local redis-server over loopback; Redis memory left per settled call (used_memory after the run, less before, over the calls: what a fleet keeps for 6 h at its call rate).\n\n${table(['ledger', 'concurrency', 'reserve+settle per second', 'Redis memory left per call'], rows)}`;
}

/**
 * Per-scope rates shared by the fleet: one Redis key per scope key whose bucket is not full.
 * 100,000 users make one call each; Redis memory and key count are read after, and again once
 * the buckets are full again (the keys expire on their own).
 */
async function scopeKeys(redisUrl: string, log: (line: string) => void): Promise<string> {
  const client = new Redis(redisUrl);
  const prefix = `bench:{scopes-${Date.now()}}:`;
  const rates = new SharedScopeRates(client, prefix);
  const users = 100_000;
  const rows: Array<Array<string | number>> = [];
  for (const perMinute of [60, 6000]) {
    await client.flushall();
    const memory = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    const before = await memory();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < users) await rates.take({ key: `user:u${next++}`, perMs: perMinute / 60_000, capacity: perMinute }, 1, 120_000);
      }),
    );
    const perSecond = users / ((performance.now() - started) / 1000);
    const keys = await client.dbsize();
    const added = (await memory()) - before;
    // A bucket of `perMinute` is full again 60/perMinute s after its one call (+1 s of margin).
    const fullAfterMs = 60_000 / perMinute + 1000;
    await new Promise((r) => setTimeout(r, fullAfterMs + 500));
    const keysAfter = await client.dbsize();
    rows.push([`${perMinute}/min per user`, users.toLocaleString('en'), fmt(perSecond, 0), keys.toLocaleString('en'), `${fmt(added / 2 ** 20, 1)} MiB`, `${fmt(added / Math.max(1, keys), 0)} B`, `${fmt(fullAfterMs / 1000, 1)} s`, keysAfter]);
    log(`  ${perMinute}/min: ${keys} keys, ${fmt(added / 2 ** 20, 1)} MiB; ${keysAfter} keys ${fmt(fullAfterMs / 1000, 1)} s later`);
  }
  await endClients([client], { quit: true });
  return (
    'Per-scope rates shared through Redis (one GCRA key per scope key while its bucket is not full), 100,000 users one call each, 100 at a time.\n\n' +
    table(['per-user limit', 'users', 'takes per second', 'Redis keys after', 'Redis memory added', 'per key', 'bucket full again after', 'keys then'], rows)
  );
}

export async function runDistributed(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const redis = await startRedis();
  try {
    const a = await goodput(redis.url, log);
    const b = await ledgerOps(redis.url, log);
    const c = await scopeKeys(redis.url, log);
    return { markdown: `${a}\n\n${b}\n\n${c}` };
  } finally {
    await redis.stop();
  }
}
