import { calcPrice } from '@pydantic/genai-prices';
import { ANTHROPIC_KEY, CLAUDE, useFakeProvider } from '../support/clients';
import { describeWithRedis, useRedisServer } from '../support/redis';
import { runReplicas, startReplica, type ReplicaSpec } from '../support/replicas';
import { maxInWindowAfter, steadyRate } from '../support/arrivals';

jest.setTimeout(90_000);

const HAIKU = 'claude-haiku-4-5';

/**
 * Replica processes started the way a fleet starts them: each calls from its first millisecond
 * (no barrier, no wait for Redis), one after another, some later than others, one killed.
 */
describeWithRedis('replica processes sharing one guard through Redis', () => {
  const fake = useFakeProvider();
  const redis = useRedisServer();

  const spec = (name: string, extra: Partial<ReplicaSpec> = {}): ReplicaSpec => ({
    baseURL: fake().anthropicBaseURL,
    apiKey: ANTHROPIC_KEY,
    redisUrl: redis().url,
    options: { name: `${name}-${Date.now()}`, limits: { requestsPerMinute: 1800, maxConcurrent: 20 }, cost: { budgets: [] } },
    calls: 70,
    concurrency: 20,
    model: CLAUDE,
    maxTokens: 32,
    ...extra,
  });

  it('calling from their first millisecond, hold one 30/s limit together: ±5% of it, no 429', async () => {
    // The provider allows a little more (32/s, a 1 s burst) than the limit the fleet shares.
    fake().configure({ limits: { requestsPerMinute: 1920 } });
    const results = await runReplicas(3, spec('rate'));
    expect(results.map((r) => r.ok)).toEqual([70, 70, 70]);
    expect(fake().stats.byStatus[429]).toBeUndefined();
    const rate = steadyRate(fake().stats.arrivals, 1000);
    expect(rate).toBeGreaterThanOrEqual(30 * 0.95);
    expect(rate).toBeLessThanOrEqual(30 * 1.05);
  });

  it('calling from their first millisecond, keep one hard budget: billed no more than it, each call charged once', async () => {
    fake().configure({ limits: { requestsPerMinute: 1920 } });
    const budget = 0.01;
    const results = await runReplicas(3, spec('budget', { calls: 50, concurrency: 50, options: { name: `budget-${Date.now()}`, limits: { requestsPerMinute: 1800 }, cost: { budgets: [{ scope: 'global', limitUsd: budget, window: '1h' }], budgetWaitMs: 0 } } }));
    const ok = results.reduce((n, r) => n + r.ok, 0);
    const refused = results.reduce((n, r) => n + (r.errors.BudgetExceededError ?? 0), 0);
    expect(ok + refused).toBe(150);
    expect(refused).toBeGreaterThan(0);
    expect(fake().stats.byStatus[429]).toBeUndefined();
    expect(fake().stats.requests).toBe(ok);
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(budget);
    // What the replicas charged is what the provider billed (nothing lost, nothing twice).
    expect(results.reduce((n, r) => n + r.costUsd, 0)).toBeCloseTo(fake().stats.billed.usd, 9);
  });

  it('a budget that fits 5 worst cases serves 30 calls across three replicas that cost a tenth of it: none refused, billed within it', async () => {
    fake().configure({ latencyMs: 80, outputTokens: 16 });
    // Worst case of one call: at most 20 input tokens + 160 output (it uses 16 of them).
    const worst = calcPrice({ input_tokens: 20, output_tokens: 160 }, HAIKU, { providerId: 'anthropic' })!.total_price;
    const budget = 5 * worst;
    const results = await runReplicas(3, spec('wait', { calls: 10, concurrency: 10, model: HAIKU, maxTokens: 160, options: { name: `wait-${Date.now()}`, cost: { budgets: [{ scope: 'global', limitUsd: budget }] } } }));
    expect(results.map((r) => r.errors)).toEqual([{}, {}, {}]);
    expect(fake().stats.requests).toBe(30);
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(budget);
    // Never more in flight than the budget's worst cases allow.
    expect(fake().stats.maxInFlight).toBeLessThanOrEqual(6);
    expect(results.reduce((n, r) => n + r.costUsd, 0)).toBeCloseTo(fake().stats.billed.usd, 9);
  });

  it('a token quota shared by three replicas holds: billed tokens within it, each charged once', async () => {
    const quota = 600;
    const results = await runReplicas(3, spec('quota', { calls: 20, concurrency: 10, options: { name: `quota-${Date.now()}`, cost: { budgets: [{ scope: 'global', limitTokens: quota, window: 'calendar-day' }] } } }));
    const ok = results.reduce((n, r) => n + r.ok, 0);
    expect(ok + results.reduce((n, r) => n + (r.errors.BudgetExceededError ?? 0), 0)).toBe(60);
    expect(ok).toBeGreaterThan(10);
    const billedTokens = fake().stats.billed.inputTokens + fake().stats.billed.outputTokens;
    expect(billedTokens).toBeLessThanOrEqual(quota);
    expect(fake().stats.requests).toBe(ok);
  });

  it('started 0–2 s apart, one killed mid-run and started again: the shared rate holds (±5%, no 429)', async () => {
    fake().configure({ limits: { requestsPerMinute: 1920 }, latencyMs: 20 });
    const delays = [0, Math.random() * 2000, Math.random() * 2000].sort((a, b) => a - b);
    const long = spec('restart', { calls: 0, durationMs: 7000 });
    const t0 = performance.now();
    const replicas = [];
    for (const delay of delays) {
      await new Promise((r) => setTimeout(r, Math.max(0, delay - (performance.now() - t0))));
      replicas.push(startReplica(long));
    }
    await new Promise((r) => setTimeout(r, 3500 - (performance.now() - t0)));
    replicas[1]!.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    const again = startReplica({ ...long, durationMs: 3500 });
    const reports = await Promise.all([...replicas.map((r) => r.done), again.done]);
    expect(reports[1]).toBeUndefined(); // killed before it could report
    expect(reports.filter((r) => r !== undefined).every((r) => Object.keys(r!.errors).length === 0)).toBe(true);
    expect({ delays: delays.map(Math.round), provider429s: fake().stats.byStatus[429] ?? 0 }).toEqual({ delays: delays.map(Math.round), provider429s: 0 });
    const arrivals = fake().stats.arrivals;
    // From the first second to the last replica's end: one rate, whoever is running.
    const rate = steadyRate(arrivals, 1000);
    expect(rate).toBeGreaterThanOrEqual(30 * 0.95);
    expect(rate).toBeLessThanOrEqual(30 * 1.05);
    // No burst when a replica joins or comes back: a join that refilled or reset the shared bucket
    // would let its whole burst (~27) through on top of a second's refill (~29): 56 in a second.
    // Heartbeats and pub/sub on a busy host bunch a few; half the burst is the room for that.
    expect(maxInWindowAfter(arrivals, 1000, 1000)).toBeLessThanOrEqual(30 + 14);
  });

  it("one user's 10 per minute is 10 per minute for the fleet: the rest refused with a Retry-After", async () => {
    const results = await runReplicas(
      3,
      spec('per-user', {
        calls: 8,
        concurrency: 4,
        scope: { user: 'alice' },
        options: { name: `per-user-${Date.now()}`, limits: { maxWaitMs: 1000, perScope: { user: { requestsPerMinute: 10 } } }, cost: { budgets: [] } },
      }),
    );
    expect(results.reduce((n, r) => n + r.ok, 0)).toBe(10);
    expect(fake().stats.requests).toBe(10);
    const refusals = results.flatMap((r) => r.retryAfterMs);
    expect(results.reduce((n, r) => n + (r.errors.RateLimitExceededError ?? 0), 0)).toBe(14);
    expect(refusals).toHaveLength(14);
    // The 11th comes due 6 s after the first (10 a minute), less the time already gone.
    for (const ms of refusals) {
      expect(ms).toBeGreaterThan(1000);
      expect(ms).toBeLessThanOrEqual(6000);
    }
  });
});
