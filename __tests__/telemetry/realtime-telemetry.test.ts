import OpenAI from 'openai';
import { Registry } from 'prom-client';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createGuardedClient } from '../../lib';
import { startFakeRealtime, type FakeRealtime } from '../../lib/testing';
import { openSession, respond } from '../support/realtime';

const exporter = new InMemorySpanExporter();
let fake: FakeRealtime;

beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
afterAll(() => {
  trace.disable();
});
beforeEach(async () => {
  exporter.reset();
  fake = await startFakeRealtime({ outputTokens: 50, audioPerToken: 2, tokenDelayMs: 1 });
});
afterEach(() => fake.close());

const value = async (registry: Registry, name: string, labels: Record<string, string> = {}) => {
  // A histogram's _count and _sum are values of the histogram, named by metricName.
  const values = (await registry.getMetricsAsJSON()).flatMap((m) => m.values.map((v) => ({ ...v, name: (v as { metricName?: string }).metricName ?? m.name })));
  return values.find((v) => v.name === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
};

test('Realtime sessions in metrics (active gauge, cost, duration) and one span per session', async () => {
  const client = createGuardedClient(new OpenAI({ apiKey: 'sk-test', baseURL: fake.openaiBaseURL }), { name: 'voice', logLevel: 'silent', realtime: { maxSessionUsd: 0.01 } });
  const registry = new Registry();
  client.guard.metrics(registry);
  const { rt, closed } = await openSession(fake, client);
  expect(await value(registry, 'guarded_llm_realtime_sessions_active', { guard: 'voice' })).toBe(1);
  for (let i = 0; i < 5; i++) if ((await respond(rt)) === 'closed') break;
  await closed;
  expect(await value(registry, 'guarded_llm_realtime_sessions_active', { guard: 'voice' })).toBe(0);
  expect(await value(registry, 'guarded_llm_realtime_session_duration_seconds_count', { guard: 'voice', reason: 'session-cap' })).toBe(1);
  expect(await value(registry, 'guarded_llm_realtime_session_cost_usd_sum', { guard: 'voice', reason: 'session-cap' })).toBeCloseTo(fake.stats.billedUsd, 12);
  expect(await value(registry, 'guarded_llm_cost_usd_total', { guard: 'voice', model: 'gpt-realtime' })).toBeCloseTo(fake.stats.billedUsd, 12);
  const span = exporter.getFinishedSpans().find((s) => s.name === 'realtime gpt-realtime')!;
  expect(span.attributes).toMatchObject({ 'gen_ai.operation.name': 'realtime', 'gen_ai.request.model': 'gpt-realtime', 'guarded_llm.guard.name': 'voice', 'guarded_llm.realtime.end_reason': 'session-cap' });
  expect(span.attributes['guarded_llm.cost_usd']).toBeCloseTo(fake.stats.billedUsd, 12);
  await client.guard.close();
});
