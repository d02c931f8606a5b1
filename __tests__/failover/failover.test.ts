import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, createGuardedClient, GuardConfigError, type GuardEventMap } from '../../lib';
import { startFakeProvider, type FakeProvider } from '../../lib/testing';
import { CLAUDE, GPT, OPENAI_KEY, anthropicFor, hello, openaiFor, useFakeProvider, withEnv } from '../support/clients';

const BACKUP_ANTHROPIC_KEY = 'sk-ant-backup-000111222333';
const BACKUP_OPENAI_KEY = 'sk-backup-000111222333';
const HAIKU = 'claude-haiku-4-5';

const primary = useFakeProvider();
let backup: FakeProvider;
beforeAll(async () => {
  backup = await startFakeProvider();
});
beforeEach(() => {
  backup.reset();
  backup.configure({ outputTokens: 16, latencyMs: 0, limits: {} });
});
afterAll(async () => {
  await backup.close();
});

const fast = { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 }, logLevel: 'silent' as const };
const anthropicBackup = () => createGuardedClient(new Anthropic({ apiKey: BACKUP_ANTHROPIC_KEY, baseURL: backup.anthropicBaseURL }), { name: 'backup', ...fast });

describe('failover to another client (Anthropic)', () => {
  it('serves from the backup when the primary keeps failing with 5xx, and says which target served', async () => {
    primary().fault({ status: 503 }, { times: 10 });
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, fallback: [second] });
    const failovers: Array<GuardEventMap['failover']> = [];
    const responses: Array<GuardEventMap['response']> = [];
    client.guard.on('failover', (e) => failovers.push(e));
    client.guard.on('response', (e) => responses.push(e));
    const { data, response } = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello }).withResponse();
    expect(data.content.length).toBeGreaterThan(0);
    expect(response.headers.get('x-guarded-llm-target')).toBe('client:backup');
    expect(primary().stats.byStatus[503]).toBe(2); // first try + one retry, then failover
    expect(backup.records.map((r) => [r.status, r.apiKey])).toEqual([[200, BACKUP_ANTHROPIC_KEY]]);
    expect(failovers).toEqual([{ from: 'primary', to: 'client:backup', reason: 'HTTP 503' }]);
    await new Promise((r) => setTimeout(r, 10));
    expect(responses.map((r) => r.target)).toEqual(['client:backup']);
    // Charged by the guard that served it, at its price.
    expect(second.guard.status().totals.costUsd).toBeCloseTo(backup.stats.billed.usd, 12);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('fails over on a local rate-limit refusal, and a failed target cools down', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), {
      ...fast,
      limits: { perScope: { user: { requestsPerMinute: 1 } }, maxWaitMs: 0 },
      cooldownMs: 60_000,
      fallback: [second],
    });
    const alice = client.guard.withScope({ user: 'alice' });
    await alice.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello }); // primary
    const { response } = await alice.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello }).withResponse(); // refused locally → backup
    expect(response.headers.get('x-guarded-llm-target')).toBe('client:backup');
    expect(primary().stats.requests).toBe(1);
    // The primary now cools down: the next call goes to the backup first.
    await client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello });
    expect(primary().stats.requests).toBe(1);
    expect(backup.stats.requests).toBe(2);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('fails over at once while the primary\'s breaker is open, without sending to it', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, retry: 0, cooldownMs: 0, breaker: { volumeThreshold: 2, errorThresholdPercentage: 50 }, fallback: [second] });
    primary().fault({ status: 500 }, { times: 2 });
    for (let i = 0; i < 2; i++) await client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello }); // both served by the backup
    expect(client.guard.status().breaker.state).toBe('open');
    const reasons: string[] = [];
    client.guard.on('failover', (e) => reasons.push(e.reason));
    const { response } = await client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello }).withResponse();
    expect(response.headers.get('x-guarded-llm-target')).toBe('client:backup');
    expect(reasons).toEqual(['circuit_open']);
    expect(primary().stats.requests).toBe(2);
    expect(backup.stats.requests).toBe(3);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('fails over when the primary does not answer within timeoutMs', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, retry: 0, timeoutMs: 200, fallback: [second] });
    primary().fault({ kind: 'hang' });
    const reasons: string[] = [];
    client.guard.on('failover', (e) => reasons.push(e.reason));
    const { response } = await client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello }).withResponse();
    expect(response.headers.get('x-guarded-llm-target')).toBe('client:backup');
    expect(reasons).toEqual(['timeout']);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('never fails over on a 400, nor on a budget refusal of the caller\'s own scope', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, fallback: [second], cost: { budgets: [{ scope: 'user', limitUsd: 0.000001 }] } });
    primary().fault({ status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message: 'bad' } } });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello })).rejects.toBeInstanceOf(Anthropic.BadRequestError);
    await expect(client.guard.withScope({ user: 'bob' }).messages.create({ model: CLAUDE, max_tokens: 8, messages: hello })).rejects.toBeInstanceOf(BudgetExceededError);
    expect(backup.stats.requests).toBe(0);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('a stream fails over before its first byte, never after', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, cooldownMs: 0, fallback: [second] });
    primary().fault({ status: 529 }, { times: 2 });
    const stream = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello, stream: true });
    let text = '';
    for await (const event of stream) if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text;
    expect(text.length).toBeGreaterThan(0);
    expect(backup.stats.requests).toBe(1);
    // Cut mid-stream: the user sees the error; nothing is sent elsewhere.
    primary().fault({ kind: 'cut', afterTokens: 3 });
    const cut = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello, stream: true });
    await expect((async () => {
      for await (const _e of cut) void _e;
    })()).rejects.toThrow();
    expect(backup.stats.requests).toBe(1);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it('refuses a target of another wire format, or an unguarded client, at creation', () => {
    const openaiGuarded = createGuardedClient(openaiFor(primary()));
    expect(() => createGuardedClient(anthropicFor(primary()), { fallback: [openaiGuarded as never] })).toThrow(/a guarded anthropic client/);
    expect(() => createGuardedClient(anthropicFor(primary()), { fallback: [{ model: '' }] })).toThrow(GuardConfigError);
    expect(() => createGuardedClient(anthropicFor(primary()), { fallback: [new Anthropic({ apiKey: 'x' }) as never] })).toThrow(GuardConfigError);
    void openaiGuarded.guard.close();
  });

  it('never shows a target client (nor its key) in status', async () => {
    const second = anthropicBackup();
    const client = createGuardedClient(anthropicFor(primary()), { fallback: [second, { model: HAIKU }] });
    const status = JSON.stringify(client.guard.status());
    expect(status).not.toContain(BACKUP_ANTHROPIC_KEY);
    expect(client.guard.status().config.fallback).toEqual(['client:backup', `model:${HAIKU}`]);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });
});

describe('failover to another model', () => {
  it('an overloaded model is replaced by the fallback model, charged at its price', async () => {
    primary().fault({ status: 529 }, { times: 2 });
    const client = createGuardedClient(anthropicFor(primary()), { ...fast, fallback: [{ model: HAIKU }] });
    let charged = 0;
    client.guard.on('cost', (e) => (charged += e.usd));
    const { data, response } = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello }).withResponse();
    expect(response.headers.get('x-guarded-llm-target')).toBe(`model:${HAIKU}`);
    const served = primary().records.at(-1)!;
    expect(served.model).toBe(HAIKU);
    const price = calcPrice({ input_tokens: data.usage.input_tokens, output_tokens: data.usage.output_tokens }, HAIKU, { providerId: 'anthropic' })!.total_price;
    expect(charged).toBeCloseTo(price, 12);
    await client.guard.close();
  });

  it('takes fallback models from LLM_GUARD_FALLBACK_MODELS', async () => {
    const client = await withEnv({ LLM_GUARD_FALLBACK_MODELS: `${HAIKU}, claude-3-5-haiku-latest` }, () => createGuardedClient(anthropicFor(primary()), fast));
    expect(client.guard.status().config.fallback).toEqual([`model:${HAIKU}`, 'model:claude-3-5-haiku-latest']);
    expect(client.guard.status().sources.fallback).toBe('LLM_GUARD_FALLBACK_MODELS');
    primary().fault({ status: 529 }, { times: 2 });
    const { response } = await client.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }).withResponse();
    expect(response.headers.get('x-guarded-llm-target')).toBe(`model:${HAIKU}`);
    await client.guard.close();
  });

  it("routing 'cost' sends a call to the cheapest target first", async () => {
    const client = createGuardedClient(anthropicFor(primary()), { routing: 'cost', fallback: [{ model: HAIKU }] });
    const { response } = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello }).withResponse();
    expect(response.headers.get('x-guarded-llm-target')).toBe(`model:${HAIKU}`);
    expect(primary().records.map((r) => r.model)).toEqual([HAIKU]);
    await client.guard.close();
  });
});

describe('failover with the OpenAI SDK', () => {
  it('a rate-limited primary (429 past retries) hands the call to an OpenAI-compatible backup with its own key', async () => {
    primary().fault({ status: 429, headers: { 'retry-after': '0' } }, { times: 5 });
    const second = createGuardedClient(new OpenAI({ apiKey: BACKUP_OPENAI_KEY, baseURL: backup.openaiBaseURL }), { name: 'groq-like', ...fast });
    const client = createGuardedClient(openaiFor(primary()), { ...fast, limits: { adaptive: false }, fallback: [second] });
    const { data, response } = await client.chat.completions.create({ model: GPT, max_tokens: 16, messages: hello }).withResponse();
    expect(data.choices[0]!.message.content).toBeTruthy();
    expect(response.headers.get('x-guarded-llm-target')).toBe('client:groq-like');
    expect(primary().records.every((r) => r.apiKey === OPENAI_KEY && r.status === 429)).toBe(true);
    expect(backup.records.map((r) => r.apiKey)).toEqual([BACKUP_OPENAI_KEY]);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });

  it("routing 'latency' moves calls to the faster target", async () => {
    primary().configure({ latencyMs: 120 });
    const second = createGuardedClient(new OpenAI({ apiKey: BACKUP_OPENAI_KEY, baseURL: backup.openaiBaseURL }), { name: 'fast' });
    const client = createGuardedClient(openaiFor(primary()), { routing: 'latency', fallback: [second] });
    for (let i = 0; i < 6; i++) await client.chat.completions.create({ model: GPT, max_tokens: 8, messages: hello });
    // Each target is measured once; then the faster one serves.
    expect(primary().stats.requests).toBe(1);
    expect(backup.stats.requests).toBe(5);
    await Promise.all([client.guard.close(), second.guard.close()]);
  });
});


