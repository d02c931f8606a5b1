import { ANTHROPIC_KEY, CLAUDE, useFakeProvider } from '../support/clients';
import { describeWithRedis, useRedisServer } from '../support/redis';
import { runReplicas } from '../support/replicas';

jest.setTimeout(60_000);

describeWithRedis('three processes sharing one guard through Redis', () => {
  const fake = useFakeProvider();
  const redis = useRedisServer();

  it('hold one 30 requests/s limit together: arrivals within ±5% of 30/s, no 429', async () => {
    fake().configure({ limits: { requestsPerMinute: 1800 } });
    const results = await runReplicas(3, {
      baseURL: fake().anthropicBaseURL,
      apiKey: ANTHROPIC_KEY,
      redisUrl: redis().url,
      options: { name: `rate-${Date.now()}`, limits: { requestsPerMinute: 1800, maxConcurrent: 20 }, cost: { budgets: [] } },
      calls: 70,
      concurrency: 20,
      model: CLAUDE,
      maxTokens: 32,
    });
    expect(results.map((r) => r.ok)).toEqual([70, 70, 70]);
    expect(fake().stats.byStatus[429]).toBeUndefined();
    // The steady rate, after the first second's burst.
    const arrivals = fake().stats.arrivals;
    const steady = arrivals.filter((t) => t >= arrivals[0]! + 1000);
    const perSecond = (steady.length - 1) / ((steady[steady.length - 1]! - steady[0]!) / 1000);
    expect(perSecond).toBeGreaterThanOrEqual(30 * 0.95);
    expect(perSecond).toBeLessThanOrEqual(30 * 1.05);
  });

  it('keep one hard budget: 3 × 50 concurrent calls are billed no more than it', async () => {
    const budget = 0.01;
    const results = await runReplicas(3, {
      baseURL: fake().anthropicBaseURL,
      apiKey: ANTHROPIC_KEY,
      redisUrl: redis().url,
      options: { name: `budget-${Date.now()}`, cost: { budgets: [{ scope: 'global', limitUsd: budget, window: '1h' }] } },
      calls: 50,
      concurrency: 50,
      model: CLAUDE,
      maxTokens: 64,
    });
    const ok = results.reduce((n, r) => n + r.ok, 0);
    const refused = results.reduce((n, r) => n + (r.errors.BudgetExceededError ?? 0), 0);
    expect(ok + refused).toBe(150);
    expect(refused).toBeGreaterThan(0);
    expect(fake().stats.requests).toBe(ok);
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(budget);
    // What the replicas charged is what the provider billed (nothing lost, nothing twice).
    expect(results.reduce((n, r) => n + r.costUsd, 0)).toBeCloseTo(fake().stats.billed.usd, 9);
  });
});
