import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { createGuardedFetch, guardErrorToHttp, isGuardError, type GuardEventMap, type GuardOptions } from '../../lib';
import { ANTHROPIC_KEY, CLAUDE, GPT, OPENAI_KEY, useFakeProvider } from '../support/clients';
import { until } from '../support/arrivals';

const fake = useFakeProvider();
const made: Array<{ guard: { close(): Promise<void> } }> = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((f) => f.guard.close()));
});

function guarded(provider: 'openai' | 'anthropic', options: GuardOptions = {}) {
  const guardedFetch = createGuardedFetch(provider, { logLevel: 'silent', ...options });
  made.push(guardedFetch);
  const costs: Array<GuardEventMap['cost']> = [];
  guardedFetch.guard.on('cost', (e) => costs.push(e));
  return { fetch: guardedFetch, costs };
}

/** LangChain's ChatOpenAI on a guarded fetch, its own retries off (the guard retries). */
const chatOpenAI = (fetch: typeof globalThis.fetch, extra: Record<string, unknown> = {}) =>
  new ChatOpenAI({ model: GPT, apiKey: OPENAI_KEY, maxRetries: 0, maxTokens: 50, configuration: { baseURL: fake().openaiBaseURL, fetch }, ...extra });
const chatAnthropic = (fetch: typeof globalThis.fetch, extra: Record<string, unknown> = {}) =>
  new ChatAnthropic({ model: CLAUDE, apiKey: ANTHROPIC_KEY, maxRetries: 0, maxTokens: 50, anthropicApiUrl: fake().anthropicBaseURL, clientOptions: { fetch }, ...extra });

describe('LangChain.js on createGuardedFetch', () => {
  it('ChatOpenAI and ChatAnthropic invoke: the answer, charged what the provider billed', async () => {
    const o = guarded('openai');
    const reply = await chatOpenAI(o.fetch).invoke('Hello there');
    expect(String(reply.content).length).toBeGreaterThan(0);
    expect(o.costs).toHaveLength(1);
    expect(o.costs[0]!.usd).toBeCloseTo(fake().stats.billed.usd, 12);
    fake().reset();
    const a = guarded('anthropic');
    const answer = await chatAnthropic(a.fetch).invoke('Hello there');
    expect(String(answer.content).length).toBeGreaterThan(0);
    expect(a.costs[0]!.usd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  it('stream: the chunks arrive and the stream is charged what was billed', async () => {
    for (const [provider, make] of [['openai', chatOpenAI], ['anthropic', chatAnthropic]] as const) {
      fake().reset();
      const g = guarded(provider);
      let text = '';
      for await (const chunk of await make(g.fetch).stream('Hello there')) text += String(chunk.content);
      expect(text.length).toBeGreaterThan(0);
      await fake().idle();
      expect(g.costs).toHaveLength(1);
      expect(g.costs[0]!.usd).toBeCloseTo(fake().stats.billed.usd, 12);
    }
  });

  it('a stream cancelled by its signal mid-way: the provider stops, the charge is never under what it billed, the slot is free', async () => {
    fake().configure({ outputTokens: 400, tokenDelayMs: 5 });
    const g = guarded('openai', { limits: { maxConcurrent: 1 } });
    const controller = new AbortController();
    let chunks = 0;
    const read = async () => {
      for await (const _chunk of await chatOpenAI(g.fetch, { maxTokens: 1000 }).stream('Hello there', { signal: controller.signal })) if (++chunks === 20) controller.abort();
    };
    await expect(read()).rejects.toThrow();
    expect(chunks).toBe(20);
    await until(() => g.costs.length === 1 && fake().stats.billed.usd > 0);
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(400);
    expect(g.costs[0]!.usd).toBeGreaterThanOrEqual(fake().stats.billed.usd);
    expect(g.costs[0]!.usd).toBeLessThan(fake().stats.billed.usd * 2);
    expect(g.fetch.guard.status().limiter.running).toBe(0);
    await expect(chatOpenAI(g.fetch).invoke('again')).resolves.toBeDefined();
  });

  it("a user's budget refuses before anything is sent, recognisably through LangChain's error wrapping", async () => {
    const g = guarded('openai', { cost: { budgets: [{ scope: 'user', limitUsd: 0.0001 }], budgetWaitMs: 0 } });
    const error = await chatOpenAI(g.fetch.guard.withScope({ user: 'alice' }), { maxTokens: 1000 }).invoke('Hello').catch((e: unknown) => e);
    expect(isGuardError(error)).toBe(true);
    expect(guardErrorToHttp(error).status).toBe(402);
    expect(fake().stats.requests).toBe(0);
  });

  it('a stream past the per-call cap is cut: the stream throws the guard error, the partial is charged', async () => {
    fake().configure({ outputTokens: 400, tokenDelayMs: 2, extraInputTokens: 200_000 });
    const g = guarded('anthropic', { cost: { maxCostPerCallUsd: 0.1 } });
    const chunks: unknown[] = [];
    const error = await (async () => {
      for await (const chunk of await chatAnthropic(g.fetch, { maxTokens: 1000 }).stream('Hello')) chunks.push(chunk);
    })().catch((e: unknown) => e);
    expect(isGuardError(error)).toBe(true);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(400);
    expect(g.costs).toHaveLength(1);
    expect(g.costs[0]!.usd).toBeGreaterThanOrEqual(fake().stats.billed.usd - 1e-9);
  });

  it('a 429 storm is absorbed: every call served', async () => {
    fake().configure({ limits: { requestsPerMinute: 300 } });
    const g = guarded('openai', { retry: { retries: 5, minDelayMs: 10, maxDelayMs: 200 } });
    const model = chatOpenAI(g.fetch, { maxTokens: 20 });
    const results = await Promise.allSettled(Array.from({ length: 15 }, () => model.invoke('Hello')));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(fake().stats.byStatus[200]).toBe(15);
  });

  it("retries: with LangChain's maxRetries 0 the provider sees the guard's attempts only", async () => {
    fake().fault({ status: 503 }, { times: 100 });
    const g = guarded('openai', { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 }, breaker: false });
    await expect(chatOpenAI(g.fetch).invoke('Hello')).rejects.toBeDefined();
    expect(fake().stats.requests).toBe(3);
  });
});
