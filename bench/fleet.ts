/**
 * Distributed mode as fleets start: three replica processes sharing one limit and one budget,
 * started together behind a barrier (how the earlier tests ran them), calling from their first
 * millisecond, started 0 / 0.7 / 1.4 s apart, and with one killed mid-run and started again.
 */
import { startFakeProvider } from '../lib/testing';
import { startRedis } from '../__tests__/support/redis';
import { runReplicas, startReplica, type ReplicaResult, type ReplicaSpec } from '../__tests__/support/replicas';
import { fmt, table } from './support';

const LIMIT_PER_MINUTE = 1800; // shared by the fleet
const PROVIDER_PER_MINUTE = 1920; // the provider's own: 32/s, a 1 s burst
const MODEL = 'claude-haiku-4-5';

type Scenario = 'synchronized (barrier)' | 'first millisecond' | 'staggered 0 / 0.7 / 1.4 s' | 'one killed at 3 s, restarted';
const SCENARIOS: Scenario[] = ['synchronized (barrier)', 'first millisecond', 'staggered 0 / 0.7 / 1.4 s', 'one killed at 3 s, restarted'];

/** Runs the three replicas as `scenario` says; the killed one's report is missing. */
async function fleet(scenario: Scenario, spec: ReplicaSpec): Promise<Array<ReplicaResult | undefined>> {
  switch (scenario) {
    case 'synchronized (barrier)':
      return runReplicas(3, { ...spec, barrier: true });
    case 'first millisecond':
      return runReplicas(3, spec);
    case 'staggered 0 / 0.7 / 1.4 s':
      return runReplicas(3, spec, [0, 700, 1400]);
    case 'one killed at 3 s, restarted': {
      const replicas = [startReplica(spec), startReplica(spec), startReplica(spec)];
      await new Promise((r) => setTimeout(r, 3000));
      replicas[1]!.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
      replicas.push(startReplica(spec));
      return Promise.all(replicas.map((r) => r.done));
    }
  }
}

export async function runFleet(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const redis = await startRedis();
  const rateRows: Array<Array<string | number>> = [];
  const budgetRows: Array<Array<string | number>> = [];
  try {
    for (const scenario of SCENARIOS) {
      const fake = await startFakeProvider({ limits: { requestsPerMinute: PROVIDER_PER_MINUTE }, outputTokens: 16, latencyMs: 20 });
      const reports = await fleet(scenario, {
        baseURL: fake.anthropicBaseURL,
        apiKey: 'sk-ant-bench',
        redisUrl: redis.url,
        options: { name: `fleet-${Date.now()}`, limits: { requestsPerMinute: LIMIT_PER_MINUTE, maxConcurrent: 20 }, cost: { budgets: [] } },
        calls: 80,
        ...(scenario.startsWith('one killed') ? { calls: 0, durationMs: 5000 } : {}),
        concurrency: 20,
        model: MODEL,
        maxTokens: 32,
      });
      const arrivals = fake.stats.arrivals;
      const spanMs = arrivals[arrivals.length - 1]! - arrivals[0]!;
      // The shared bucket starts empty: ideally every call after the first goes at the shared rate.
      const idealMs = ((arrivals.length - 1) / (LIMIT_PER_MINUTE / 60)) * 1000;
      const failed = reports.reduce((n, r) => n + (r ? Object.values(r.errors).reduce((a, b) => a + b, 0) : 0), 0);
      const limited = fake.stats.byStatus[429] ?? 0;
      rateRows.push([scenario, arrivals.length, fmt(spanMs / idealMs), limited, failed]);
      log(`  rate, ${scenario}: ${arrivals.length} calls in ${fmt(spanMs / 1000)} s (${fmt(spanMs / idealMs)}× ideal), ${limited} × 429, ${failed} failed`);
      await fake.close();
    }
    for (const scenario of SCENARIOS.slice(0, 3)) {
      // Each call costs about $0.005 (1,000 output tokens of claude-haiku-4-5): the budget fits ten.
      const budget = 0.05;
      const fake = await startFakeProvider({ outputTokens: 1000, latencyMs: 50 });
      const reports = await fleet(scenario, {
        baseURL: fake.anthropicBaseURL,
        apiKey: 'sk-ant-bench',
        redisUrl: redis.url,
        options: { name: `fleet-budget-${Date.now()}`, cost: { budgets: [{ scope: 'global', limitUsd: budget }] } },
        calls: 50,
        concurrency: 50,
        model: MODEL,
        maxTokens: 1000,
      });
      const charged = reports.reduce((n, r) => n + (r?.costUsd ?? 0), 0);
      const billed = fake.stats.billed.usd;
      budgetRows.push([scenario, fake.stats.requests, `$${fmt(billed, 4)}`, `${fmt((100 * billed) / budget, 0)}%`, `$${fmt(charged, 4)}`]);
      log(`  budget, ${scenario}: ${fake.stats.requests} sent, billed $${fmt(billed, 4)} of $${budget}`);
      await fake.close();
    }
  } finally {
    await redis.stop();
  }
  return {
    markdown:
      `Three replica processes (80 calls each, 20 at a time) sharing ${LIMIT_PER_MINUTE}/min through Redis, against a provider that allows ${PROVIDER_PER_MINUTE}/min (32/s, a 1 s burst; 20 ms per call); ` +
      'the killed-and-restarted fleet calls for 5 s per replica. Wall time is the provider’s first to last arrival, over the ideal at the shared rate.\n\n' +
      table(['start', 'calls', '× ideal', 'provider 429s', 'failed calls'], rateRows) +
      `\n\nThe same fleets (50 calls at once each, ~$0.005 a call) against one shared hard budget of $0.05.\n\n` +
      table(['start', 'calls sent', 'billed by the provider', 'of the budget', 'charged by the replicas'], budgetRows),
  };
}
