import { Registry } from 'prom-client';
import { BudgetExceededError, createGuardedClient } from '../../lib';
import { CLAUDE, anthropicFor, hello, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();

/** One metric's value for the labels given (summed over the others). */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  // A histogram's series (`_count`, `_sum`, `_bucket`) live under the histogram's own name.
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name || name.startsWith(`${m.name}_`));
  if (!metric) throw new Error(`no metric ${name}`);
  return (metric.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>)
    .filter((v) => (v.metricName ?? metric.name) === name)
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

describe('Prometheus metrics (guard.metrics)', () => {
  it('counts calls, attempts, retries, 429s, tokens and dollars as the provider saw them', async () => {
    const registry = new Registry();
    const client = createGuardedClient(anthropicFor(fake()), {
      name: 'chat',
      retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 },
      cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1h' }, { scope: 'user', limitUsd: 0.0001, window: '1h' }] },
    });
    expect(client.guard.metrics(registry)).toBe(registry);
    client.guard.metrics(registry); // idempotent
    fake().fault({ status: 429, headers: { 'retry-after': '0' } });
    await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    await client.messages.create({ model: CLAUDE, max_tokens: 32, messages: hello });
    await expect(client.guard.withScope({ user: 'alice-4f2a' }).messages.create({ model: CLAUDE, max_tokens: 32, messages: hello })).rejects.toBeInstanceOf(BudgetExceededError);

    expect(await value(registry, 'guarded_llm_requests_total', { guard: 'chat', outcome: 'success', model: CLAUDE })).toBe(2);
    expect(await value(registry, 'guarded_llm_requests_total', { outcome: 'budget_exceeded' })).toBe(1);
    expect(await value(registry, 'guarded_llm_attempts_total')).toBe(3);
    expect(await value(registry, 'guarded_llm_retries_total')).toBe(1);
    expect(await value(registry, 'guarded_llm_provider_429_total')).toBe(1);
    expect(await value(registry, 'guarded_llm_tokens_total', { direction: 'input' })).toBe(fake().stats.billed.inputTokens);
    expect(await value(registry, 'guarded_llm_tokens_total', { direction: 'output' })).toBe(fake().stats.billed.outputTokens);
    expect(await value(registry, 'guarded_llm_cost_usd_total')).toBeCloseTo(fake().stats.billed.usd, 12);
    expect(await value(registry, 'guarded_llm_budget_exceeded_total', { stage: 'pre-call', scope: 'user' })).toBe(1);
    expect(await value(registry, 'guarded_llm_breaker_state', { guard: 'chat' })).toBe(0);
    expect(await value(registry, 'guarded_llm_budget_remaining_usd', { guard: 'chat', window: '1h' })).toBeCloseTo(1 - fake().stats.billed.usd, 9);
    expect(await value(registry, 'guarded_llm_request_duration_seconds_count', { outcome: 'success' })).toBe(2);
    // Bounded labels: no user id anywhere.
    expect(await registry.metrics()).not.toContain('alice-4f2a');
    await client.guard.close();
  });

  it('registered after some calls, the counters include everything since the guard was created', async () => {
    const registry = new Registry();
    const client = createGuardedClient(anthropicFor(fake()), { name: 'late', retry: { retries: 2, minDelayMs: 1, maxDelayMs: 5 } });
    fake().fault({ status: 429, headers: { 'retry-after': '0' } });
    for (let i = 0; i < 3; i++) await client.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello });
    client.guard.metrics(registry); // lazily, after the first calls
    await client.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello });
    expect(await value(registry, 'guarded_llm_requests_total', { guard: 'late', outcome: 'success' })).toBe(4);
    expect(await value(registry, 'guarded_llm_attempts_total', { guard: 'late' })).toBe(5);
    expect(await value(registry, 'guarded_llm_retries_total', { guard: 'late' })).toBe(1);
    expect(await value(registry, 'guarded_llm_provider_429_total', { guard: 'late' })).toBe(1);
    expect(await value(registry, 'guarded_llm_tokens_total', { guard: 'late', direction: 'output' })).toBe(fake().stats.billed.outputTokens);
    expect(await value(registry, 'guarded_llm_cost_usd_total', { guard: 'late' })).toBeCloseTo(fake().stats.billed.usd, 12);
    // Scraped twice, counters do not double.
    expect(await value(registry, 'guarded_llm_requests_total', { guard: 'late' })).toBe(4);
    await client.guard.close();
  });

  it('several guards share one registry, told apart by the guard label; close() stops counting', async () => {
    const registry = new Registry();
    const a = createGuardedClient(anthropicFor(fake()), { name: 'a' });
    const b = createGuardedClient(anthropicFor(fake()), { name: 'b' });
    a.guard.metrics(registry);
    b.guard.metrics(registry);
    await a.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello });
    await b.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello });
    await b.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello });
    expect(await value(registry, 'guarded_llm_requests_total', { guard: 'a' })).toBe(1);
    expect(await value(registry, 'guarded_llm_requests_total', { guard: 'b' })).toBe(2);
    await a.guard.close();
    await b.guard.close();
    expect((await registry.metrics()).includes('guarded_llm_in_flight{guard="a"')).toBe(false);
  });

  it('caps the model label: past 50 distinct models they count as "other"', async () => {
    const registry = new Registry();
    const client = createGuardedClient(anthropicFor(fake()), { cost: { unpricedModel: 'allow' }, logLevel: 'silent' });
    client.guard.metrics(registry);
    await Promise.all(Array.from({ length: 55 }, (_, i) => client.messages.create({ model: `model-${i}`, max_tokens: 8, messages: hello })));
    const models = new Set(((await registry.getMetricsAsJSON()).find((m) => m.name === 'guarded_llm_requests_total')!.values as unknown as Array<{ labels: { model: string } }>).map((v) => v.labels.model));
    expect(models.size).toBe(51);
    expect(models.has('other')).toBe(true);
    await client.guard.close();
  });
});
