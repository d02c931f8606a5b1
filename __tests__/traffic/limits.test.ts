import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { RateLimitExceededError, createGuardedClient, createGuardedFetch } from '../../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';
import { arrivalsOf, bucketExcess, maxInWindow, maxInWindowAfter, sleep, until } from '../support/arrivals';

const fake = useFakeProvider();

describe('concurrency', () => {
  test('maxConcurrent caps what the server has in flight', async () => {
    fake().configure({ latencyMs: 40 });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 3 } });
    const results = await Promise.all(Array.from({ length: 12 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(results).toHaveLength(12);
    expect(fake().stats.maxInFlight).toBe(3);
    expect(client.guard.status().limiter).toMatchObject({ running: 0, queued: 0 });
  });

  test('a stream holds its slot until its body ends', async () => {
    fake().configure({ tokenDelayMs: 3, outputTokens: 12 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 2 } });
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        const stream = await client.messages.create({ model: CLAUDE, max_tokens: 50, stream: true, messages: hello });
        for await (const _ of stream) void _;
      }),
    );
    expect(fake().stats.maxInFlight).toBe(2);
  });
});

describe('a stream nobody reads', () => {
  test('does not hold its slot forever: after timeoutMs unread it is let go, charged for what arrived', async () => {
    fake().configure({ outputTokens: 200, tokenDelayMs: 2 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 1 }, timeoutMs: 150 });
    await client.messages.create({ model: CLAUDE, max_tokens: 500, stream: true, messages: hello }); // never iterated
    const started = performance.now();
    await client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello });
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(client.guard.status().limiter.running).toBe(0);
    expect(client.guard.status().budgets[0]!.reservedUsd).toBeCloseTo(0, 12);
    expect(client.guard.status().totals.costUsd).toBeGreaterThan(0);
  });

  test('an unread JSON body (asResponse, never read) is let go after timeoutMs: its reservation settled at its worst case; read later, it is whole', async () => {
    const client = createGuardedClient(openaiFor(fake()), { timeoutMs: 150 });
    const response = await client.chat.completions.create({ model: GPT, max_tokens: 5, messages: hello }).asResponse();
    const budget = () => client.guard.status().budgets[0]!;
    expect(budget().reservedUsd).toBeGreaterThan(0);
    expect(client.guard.status().totals.costUsd).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(budget().reservedUsd).toBeCloseTo(0, 12);
    // Nothing counted the body's usage: it is charged what it could have cost at most.
    expect(client.guard.status().totals.costUsd).toBeGreaterThan(0);
    expect(budget().spentUsd).toBeCloseTo(client.guard.status().totals.costUsd, 12);
    expect(((await response.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBeGreaterThan(0);
  });
});

describe('request rate', () => {
  test('requestsPerMinute: a burst of at most R/60, then at most R/60 in any second (server arrival times)', async () => {
    const client = createGuardedClient(openaiFor(fake()), { limits: { requestsPerMinute: 600, maxConcurrent: 50 } });
    const started = performance.now();
    await Promise.all(Array.from({ length: 30 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    const elapsed = performance.now() - started;
    const arrivals = arrivalsOf(fake().records);
    // Over any stretch of time, no more than a bucket of 10 refilled at 10/s lets through.
    expect(bucketExcess(arrivals, 10, 10)).toBeLessThanOrEqual(0);
    // Past the first second, no second on the wire holds more than 10.
    expect(maxInWindowAfter(arrivals, 1000, 1000)).toBeLessThanOrEqual(10);
    // Burst + refill bounds any second, the first one included.
    expect(maxInWindow(arrivals, 1000)).toBeLessThanOrEqual(20);
    // 9 at once, then 9.8/s: the last of 30 goes after ~2.1 s.
    expect(elapsed).toBeGreaterThan(1900);
    expect(fake().stats.byStatus[429]).toBeUndefined();
  });
});

describe('long calls', () => {
  test('answered a second after the provider counted them, calls still go at the rate: 40 at 10/s within 1.2 × ideal, no 429', async () => {
    fake().configure({ latencyMs: 1000, limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { requestsPerMinute: 600, maxConcurrent: 100 } });
    const started = performance.now();
    await Promise.all(Array.from({ length: 40 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    const elapsed = performance.now() - started;
    // Each answer's remaining count is a second old: lowering to it threw that second's refill away (5.6 s here).
    // Ideal: 10 at once, then 10/s, plus one call's second: 4 s.
    expect(elapsed).toBeLessThan(4000 * 1.2);
    expect(fake().stats.byStatus[429] ?? 0).toBe(0);
  });
});

describe('token rates', () => {
  test('inputTokensPerMinute holds the server-side input tokens per second', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { limits: { inputTokensPerMinute: 30_000, maxConcurrent: 50 } });
    const prompt = [{ role: 'user' as const, content: 'word '.repeat(160) }]; // ~200 tokens by our estimate
    await Promise.all(Array.from({ length: 8 }, () => client.messages.create({ model: CLAUDE, max_tokens: 10, messages: prompt })));
    const records = fake().records;
    // 490 tokens a second: past the first burst, no second on the wire holds more (give or take the one call that straddles it).
    expect(maxInWindowAfter(arrivalsOf(records), 1000, 1000, records.map((r) => r.inputTokens))).toBeLessThanOrEqual(490 + 207);
    expect(maxInWindow(arrivalsOf(records), 1000, records.map((r) => r.inputTokens))).toBeLessThanOrEqual(1000);
    expect(records.at(-1)!.at - records[0]!.at).toBeGreaterThan(1500);
  });

  test('the input estimate is trued up to what the provider counted: an over-estimate does not slow the rate for good', async () => {
    // The host counts ~20 input tokens where our estimate says ~200 (another tokenizer, a cached prefix).
    fake().configure({ extraInputTokens: -180 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { inputTokensPerMinute: 12_000, maxConcurrent: 50, adaptive: false } });
    const prompt = [{ role: 'user' as const, content: 'word '.repeat(160) }];
    const started = performance.now();
    await Promise.all(Array.from({ length: 10 }, () => client.messages.create({ model: CLAUDE, max_tokens: 10, messages: prompt })));
    expect(fake().records.every((r) => r.inputTokens <= 25)).toBe(true);
    // A bucket of 200 refilled at 200/s: at ~200 each, 10 calls take 9 s; trued up to ~20 they go at once.
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test('outputTokensPerMinute reserves max tokens at dispatch and refunds what was not generated', async () => {
    // The provider counts output the same way (max_tokens at the start, the rest refunded at the end).
    fake().configure({ limits: { outputTokensPerMinute: 6000 } });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { outputTokensPerMinute: 6000, maxConcurrent: 50, adaptive: false } });
    const started = performance.now();
    // Each reserves 100 (a full second's worth) but generates 16: refunds let them go ~6× faster.
    await Promise.all(Array.from({ length: 8 }, () => client.messages.create({ model: CLAUDE, max_tokens: 100, messages: hello })));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(4000); // without refunds: 7 s
    expect(fake().stats.byStatus).toEqual({ 200: 8 }); // and never over the provider's limit
  });

  test('a call heavier than the whole per-minute limit is refused at once, nothing sent', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { limits: { outputTokensPerMinute: 1000 } });
    const error = await client.messages.create({ model: CLAUDE, max_tokens: 5000, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitExceededError);
    expect(error).toMatchObject({ reason: 'too_heavy', limit: 'outputTokensPerMinute', httpStatus: 429 });
    expect(fake().stats.requests).toBe(0);
  });
});

describe('queue control', () => {
  test('maxQueue: beyond it a call is refused at once with retryAfterMs', async () => {
    fake().configure({ latencyMs: 150 });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 1, maxQueue: 1 } });
    const first = client.chat.completions.create({ model: GPT, messages: hello });
    await until(() => fake().stats.inFlight === 1);
    const second = client.chat.completions.create({ model: GPT, messages: hello });
    await sleep(5);
    const third = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(RateLimitExceededError);
    expect(third).toMatchObject({ reason: 'queue_full' });
    expect((third as RateLimitExceededError).retryAfterMs).toBeGreaterThan(0);
    await Promise.all([first, second]);
    expect(fake().stats.requests).toBe(2);
  });

  test('maxWaitMs: a call that waited too long is refused and never reaches the provider', async () => {
    fake().configure({ latencyMs: 300 });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 1, maxWaitMs: 50 } });
    const first = client.chat.completions.create({ model: GPT, messages: hello });
    const second = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(RateLimitExceededError);
    expect(second).toMatchObject({ reason: 'max_wait', code: 'rate_limited' });
    await first;
    await sleep(50);
    expect(fake().stats.requests).toBe(1);
  });

  test("the SDK's abort signal cancels a queued call at once; it never reaches the provider", async () => {
    fake().configure({ latencyMs: 200 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 1 } });
    const first = client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello });
    await until(() => fake().stats.inFlight === 1);
    const controller = new AbortController();
    const queued = client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello }, { signal: controller.signal });
    await sleep(10);
    const abortedAt = performance.now();
    controller.abort();
    await expect(queued).rejects.toBeInstanceOf(Anthropic.APIUserAbortError);
    expect(performance.now() - abortedAt).toBeLessThan(100);
    await first;
    await sleep(30);
    expect(fake().stats.requests).toBe(1);
    expect(client.guard.status().limiter.queued).toBe(0);
  });

  test('a signal that is not Node’s own (a polyfill, as older fetch clients pass) cancels a queued call and one in flight', async () => {
    /** What the abort-controller polyfill gives: an EventTarget with aborted and reason of its own. */
    class PolyfillSignal extends EventTarget {
      aborted = false;
      reason: unknown = undefined;
      abort(reason: unknown): void {
        this.aborted = true;
        this.reason = reason;
        this.dispatchEvent(new Event('abort'));
      }
    }
    fake().configure({ latencyMs: 300 });
    const guardedFetch = createGuardedFetch('openai', { logLevel: 'silent', limits: { maxConcurrent: 1 } });
    const call = (signal: PolyfillSignal) =>
      guardedFetch(`${fake().openaiBaseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
        body: JSON.stringify({ model: GPT, messages: hello }),
        signal: signal as unknown as AbortSignal,
      });
    const [inFlight, queued] = [new PolyfillSignal(), new PolyfillSignal()];
    const first = call(inFlight);
    await until(() => fake().stats.inFlight === 1);
    const second = call(queued);
    await sleep(10);
    const abortedAt = performance.now();
    queued.abort(new Error('queued call cancelled'));
    inFlight.abort(new Error('call in flight cancelled'));
    await expect(second).rejects.toThrow('queued call cancelled');
    await expect(first).rejects.toThrow('call in flight cancelled');
    expect(performance.now() - abortedAt).toBeLessThan(200);
    expect(fake().stats.requests).toBe(1);
    await guardedFetch.guard.close();
  });
});

describe('per-scope limits', () => {
  test('maxConcurrent per user: one user is serialised, two users go in parallel', async () => {
    fake().configure({ latencyMs: 60 });
    const client = createGuardedClient(openaiFor(fake()), { limits: { perScope: { user: { maxConcurrent: 1 } } } });
    const alice = client.guard.withScope({ user: 'alice' });
    const bob = client.guard.withScope({ user: 'bob' });
    await Promise.all([0, 1, 2].map(() => alice.chat.completions.create({ model: GPT, messages: hello })));
    expect(fake().stats.maxInFlight).toBe(1);
    fake().reset();
    await Promise.all([alice, bob].map((c) => c.chat.completions.create({ model: GPT, messages: hello })));
    expect(fake().stats.maxInFlight).toBe(2);
    // Idle, a concurrency-only key holds nothing a fresh one would not: it is dropped at once.
    expect(client.guard.status().limiter.scopes).toEqual({ user: 0 });
  });

  test("requestsPerMinute per user: alice's fourth call in a minute waits, bob is served", async () => {
    const client = createGuardedClient(openaiFor(fake()), { limits: { perScope: { user: { requestsPerMinute: 3 } }, maxWaitMs: 300 } });
    const alice = client.guard.withScope({ user: 'alice' });
    for (let i = 0; i < 3; i++) await alice.chat.completions.create({ model: GPT, messages: hello });
    // Exactly 3 per minute (a limit on your own users has no provider margin): the fourth ~20 s later, so refused now, with when to come back.
    const refused = await alice.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RateLimitExceededError);
    expect(refused).toMatchObject({ reason: 'max_wait', limit: 'perScope.user' });
    expect((refused as RateLimitExceededError).retryAfterMs).toBeGreaterThan(10_000);
    await client.guard.withScope({ user: 'bob' }).chat.completions.create({ model: GPT, messages: hello });
    expect(fake().records.map((r) => r.status)).toEqual([200, 200, 200, 200]);
  });
});

describe('live config', () => {
  test('updateConfig changes concurrency for the next calls', async () => {
    fake().configure({ latencyMs: 30 });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 4 } });
    client.guard.updateConfig({ limits: { maxConcurrent: 1 } });
    await Promise.all(Array.from({ length: 4 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(fake().stats.maxInFlight).toBe(1);
  });
});

void OpenAI;
