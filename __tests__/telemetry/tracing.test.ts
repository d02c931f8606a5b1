import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BudgetExceededError, createGuardedClient } from '../../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();
const exporter = new InMemorySpanExporter();

beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
afterAll(() => {
  trace.disable();
});
beforeEach(() => exporter.reset());

describe('OpenTelemetry traces', () => {
  it('one span per call with the GenAI attributes, and a child span per attempt', async () => {
    fake().fault({ status: 529 });
    const client = createGuardedClient(anthropicFor(fake()), { name: 'chat', retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 } });
    await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    const spans = exporter.getFinishedSpans();
    const call = spans.find((s) => s.name === `chat ${CLAUDE}`)!;
    expect(call).toBeDefined();
    expect(call.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.system': 'anthropic',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': CLAUDE,
      'gen_ai.request.max_tokens': 32,
      'gen_ai.usage.input_tokens': fake().stats.billed.inputTokens,
      'gen_ai.usage.output_tokens': fake().stats.billed.outputTokens,
      'guarded_llm.guard.name': 'chat',
      'guarded_llm.attempts': 2,
      'guarded_llm.budget.decision': 'allowed',
      'guarded_llm.breaker.state': 'closed',
    });
    expect(call.attributes['guarded_llm.cost_usd']).toBeCloseTo(fake().stats.billed.usd, 12);
    const attempts = spans.filter((s) => s.name.startsWith('attempt '));
    expect(attempts.map((s) => s.attributes['http.response.status_code'])).toEqual([529, 200]);
    for (const a of attempts) expect(a.parentSpanContext?.spanId).toBe(call.spanContext().spanId);
    await client.guard.close();
  });

  it('a budget refusal is an error span that says so; nothing was attempted', async () => {
    const client = createGuardedClient(openaiFor(fake()), { cost: { maxCostPerCallUsd: 0.000001 } });
    await expect(client.chat.completions.create({ model: GPT, max_tokens: 1000, messages: hello })).rejects.toBeInstanceOf(BudgetExceededError);
    const [span] = exporter.getFinishedSpans();
    expect(span!.name).toBe(`chat ${GPT}`);
    expect(span!.attributes).toMatchObject({ 'guarded_llm.budget.decision': 'refused', 'guarded_llm.attempts': 0, 'error.type': 'BudgetExceededError' });
    expect(span!.status.code).toBe(2); // ERROR
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    await client.guard.close();
  });

  it('a stream span ends when the stream does, with its usage', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const stream = await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello, stream: true });
    expect(exporter.getFinishedSpans().filter((s) => s.name.startsWith('chat'))).toHaveLength(0);
    for await (const _event of stream) void _event;
    const call = exporter.getFinishedSpans().find((s) => s.name.startsWith('chat'))!;
    expect(call.attributes['gen_ai.usage.output_tokens']).toBe(fake().stats.billed.outputTokens);
    expect(call.attributes['guarded_llm.stream']).toBe(true);
    await client.guard.close();
  });
});
