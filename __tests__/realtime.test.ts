import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, RateLimitExceededError, RealtimeDurationExceededError, createGuardedClient, type GuardEventMap, type GuardOptions } from '../lib';
import { startFakeProvider, startFakeRealtime, type FakeRealtime } from '../lib/testing';
import { describeWithRedis, useRedisServer } from './support/redis';
import { until } from './support/arrivals';
import { openSession, respond } from './support/realtime';

let fake: FakeRealtime;
const guards: Array<{ guard: { close(): Promise<void> } }> = [];

beforeEach(async () => {
  fake = await startFakeRealtime({ outputTokens: 100, audioPerToken: 2, tokenDelayMs: 1 });
});
afterEach(async () => {
  for (const g of guards.splice(0)) await g.guard.close();
  await fake.close();
});

function guarded(options: GuardOptions = {}) {
  const client = createGuardedClient(new OpenAI({ apiKey: 'sk-realtime-test-key', baseURL: fake.openaiBaseURL }), { logLevel: 'silent', ...options });
  guards.push(client);
  return client;
}

type Guarded = ReturnType<typeof guarded>;
const open = (client: Guarded | ReturnType<Guarded['guard']['withScope']>, model?: string, options?: { maxSessionUsd?: number; maxDurationMs?: number }) => openSession(fake, client, model, options);

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('guard.realtime(): the session cap', () => {
  test.each(['gpt-realtime', 'gpt-realtime-mini'])('%s: a session is cut at its $ cap; what it was charged equals the server’s bill', async (model) => {
    // One response: 100 text + 200 audio tokens out. The cap lets about 1.5 of them through.
    const perResponse = calcPrice({ output_tokens: 300, output_audio_tokens: 200 }, model, { providerId: 'openai' })!.total_price;
    const cap = perResponse * 1.5;
    const client = guarded({ realtime: { maxSessionUsd: cap } });
    const costs: Array<GuardEventMap['cost']> = [];
    client.guard.on('cost', (e) => costs.push(e));
    const { rt, errors, closed } = await open(client, model);
    let ends: string[] = [];
    for (let i = 0; i < 5 && !ends.includes('closed'); i++) ends = [...ends, await respond(rt)];
    await closed;
    expect(ends.at(-1)).toBe('closed');
    // The second response was cancelled mid-way (the server billed what it generated), then the socket closed.
    expect(fake.responses.map((r) => r.status)).toEqual(['completed', 'cancelled']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(BudgetExceededError);
    expect(errors[0]).toMatchObject({ stage: 'realtime', scope: 'realtime', limitUsd: cap });
    // Charged exactly what the server reported, response by response, priced by genai-prices.
    expect(costs.map((c) => c.usd)).toEqual(fake.responses.map((r) => expect.closeTo(r.usd, 12)) as unknown as number[]);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake.stats.billedUsd, 12);
    expect(costs.every((c) => c.endpoint === 'realtime' && c.estimated === false)).toBe(true);
    // Within the cap, give or take the deltas in flight when it was reached.
    expect(fake.stats.billedUsd).toBeLessThanOrEqual(cap * 1.05);
    expect(fake.stats.billedUsd).toBeGreaterThan(perResponse);
    expect(client.guard.status().realtime.open).toBe(0);
  });

  test('past the cap nothing more is sent: a response.create after the stop never reaches the server', async () => {
    const client = guarded({ realtime: { maxSessionUsd: 0.001 } });
    fake.configure({ outputTokens: 300 });
    const { rt, errors, closed } = await open(client);
    await respond(rt);
    rt.send({ type: 'response.create' });
    await closed;
    expect(fake.responses).toHaveLength(1);
    expect(fake.responses[0]!.status).toBe('cancelled');
    expect(errors).toHaveLength(1);
  });
});

describe('guard.realtime(): duration, sessions, drops, close', () => {
  test('the duration cap cancels the response in progress and closes the session with an error that says so', async () => {
    fake.configure({ outputTokens: 5000, tokenDelayMs: 2 });
    const client = guarded();
    const closes: Array<GuardEventMap['realtime:close']> = [];
    client.guard.on('realtime:close', (e) => closes.push(e));
    const started = performance.now();
    const { rt, errors, closed } = await open(client, 'gpt-realtime', { maxDurationMs: 300 });
    await respond(rt); // its response.done comes with status cancelled, then the socket closes
    await closed;
    expect(performance.now() - started).toBeLessThan(2000);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(RealtimeDurationExceededError);
    expect((errors[0] as Error).message).toMatch(/longest duration of 300 ms/);
    expect(fake.responses.map((r) => r.status)).toEqual(['cancelled']);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake.stats.billedUsd, 12);
    expect(closes).toMatchObject([{ reason: 'duration' }]);
  });

  test('maxSessions: one more session is refused with RateLimitExceededError and left untouched; a closed one frees its place', async () => {
    const client = guarded({ realtime: { maxSessions: 1 } });
    const first = await open(client);
    const second = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: fake.ca } }, client as unknown as OpenAI);
    const error = (() => {
      try {
        client.guard.realtime(second);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RateLimitExceededError);
    expect(error).toMatchObject({ reason: 'max_sessions', limit: 'realtime.maxSessions' });
    // Untouched: it opens and works unguarded, and closing it is the caller's business.
    await new Promise<void>((resolve) => second.on('session.created', () => resolve()));
    second.close();
    first.rt.close();
    await first.closed;
    const third = await open(client);
    expect(client.guard.status().realtime).toEqual({ open: 1, maxSessions: 1 });
    third.rt.close();
    await third.closed;
  });

  test('a socket dropped mid-response: the responses reported are charged exactly, the cut one from what arrived', async () => {
    const client = guarded();
    const costs: Array<GuardEventMap['cost']> = [];
    const closes: Array<GuardEventMap['realtime:close']> = [];
    client.guard.on('cost', (e) => costs.push(e));
    client.guard.on('realtime:close', (e) => closes.push(e));
    const { rt, closed } = await open(client);
    await respond(rt);
    fake.dropNextResponse(40);
    expect(await respond(rt)).toBe('closed');
    await closed;
    expect(fake.responses.map((r) => r.status)).toEqual(['completed', 'dropped']);
    expect(costs[0]!.usd).toBeCloseTo(fake.responses[0]!.usd, 12);
    // The dropped one: its output counted from the deltas (exact here), its input from the conversation known so far.
    expect(costs[1]).toMatchObject({ estimated: true, usage: { outputTokens: 40 * 3 } });
    expect(costs[1]!.usd).toBeGreaterThan(fake.responses[1]!.usd * 0.8);
    expect(costs[1]!.usd).toBeLessThan(fake.responses[1]!.usd * 1.2);
    expect(closes).toMatchObject([{ reason: 'dropped' }]);
  });

  test('guard.close() stops open sessions: the socket is closed and no handle is left', async () => {
    fake.configure({ outputTokens: 5000 });
    const client = guarded();
    const closes: Array<GuardEventMap['realtime:close']> = [];
    client.guard.on('realtime:close', (e) => closes.push(e));
    const { rt, closed } = await open(client);
    const ended = respond(rt);
    await new Promise((r) => setTimeout(r, 50));
    await client.guard.close();
    await closed;
    await ended;
    expect(closes).toMatchObject([{ reason: 'guard-closed' }]);
    expect(fake.responses.map((r) => r.status)).toEqual(['cancelled']);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake.stats.billedUsd, 12);
    await until(() => fake.stats.open === 0);
  });

  test('the API key never appears in a guard error or event', async () => {
    const client = guarded({ realtime: { maxSessionUsd: 0.001 } });
    const events: unknown[] = [];
    for (const name of ['cost', 'realtime:open', 'realtime:close'] as const) client.guard.on(name, (e) => events.push(e));
    const { rt, errors, closed } = await open(client);
    await respond(rt);
    await closed;
    expect(fake.apiKeys).toEqual(['sk-realtime-test-key']);
    expect(JSON.stringify([events, errors.map((e) => ({ ...(e as object), message: (e as Error).message }))])).not.toContain('sk-realtime-test-key');
  });

  test('bad input is refused with a clear error', () => {
    const client = guarded();
    expect(() => client.guard.realtime({} as never)).toThrow(/takes the openai SDK's realtime client/);
    expect(() => guarded({ realtime: { maxSessionUsd: -1 } })).toThrow(/realtime\.maxSessionUsd/);
  });
});

describe('guard.realtime(): scope budgets', () => {
  test("a session opened in alice's scope is charged to her budget and stopped by it; her next session sends nothing", async () => {
    const client = guarded({ cost: { budgets: [{ scope: 'user', limitUsd: 0.03, window: '1h' }] } });
    const alice = client.guard.withScope({ user: 'alice' });
    const { rt, errors, closed } = await open(alice);
    for (let i = 0; i < 5; i++) if ((await respond(rt)) === 'closed') break;
    await closed;
    expect(errors[0]).toBeInstanceOf(BudgetExceededError);
    expect(errors[0]).toMatchObject({ stage: 'realtime', scope: 'user', key: 'user:alice' });
    const row = client.guard.status().budgets.find((b) => b.key === 'user:alice')!;
    expect(row.spentUsd).toBeCloseTo(fake.stats.billedUsd, 12);
    expect(row.reservedUsd).toBeCloseTo(0, 12);
    // Her budget is cut mid-response by what the deltas say; the server billed it, and so did we.
    expect(fake.responses.at(-1)!.status).toBe('cancelled');
    const billed = fake.responses.length;
    // With room for less than a minimal response left, her next session's first response is refused before it is sent.
    client.guard.updateConfig({ cost: { minOutputTokens: 1000 } });
    const next = await open(alice);
    const outcome = await respond(next.rt);
    await next.closed;
    expect(outcome).toBe('closed');
    expect(fake.responses).toHaveLength(billed);
    expect(next.errors[0]).toMatchObject({ stage: 'realtime', scope: 'user' });
    // Bob is not alice.
    const bob = await open(client.guard.withScope({ user: 'bob' }));
    expect(await respond(bob.rt)).toBe('done');
    bob.rt.close();
    await bob.closed;
  });
});

describe('guard.realtime(): waiting instead of refusing on pessimism', () => {
  test("a response kept out only by another call's in-flight worst case waits for it to settle, then goes (budgetWaitMs)", async () => {
    const http = await startFakeProvider({ latencyMs: 300, outputTokens: 16 });
    try {
      // The chat call reserves 100 tokens at $1,000/M = $0.10 while in flight and costs $0.016.
      const client = guarded({
        cost: { prices: { 'pricey-chat': { inputPerMTok: 1, outputPerMTok: 1000, maxOutputTokens: 100 } }, budgets: [{ scope: 'global', limitUsd: 0.10015, window: '1h' }] },
      });
      const chat = client.withOptions({ baseURL: http.openaiBaseURL });
      const { rt, errors } = await open(client);
      // Awaited as a user would (the SDK reads the body, and the guard settles the call, once it is).
      const call = (async () => chat.chat.completions.create({ model: 'pricey-chat', messages: [{ role: 'user', content: 'hi' }] }))();
      await new Promise((r) => setTimeout(r, 50)); // the chat call is in flight, its worst case reserved
      const started = performance.now();
      expect(await respond(rt)).toBe('done');
      expect(performance.now() - started).toBeGreaterThan(200); // it waited for the chat call
      await call;
      expect(errors).toEqual([]);
      expect(fake.responses.map((r) => r.status)).toEqual(['completed']);
      rt.close();
    } finally {
      await http.close();
    }
  });
});

describeWithRedis('guard.realtime() in Distributed mode', () => {
  const redis = useRedisServer();

  test('realtime charges land in the Redis ledger: another replica is held to the same budget', async () => {
    const name = `rt-${Date.now()}`;
    // Room for a minimal response (1,000 tokens out, $0.016) is checked before each one is sent.
    const options: GuardOptions = { name, redis: redis().url, cost: { minOutputTokens: 1000, budgets: [{ scope: 'global', limitUsd: 0.05, window: '1h' }] } };
    const one = guarded(options);
    const two = guarded(options);
    const { rt, errors, closed } = await open(one);
    for (let i = 0; i < 5; i++) if ((await respond(rt)) === 'closed') break;
    await closed;
    expect(errors[0]).toMatchObject({ stage: 'realtime', scope: 'global', key: 'global' });
    const billed = fake.responses.length;
    // The other replica's first response is refused before it is sent: the ledger is shared.
    const other = await open(two);
    expect(await respond(other.rt)).toBe('closed');
    await other.closed;
    expect(other.errors[0]).toMatchObject({ stage: 'realtime', scope: 'global' });
    expect(fake.responses).toHaveLength(billed);
    expect(sum(fake.responses.map((r) => r.usd))).toBeLessThanOrEqual(0.05 * 1.05);
  });
});
