import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { createGuardedClient, isGuardError, type GuardEventName, type Logger } from '../lib';
import { ANTHROPIC_KEY, CLAUDE, GPT, OPENAI_KEY, anthropicFor, hello, openaiFor, useFakeProvider } from './support/clients';

const fake = useFakeProvider();
const EVENTS: GuardEventName[] = ['request', 'response', 'retry', 'rate-limited', 'breaker', 'cost', 'budget:warning', 'budget:exceeded', 'stream:aborted', 'adjusted', 'warning', 'redis'];
const REDIS_PASSWORD = 'redis-pass-9d8c7b';

describe('an API key never appears in any output', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })));
  afterAll(() => trace.disable());

  it('not in log lines, event payloads, error messages, metrics, status or traces', async () => {
    const outputs: string[] = [];
    const logger: Logger = {
      debug: (f, m) => outputs.push(m, JSON.stringify(f)),
      info: (f, m) => outputs.push(m, JSON.stringify(f)),
      warn: (f, m) => outputs.push(m, JSON.stringify(f)),
      error: (f, m) => outputs.push(m, JSON.stringify(f)),
    };
    const registry = new Registry();
    const options = {
      logger,
      retry: { retries: 1, minDelayMs: 1, maxDelayMs: 2 },
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50 },
      limits: { maxQueue: 0, maxConcurrent: 1 },
      // A Redis URL with a password, to an address where nothing answers (the fallback is used).
      redis: `redis://app:${REDIS_PASSWORD}@127.0.0.1:1`,
      cost: { maxCostPerCallUsd: 0.05, unpricedModel: 'conservative' as const, budgets: [{ scope: 'user' as const, limitUsd: 0.0002, warnAt: 0.1 }] },
    };
    const clients = [createGuardedClient(anthropicFor(fake()), { ...options, name: 'a' }), createGuardedClient(openaiFor(fake()), { ...options, name: 'o' })];
    for (const client of clients) {
      for (const event of EVENTS) client.guard.on(event, (payload) => outputs.push(JSON.stringify(payload)));
      client.guard.metrics(registry);
    }
    const record = (error: unknown) => {
      outputs.push(String(error), (error as Error)?.stack ?? '', JSON.stringify(error), isGuardError(error) ? JSON.stringify(error.toJSON()) : '');
      const cause = (error as { cause?: unknown })?.cause;
      if (cause) outputs.push(String(cause), JSON.stringify(cause));
    };
    const [anthropic, openai] = clients as [ReturnType<typeof createGuardedClient<ReturnType<typeof anthropicFor>>>, ReturnType<typeof createGuardedClient<ReturnType<typeof openaiFor>>>];
    const calls: Array<() => Promise<unknown>> = [
      () => anthropic.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }),
      () => openai.chat.completions.create({ model: GPT, max_tokens: 16, messages: hello }),
      async () => {
        const s = await anthropic.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello, stream: true });
        for await (const _e of s) void _e;
      },
      () => anthropic.guard.withScope({ user: 'u1' }).messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }),
      () => anthropic.guard.withScope({ user: 'u1' }).messages.create({ model: CLAUDE, max_tokens: 4000, messages: hello }), // budget refusal
      () => openai.chat.completions.create({ model: 'my-own-finetune', max_tokens: 16, messages: hello }), // unpriced
      () => anthropic.messages.create({ model: CLAUDE, max_tokens: 100_000, messages: hello }), // over the per-call cap
      () => Promise.all([1, 2].map(() => openai.chat.completions.create({ model: GPT, max_tokens: 16, messages: hello }))), // queue full
    ];
    for (const call of calls) await call().catch(record);
    fake().fault({ status: 429, headers: { 'retry-after': '0' } });
    await anthropic.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }).catch(record);
    fake().fault({ status: 500 }, { times: 20 });
    for (let i = 0; i < 4; i++) await openai.chat.completions.create({ model: GPT, max_tokens: 16, messages: hello }).catch(record); // opens the breaker
    fake().fault({ status: 401, body: { error: { type: 'authentication_error', message: 'invalid x-api-key' } } });
    await anthropic.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }).catch(record);

    outputs.push(await registry.metrics());
    for (const client of clients) outputs.push(JSON.stringify(client.guard.status()));
    for (const span of exporter.getFinishedSpans()) outputs.push(span.name, JSON.stringify(span.attributes));

    // The run produced real output of every kind this test scans.
    const all = outputs.join('\n');
    for (const expected of ['budget_exceeded', 'circuit_open', 'rate_limited', '"attempt":2', 'guarded_llm_requests_total', 'gen_ai.request.model', 'redis://***@127.0.0.1:1']) {
      expect(all).toContain(expected);
    }
    for (const secret of [ANTHROPIC_KEY, OPENAI_KEY, REDIS_PASSWORD]) expect(all).not.toContain(secret);
    await Promise.all(clients.map((c) => c.guard.close()));
  });
});
