import { formatGoDuration, startFakeProvider, type FakeProvider } from '../lib/testing';
import { ANTHROPIC_KEY, CLAUDE, GPT, OPENAI_KEY } from './support/clients';

// The fake provider is itself under test here, over plain fetch: the other suites rely on it.
let fake: FakeProvider;
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.reset();
  fake.configure({ outputTokens: 16, tokenDelayMs: 0, latencyMs: 0, limits: {} });
});

const anthropic = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${fake.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': ANTHROPIC_KEY, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: CLAUDE, max_tokens: 100, messages: [{ role: 'user', content: 'hello world!' }], ...body }),
  });
const openai = (body: Record<string, unknown>, key = OPENAI_KEY) =>
  fetch(`${fake.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: GPT, messages: [{ role: 'user', content: 'hello world!' }], ...body }),
  });

test('per-key request limit: a burst beyond one second of the rate gets 429 with retry-after and limit headers', async () => {
  fake.configure({ limits: { requestsPerMinute: 120 } }); // 2/s, burst of 2
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await openai({})).status);
  expect(statuses).toEqual([200, 200, 429]);
  const limited = await openai({});
  expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('120');
  expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  expect(Number(limited.headers.get('retry-after-ms'))).toBeGreaterThan(0);
  expect(limited.headers.get('retry-after')).toBe('1');
  expect(limited.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(ms|(\.\d+)?s)$/);
  // Another key has its own bucket.
  expect((await openai({}, 'sk-other')).status).toBe(200);
  expect(fake.stats.byStatus).toEqual({ 200: 3, 429: 2 });
});

test('Anthropic output-token limit charges max_tokens up front and refunds the unused part', async () => {
  fake.configure({ limits: { outputTokensPerMinute: 6000 } }); // 100/s: one max_tokens=100 call fills it
  expect((await anthropic({ max_tokens: 100 })).status).toBe(200);
  const after = await anthropic({ max_tokens: 100 });
  // 16 tokens were generated, 84 refunded: the next call of 100 waits for only ~16 tokens of refill.
  expect(after.status).toBe(429);
  expect(after.headers.get('anthropic-ratelimit-output-tokens-limit')).toBe('6000');
  expect(Number(after.headers.get('anthropic-ratelimit-output-tokens-remaining'))).toBeGreaterThanOrEqual(84);
  expect(Date.parse(after.headers.get('anthropic-ratelimit-output-tokens-reset')!)).toBeGreaterThan(Date.now() - 1000);
});

test('scripted faults: status with headers, reset, malformed JSON, stream cut', async () => {
  fake.fault({ status: 529, headers: { 'x-should-retry': 'true' } });
  const overloaded = await anthropic({});
  expect(overloaded.status).toBe(529);
  expect(overloaded.headers.get('x-should-retry')).toBe('true');
  expect(((await overloaded.json()) as { error: { type: string } }).error.type).toBe('overloaded_error');

  fake.fault({ kind: 'reset' });
  await expect(anthropic({})).rejects.toThrow();

  fake.fault({ kind: 'malformed' });
  const malformed = await anthropic({});
  await expect(malformed.json()).rejects.toMatchObject({ name: 'SyntaxError' });

  fake.fault({ kind: 'cut', afterTokens: 3 });
  const cut = await anthropic({ stream: true });
  await expect(cut.text()).rejects.toThrow();
  await fake.idle();
  expect(fake.records.at(-1)).toMatchObject({ fault: 'cut', outputTokens: 3 });
});

test('faults can target one endpoint and several requests', async () => {
  fake.fault({ status: 503 }, { times: 2, endpoint: 'chat' });
  expect((await anthropic({})).status).toBe(200);
  expect([(await openai({})).status, (await openai({})).status, (await openai({})).status]).toEqual([503, 503, 200]);
});

test('per-request overrides: output tokens, extra input tokens, latency', async () => {
  const started = performance.now();
  const res = await anthropic({}, { 'x-fake-output-tokens': '3', 'x-fake-extra-input-tokens': '1000', 'x-fake-latency-ms': '60' });
  const body = (await res.json()) as { usage: { input_tokens: number; output_tokens: number } };
  expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  expect(body.usage).toMatchObject({ input_tokens: 3 + 1000, output_tokens: 3 });
});

test('a client that hangs up mid-stream is billed only for what was sent', async () => {
  fake.configure({ outputTokens: 500, tokenDelayMs: 2 });
  const res = await anthropic({ stream: true, max_tokens: 1000 }, {});
  const reader = res.body!.getReader();
  await reader.read();
  await new Promise((r) => setTimeout(r, 30));
  await reader.cancel();
  await fake.idle();
  const record = fake.records[0]!;
  expect(record.clientClosed).toBe(true);
  expect(record.outputTokens).toBeGreaterThan(0);
  expect(record.outputTokens).toBeLessThan(500);
  expect(fake.stats.billed.outputTokens).toBe(record.outputTokens);
  expect(record.costUsd).toBeGreaterThan(0);
});

test('counters: max in flight and arrivals', async () => {
  fake.configure({ latencyMs: 40 });
  await Promise.all(Array.from({ length: 5 }, () => openai({})));
  expect(fake.stats.maxInFlight).toBe(5);
  expect(fake.stats.arrivals).toHaveLength(5);
  expect(fake.stats.inFlight).toBe(0);
});

test('Go durations as OpenAI writes them', () => {
  expect([0, 6, 999.2, 1000, 1500, 60_000, 360_000, 3_723_400].map(formatGoDuration)).toEqual(['0s', '6ms', '1000ms', '1s', '1.5s', '1m0s', '6m0s', '1h2m3.4s']);
});
