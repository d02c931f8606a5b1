import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { CircuitOpenError, createGuardedClient, type GuardEventMap } from '../../lib';
import { backoffMs } from '../../lib/stages/retry';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';
import { sleep, until } from '../support/arrivals';

const fake = useFakeProvider();
// Tiny real delays: the behaviour is what is tested here, not the clock.
const fast = { retries: 2, minDelayMs: 1, maxDelayMs: 4 };

describe('which failures are retried, and how often', () => {
  test.each([
    [500, 3],
    [502, 3],
    [503, 3],
    [529, 3],
    [408, 3],
    [409, 3],
    [429, 3],
    [400, 1],
    [401, 1],
    [403, 1],
    [404, 1],
    [413, 1],
    [422, 1],
  ])('status %i: the server sees %i requests with retries = 2', async (status, requests) => {
    const client = createGuardedClient(anthropicFor(fake()), { retry: fast, breaker: false });
    fake().fault({ status }, { times: 5 });
    const error = await client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.APIError);
    expect((error as InstanceType<typeof Anthropic.APIError>).status).toBe(status);
    expect(fake().stats.requests).toBe(requests);
  });

  test('a retried call that then succeeds returns the success; retries are counted and reported', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: fast });
    const retries: Array<GuardEventMap['retry']> = [];
    client.guard.on('retry', (e) => retries.push(e));
    fake().fault({ status: 503 }, { times: 2 });
    const completion = await client.chat.completions.create({ model: GPT, messages: hello });
    expect(completion.choices).toHaveLength(1);
    expect(fake().stats.requests).toBe(3);
    expect(retries.map((r) => [r.attempt, r.reason, r.status])).toEqual([
      [2, 'server_error', 503],
      [3, 'server_error', 503],
    ]);
    expect(client.guard.status().totals).toMatchObject({ calls: 1, attempts: 3, retries: 2 });
  });

  test('429 insufficient_quota is not retried (waiting will not bring credit back)', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: fast });
    fake().fault({ status: 429, body: { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota' } } }, { times: 3 });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(fake().stats.requests).toBe(1);
  });

  test('x-should-retry overrides the status both ways', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: fast, breaker: false });
    fake().fault({ status: 503, headers: { 'x-should-retry': 'false' } }, { times: 3 });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(fake().stats.requests).toBe(1);
    fake().reset();
    fake().fault({ status: 400, headers: { 'x-should-retry': 'true' } }, { times: 1 });
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(fake().stats.requests).toBe(2);
  });

  test('connection resets are retried; a 200 with a malformed body is not (it was answered)', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { retry: fast, breaker: false });
    fake().fault({ kind: 'reset' }, { times: 2 });
    const message = await client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello });
    expect(message.usage.output_tokens).toBe(5);
    expect(fake().stats.requests).toBe(3);
    fake().fault({ kind: 'reset' }, { times: 5 });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello })).rejects.toBeInstanceOf(Anthropic.APIConnectionError);
    fake().reset();
    fake().fault({ kind: 'malformed' });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello })).rejects.toMatchObject({ name: 'SyntaxError' });
    expect(fake().stats.requests).toBe(1);
  });

  test('a per-attempt timeout is retried, and the last one is the SDK timeout error', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: fast, timeoutMs: 50, breaker: false });
    fake().fault({ kind: 'hang' }, { times: 3 });
    const error = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIConnectionTimeoutError);
    await fake().idle();
    expect(fake().stats.requests).toBe(3);
    expect(fake().records.every((r) => r.clientClosed)).toBe(true);
  });

  test("an SDK client's own shorter timeout ends a hanging call; a copy with a longer one gets the guard's per-attempt timeout and its retries", async () => {
    // The client gives up after 150 ms, before the guard's 400 ms per attempt: its signal ends the call.
    const client = createGuardedClient(openaiFor(fake(), { timeout: 150 }), { retry: fast, timeoutMs: 400, breaker: false });
    fake().fault({ kind: 'hang' }, { times: 1 });
    const started = performance.now();
    // (The SDK's own timeout error, or under jest's realms the connection error it is a kind of.)
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    // Once, at the client's 150 ms (a wide allowance for a loaded machine): no attempt of ours ran long.
    expect(performance.now() - started).toBeLessThan(2_000);
    await fake().idle();
    expect(fake().stats.requests).toBe(1);
    expect(fake().records[0]!.clientClosed).toBe(true);

    // A copy that waits up to 10 s: each attempt still ends at 400 ms, is retried, and the third answers.
    fake().reset();
    fake().fault({ kind: 'hang' }, { times: 2 });
    const patient = client.withOptions({ timeout: 10_000 });
    const again = performance.now();
    const result = await patient.chat.completions.create({ model: GPT, messages: hello });
    expect(result.choices[0]!.message.content).toBeTruthy();
    expect(performance.now() - again).toBeLessThan(5_000);
    await fake().idle();
    expect(fake().stats.requests).toBe(3);
    expect(fake().records.slice(0, 2).every((r) => r.clientClosed)).toBe(true);
  });

  test('an Anthropic call announcing a timeout longer than the per-attempt one is still timed out per attempt and retried', async () => {
    // The SDK announces its 10 s in X-Stainless-Timeout; the guard's 400 ms per attempt comes first.
    const client = createGuardedClient(anthropicFor(fake(), { timeout: 10_000 }), { retry: fast, timeoutMs: 400, breaker: false });
    fake().fault({ kind: 'hang' }, { times: 2 });
    const started = performance.now();
    const message = await client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello });
    expect(message.content.length).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    await fake().idle();
    expect(fake().stats.requests).toBe(3);
    expect(fake().records.slice(0, 2).every((r) => r.clientClosed)).toBe(true);
  });

  test('a body that cannot be replayed is sent once', async () => {
    // (A stream body cannot be read for its model: it is priced as unknown, so allow that here.)
    const client = createGuardedClient(openaiFor(fake()), { retry: fast, cost: { unpricedModel: 'allow' } });
    fake().fault({ status: 503 }, { times: 3 });
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(JSON.stringify({ model: GPT, messages: hello })));
        c.close();
      },
    });
    const response = await client.post('/chat/completions', { body: body as never, __binaryResponse: true } as never).asResponse().catch((e: unknown) => e);
    expect(response).toBeInstanceOf(OpenAI.APIError);
    expect(fake().stats.requests).toBe(1);
  });
});

describe('Retry-After', () => {
  test('honoured when at most maxRetryAfterMs: the retry waits that long', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: { ...fast, maxRetryAfterMs: 1000 } });
    fake().fault({ status: 429, headers: { 'retry-after-ms': '300' } });
    await client.chat.completions.create({ model: GPT, messages: hello });
    const [first, second] = fake().records;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(300);
  });

  test('longer than maxRetryAfterMs: fails at once with the provider error, annotated with retryAfterMs', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: { ...fast, maxRetryAfterMs: 1000 } });
    fake().fault({ status: 429, headers: { 'retry-after': '30' } });
    const started = performance.now();
    const error = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(500);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as { retryAfterMs?: number }).retryAfterMs).toBe(30_000);
    expect(fake().stats.requests).toBe(1);
  });
});

describe('bounds and aborts', () => {
  test('maxRetryTimeMs bounds the whole call', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: { retries: 10, minDelayMs: 100, maxDelayMs: 100, jitter: 'none', maxRetryTimeMs: 250 }, breaker: false });
    fake().fault({ status: 503 }, { times: 20 });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(fake().stats.requests).toBeLessThanOrEqual(3);
  });

  test('an abort during backoff ends the call at once; nothing more is sent', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { retry: { retries: 3, minDelayMs: 5000, maxDelayMs: 5000, jitter: 'none' } });
    fake().fault({ status: 503 }, { times: 3 });
    const controller = new AbortController();
    const pending = client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello }, { signal: controller.signal });
    await until(() => fake().stats.requests === 1);
    await sleep(20);
    const abortedAt = performance.now();
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(performance.now() - abortedAt).toBeLessThan(200);
    await sleep(50);
    expect(fake().stats.requests).toBe(1);
  });

  test('an open breaker is never retried', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: fast, breaker: { volumeThreshold: 1, resetTimeoutMs: 60_000 } });
    fake().fault({ status: 500 }, { times: 10 });
    const error = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    // The first 500 opened it; the retry met the open breaker and stopped there.
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(fake().stats.requests).toBe(1);
  });
});

describe('backoff', () => {
  const retry = { retries: 5, minDelayMs: 1000, maxDelayMs: 30_000, factor: 2, jitter: 'full' as const, maxRetryAfterMs: 60_000, maxRetryTimeMs: undefined };
  test('full jitter is uniform in [0, min(max, base × factor^(n-1))]', () => {
    expect([1, 2, 3, 6, 10].map((n) => backoffMs(n, retry, () => 1))).toEqual([1000, 2000, 4000, 30_000, 30_000]);
    expect(backoffMs(3, retry, () => 0)).toBe(0);
    expect(backoffMs(3, retry, () => 0.5)).toBe(2000);
  });
  test('equal jitter keeps half; none keeps all', () => {
    expect(backoffMs(2, { ...retry, jitter: 'equal' }, () => 0)).toBe(1000);
    expect(backoffMs(2, { ...retry, jitter: 'none' }, () => 0)).toBe(2000);
  });
});
