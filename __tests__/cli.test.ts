import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { calcPrice } from '@pydantic/genai-prices';
import { createGuardedClient } from '../lib';
import { main } from '../lib/cli';
import Redis from 'ioredis';
import type { SharedState } from '../lib/distributed/inspect';
import { SharedStore } from '../lib/distributed/shared-store';
import { GuardEmitter } from '../lib/events';
import { consoleLogger } from '../lib/logger';
import { endClients } from '../lib/internal/end-client';
import { CLAUDE, anthropicFor, hello, useFakeProvider } from './support/clients';
import { describeWithRedis, useRedisServer } from './support/redis';

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(args, (line) => lines.push(line));
  return { code, out: lines.join('\n') };
}

describe('guarded-llm price', () => {
  it('prints the resolved price and what the call costs, equal to genai-prices', async () => {
    const { code, out } = await run(['price', 'claude-sonnet-4-6', '--input', '1200', '--output', '300', '--json']);
    expect(code).toBe(0);
    const p = JSON.parse(out) as { costUsd: number; inputPerMTokUsd: number; outputPerMTokUsd: number; provider: string };
    expect(p.provider).toBe('anthropic');
    expect(p.costUsd).toBeCloseTo(calcPrice({ input_tokens: 1200, output_tokens: 300 }, 'claude-sonnet-4-6', { providerId: 'anthropic' })!.total_price, 12);
    expect(p.inputPerMTokUsd).toBeCloseTo(3, 9);
    expect(p.outputPerMTokUsd).toBeCloseTo(15, 9);
  });

  it('applies the long-context tier, cache reads and the batch discount', async () => {
    const tier = JSON.parse((await run(['price', 'claude-sonnet-4-5', '--input', '250000', '--output', '1000', '--json'])).out) as { costUsd: number; inputPerMTokUsd: number };
    expect(tier.costUsd).toBeCloseTo(calcPrice({ input_tokens: 250_000, output_tokens: 1000 }, 'claude-sonnet-4-5', { providerId: 'anthropic' })!.total_price, 12);
    expect(tier.inputPerMTokUsd).toBeCloseTo(6, 9);
    const cached = JSON.parse((await run(['price', 'gpt-4o', '--input', '1000', '--cache-read', '4000', '--output', '10', '--batch', '--json'])).out) as { costUsd: number };
    const full = calcPrice({ input_tokens: 5000, cache_read_tokens: 4000, output_tokens: 10 }, 'gpt-4o', { providerId: 'openai' })!.total_price;
    expect(cached.costUsd).toBeCloseTo(full * 0.5, 12);
  });

  it('says what is wrong, with the usage, and exits 2', () => {
    const cli = join(__dirname, '..', 'lib', 'cli.ts');
    const bad = spawnSync(process.execPath, ['--import', 'tsx', cli, 'price', 'claude-sonnet-4-6', '--input', 'lots'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--input must be a whole number of tokens, got "lots"');
    expect(bad.stderr).toContain('Usage:');
    const unknown = spawnSync(process.execPath, ['--import', 'tsx', cli, 'price', 'no-such-model-x'], { encoding: 'utf8' });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('No price is known for "no-such-model-x"');
  });
});

describeWithRedis('guarded-llm status', () => {
  const fake = useFakeProvider();
  const server = useRedisServer();

  it("prints the shared limiter, each replica's breaker and the budgets of a guard name", async () => {
    const name = `cli-${Date.now()}`;
    const client = createGuardedClient(anthropicFor(fake()), {
      name,
      redis: server().url,
      limits: { requestsPerMinute: 600 },
      cost: { budgets: [{ scope: 'global', limitUsd: 5, window: '1h' }, { scope: 'user', limitUsd: 1, window: '1d' }] },
    });
    let charged = 0;
    client.guard.on('cost', (e) => (charged += e.usd));
    for (let i = 0; i < 8; i++) await client.guard.withScope({ user: 'alice' }).messages.create({ model: CLAUDE, max_tokens: 16, messages: hello });
    for (let i = 0; i < 50 && client.guard.status().budgets.find((b) => b.key === 'global')?.spentUsd !== charged; i++) await new Promise((r) => setTimeout(r, 20));

    const { code, out } = await run(['status', '--redis', server().url, '--name', name, '--json']);
    expect(code).toBe(0);
    const state = JSON.parse(out) as SharedState;
    expect(state.rates).toEqual([expect.objectContaining({ dimension: 'requests', activeReplicas: 1 })]);
    expect(state.rates[0]!.perMinute).toBeGreaterThan(600 * 0.95);
    expect(state.rates[0]!.perMinute).toBeLessThanOrEqual(600);
    expect(state.breakers).toEqual([expect.objectContaining({ state: 'closed' })]);
    expect(state.budgets.map((b) => [b.key, b.window])).toEqual(expect.arrayContaining([['global', '1h'], ['user:alice', '1d']]));
    for (const b of state.budgets) {
      expect(b.spentUsd).toBeCloseTo(charged, 12);
      expect(b.reservedUsd).toBe(0);
    }
    const text = (await run(['status', '--redis', server().url, '--name', name])).out;
    expect(text).toContain(`guard "${name}"`);
    expect(text).toContain('budget user:alice');
    await client.guard.close();
  });

  it('lists the replicas running now: one that closes leaves the list; one that stopped without closing shows as not heard from, and is dropped after 10 min', async () => {
    const name = `fleet-${Date.now()}`;
    const url = server().url;
    const make = () => createGuardedClient(anthropicFor(fake()), { name, redis: url, logLevel: 'silent' });
    const replicas = async () => (JSON.parse((await run(['status', '--redis', url, '--name', name, '--json'])).out) as SharedState).breakers;
    const until = async (check: (list: SharedState['breakers']) => boolean) => {
      for (let i = 0; i < 100 && !check(await replicas()); i++) await new Promise((r) => setTimeout(r, 20));
      return replicas();
    };
    const [a, b] = [make(), make()];
    await Promise.all([a, b].map((c) => c.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello })));
    expect(await until((list) => list.length === 2)).toEqual([expect.objectContaining({ state: 'closed', live: true }), expect.objectContaining({ state: 'closed', live: true })]);
    await a.guard.close();
    expect(await replicas()).toHaveLength(1);

    // What two SIGKILLed replicas leave in Redis: one last heard from 5 min ago, one 20 min ago.
    const redis = new Redis(url);
    const now = Number((await redis.time())[0]) * 1000;
    const key = `guarded-llm:{${name}}:breakers`;
    await redis.hset(key, 'crashed-5min', JSON.stringify({ state: 'open', at: now - 400_000, seen: now - 300_000 }), 'crashed-20min', JSON.stringify({ state: 'closed', at: now - 1_300_000, seen: now - 1_200_000 }));
    // A replica that starts drops the entries not heard from for 10 min with its first write.
    const c = make();
    await c.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello });
    const list = await until((l) => l.length === 3 && !l.some((r) => r.replica === 'crashed-20min'));
    expect(list.map((r) => [r.replica === 'crashed-5min' ? r.replica : 'running', r.live]).sort()).toEqual([['crashed-5min', false], ['running', true], ['running', true]]);
    const text = (await run(['status', '--redis', url, '--name', name])).out;
    expect(text).toMatch(/replica crashed-5min: not heard from since .* \(stopped, or cut off from Redis\); its breaker was open/);
    expect(text.match(/breaker of replica/g)).toHaveLength(2);
    await Promise.all([b.guard.close(), c.guard.close()]);
    expect((await replicas()).map((r) => r.replica)).toEqual(['crashed-5min']);
    await endClients([redis], { quit: true });
  });

  it("a live replica's entry is rewritten while it runs, with Redis's clock, so it never looks stopped", async () => {
    const name = `fresh-${Date.now()}`;
    const store = new SharedStore({ redis: server().url, name, emitter: new GuardEmitter(() => {}), logger: () => consoleLogger('silent'), connectTimeoutMs: 2000, presenceMs: 100 });
    await store.whenUp(2000);
    store.publishBreaker('closed');
    const seen = async () => JSON.parse((await store.client.hget(`guarded-llm:{${name}}:breakers`, store.instanceId)) ?? '{}') as { seen?: number; at?: number };
    for (let i = 0; i < 50 && (await seen()).seen === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    const first = await seen();
    await new Promise((r) => setTimeout(r, 500)); // four or five rewrites, two are enough on a loaded machine
    const later = await seen();
    expect(later.seen! - first.seen!).toBeGreaterThanOrEqual(200);
    expect(later.at).toBe(first.at); // the breaker's "since" stays put
    await store.close();
    const check = new Redis(server().url);
    expect(await check.exists(`guarded-llm:{${name}}:breakers`)).toBe(0); // closed: off the list
    await endClients([check], { quit: true });
  });
});
