import { calcPrice } from '@pydantic/genai-prices';
import { embed, generateText, streamText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createGuardedFetch, guardErrorToHttp, isGuardError, runWithScope, type GuardEventMap, type GuardOptions } from '../../lib';
import { ANTHROPIC_KEY, CLAUDE, GPT, OPENAI_KEY, useFakeProvider } from '../support/clients';
import { until } from '../support/arrivals';

const fake = useFakeProvider();
const made: Array<{ guard: { close(): Promise<void> } }> = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((f) => f.guard.close()));
});

/** The AI SDK's OpenAI provider on a guarded fetch, with what the guard charged. */
function openai(options: GuardOptions = {}) {
  const guardedFetch = createGuardedFetch('openai', { logLevel: 'silent', ...options });
  made.push(guardedFetch);
  const costs: Array<GuardEventMap['cost']> = [];
  guardedFetch.guard.on('cost', (e) => costs.push(e));
  return { fetch: guardedFetch, provider: createOpenAI({ baseURL: fake().openaiBaseURL, apiKey: OPENAI_KEY, fetch: guardedFetch }), costs };
}

function anthropic(options: GuardOptions = {}) {
  const guardedFetch = createGuardedFetch('anthropic', { logLevel: 'silent', ...options });
  made.push(guardedFetch);
  const costs: Array<GuardEventMap['cost']> = [];
  guardedFetch.guard.on('cost', (e) => costs.push(e));
  return { fetch: guardedFetch, provider: createAnthropic({ baseURL: `${fake().anthropicBaseURL}/v1`, apiKey: ANTHROPIC_KEY, fetch: guardedFetch }), costs };
}

const sum = (costs: Array<GuardEventMap['cost']>) => costs.reduce((n, c) => n + c.usd, 0);

describe('the Vercel AI SDK on createGuardedFetch', () => {
  it('generateText (chat completions): the text, and a charge equal to what the provider billed at genai-prices', async () => {
    const { provider, costs } = openai();
    const result = await generateText({ model: provider.chat(GPT), prompt: 'Hello there', maxOutputTokens: 50, maxRetries: 0 });
    expect(result.text.length).toBeGreaterThan(0);
    expect(costs).toHaveLength(1);
    expect(costs[0]!.estimated).toBe(false);
    const billed = fake().records[0]!;
    expect(costs[0]!.usd).toBeCloseTo(calcPrice({ input_tokens: billed.inputTokens, output_tokens: billed.outputTokens }, GPT, { providerId: 'openai' })!.total_price, 12);
    expect(result.usage.outputTokens).toBe(billed.outputTokens);
  });

  it('generateText (Responses API) and Anthropic messages: charged what was billed', async () => {
    const o = openai();
    await generateText({ model: o.provider(GPT), prompt: 'Hello there', maxOutputTokens: 50, maxRetries: 0 });
    expect(fake().records[0]!.endpoint).toBe('responses');
    expect(sum(o.costs)).toBeCloseTo(fake().stats.billed.usd, 12);
    fake().reset();
    const a = anthropic();
    await generateText({ model: a.provider(CLAUDE), prompt: 'Hello there', maxOutputTokens: 50, maxRetries: 0 });
    expect(fake().records[0]!.endpoint).toBe('messages');
    expect(sum(a.costs)).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  it('streamText aborted by its abortSignal mid-stream: the provider stops, what it sent is charged, the slot is free', async () => {
    fake().configure({ outputTokens: 400, tokenDelayMs: 5 });
    const { fetch: guardedFetch, provider, costs } = openai({ limits: { maxConcurrent: 1 } });
    const controller = new AbortController();
    const result = streamText({ model: provider.chat(GPT), prompt: 'Hello there', maxRetries: 0, abortSignal: controller.signal, onError: () => {} });
    let pieces = 0;
    // The AI SDK ends the text stream on an abort (no error thrown into the loop).
    await (async () => {
      for await (const _piece of result.textStream) if (++pieces === 20) controller.abort();
    })().catch(() => {});
    expect(pieces).toBeGreaterThanOrEqual(20);
    await until(() => costs.length === 1 && fake().stats.billed.usd > 0);
    const record = fake().records[0]!;
    // The provider stopped well before its 400 tokens, and the guard charged what it sent.
    expect(record.clientClosed).toBe(true);
    expect(record.outputTokens).toBeLessThan(400);
    // No usage arrived: the guard charges its count of the text it received, which leans high,
    // never under what the provider billed for the tokens it sent.
    expect(costs[0]!.estimated).toBe(true);
    expect(costs[0]!.usd).toBeGreaterThanOrEqual(fake().stats.billed.usd);
    expect(costs[0]!.usd).toBeLessThan(fake().stats.billed.usd * 2);
    expect(guardedFetch.guard.status().limiter.running).toBe(0);
    // The slot is free: the next call goes at once.
    await expect(generateText({ model: provider.chat(GPT), prompt: 'again', maxOutputTokens: 5, maxRetries: 0 })).resolves.toBeDefined();
  });

  it('streamText: the text and the usage arrive, and the stream is charged what was billed', async () => {
    for (const make of [openai, anthropic]) {
      fake().reset();
      const { provider, costs } = make();
      const model = make === openai ? (provider as ReturnType<typeof openai>['provider']).chat(GPT) : (provider as ReturnType<typeof anthropic>['provider'])(CLAUDE);
      const result = streamText({ model, prompt: 'Hello there', maxOutputTokens: 50, maxRetries: 0 });
      let text = '';
      for await (const piece of result.textStream) text += piece;
      expect(text.length).toBeGreaterThan(0);
      expect((await result.usage).outputTokens).toBe(fake().records[0]!.outputTokens);
      expect(costs).toHaveLength(1);
      expect(costs[0]!.usd).toBeCloseTo(fake().stats.billed.usd, 12);
    }
  });

  it('embed: charged its input', async () => {
    const { provider, costs } = openai();
    const result = await embed({ model: provider.embedding('text-embedding-3-small'), value: 'a sentence to embed', maxRetries: 0 });
    expect(result.embedding.length).toBeGreaterThan(0);
    expect(costs).toHaveLength(1);
    expect(costs[0]!.usd).toBeCloseTo(fake().stats.billed.usd, 12);
    expect(costs[0]!.usd).toBeGreaterThan(0);
  });

  it("a user's budget refuses before anything is sent: the error is the guard's, and answers as HTTP 402", async () => {
    const { provider, fetch } = openai({ cost: { budgets: [{ scope: 'user', limitUsd: 0.0001 }], budgetWaitMs: 0 } });
    const alice = createOpenAI({ baseURL: fake().openaiBaseURL, apiKey: OPENAI_KEY, fetch: fetch.guard.withScope({ user: 'alice' }) });
    const error = await generateText({ model: alice.chat(GPT), prompt: 'Hello', maxOutputTokens: 1000, maxRetries: 0 }).catch((e: unknown) => e);
    expect(isGuardError(error)).toBe(true);
    expect(guardErrorToHttp(error).status).toBe(402);
    expect(fake().stats.requests).toBe(0);
    // The same through runWithScope (a web app's middleware), on the unscoped fetch.
    const again = await runWithScope({ user: 'alice' }, () => generateText({ model: provider.chat(GPT), prompt: 'Hello', maxOutputTokens: 1000, maxRetries: 0 })).catch((e: unknown) => e);
    expect(isGuardError(again)).toBe(true);
    expect(fake().stats.requests).toBe(0);
  });

  it('a stream past the per-call cap is cut: the AI SDK stream ends with the guard error, the partial is charged', async () => {
    // The provider counts 200,000 more input tokens than the guard estimated (as images do):
    // ~$0.6 of input, over the $0.10 cap once message_start reports it.
    fake().configure({ outputTokens: 400, tokenDelayMs: 2, extraInputTokens: 200_000 });
    const { provider, costs } = anthropic({ cost: { maxCostPerCallUsd: 0.1 } });
    const parts: string[] = [];
    const stream = streamText({ model: provider(CLAUDE), prompt: 'Hello', maxOutputTokens: 1000, maxRetries: 0, onError: () => {} });
    // The AI SDK ends the stream with its own APICallError, the guard's error as its cause.
    const error = await (async () => {
      for await (const part of stream.fullStream) parts.push(part.type);
    })().catch((e: unknown) => e);
    expect(isGuardError(error)).toBe(true);
    expect(guardErrorToHttp(error).status).toBe(402);
    expect((error as { cause?: unknown }).cause).toMatchObject({ stage: 'stream', scope: 'call' });
    expect(parts).not.toContain('finish'); // it did not finish as if nothing happened
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(400);
    expect(costs).toHaveLength(1);
    expect(costs[0]!.usd).toBeGreaterThanOrEqual(fake().stats.billed.usd - 1e-9);
  });

  it('a 429 storm is absorbed: every call served, the guard the only retry authority', async () => {
    fake().configure({ limits: { requestsPerMinute: 300 } });
    const { provider } = openai({ retry: { retries: 5, minDelayMs: 10, maxDelayMs: 200 } });
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => generateText({ model: provider.chat(GPT), prompt: 'Hello', maxOutputTokens: 20, maxRetries: 0 })));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(fake().stats.byStatus[200]).toBe(15);
  });

  it("retries: with the AI SDK's maxRetries 0 the provider sees the guard's attempts only (its default would multiply them)", async () => {
    const retry = { retries: 2, minDelayMs: 1, maxDelayMs: 5 };
    fake().fault({ status: 503 }, { times: 100 });
    const { provider } = openai({ retry, breaker: false });
    await expect(generateText({ model: provider.chat(GPT), prompt: 'Hello', maxOutputTokens: 20, maxRetries: 0 })).rejects.toBeDefined();
    expect(fake().stats.requests).toBe(3);
    // Left at its default (2), the AI SDK retries the guard's final answer: 3 × 3 attempts.
    fake().reset();
    fake().fault({ status: 503 }, { times: 100 });
    await expect(generateText({ model: provider.chat(GPT), prompt: 'Hello', maxOutputTokens: 20 })).rejects.toBeDefined();
    expect(fake().stats.requests).toBe(9);
  }, 30_000);
});
