/**
 * Priority lanes and fair share, side by side with first come, first served: how long calls of
 * each lane and each tenant wait in the guard's queue (p50/p99 of the `response` event's
 * queuedMs) when a flood of background or one tenant's calls saturates the limiter.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient, type GuardOptions } from '../lib';
import { startFakeProvider } from '../lib/testing';
import { fmt, percentile, table } from './support';

type Guarded = ReturnType<typeof createGuardedClient<Anthropic>>;
const messages = [{ role: 'user' as const, content: 'Hello' }];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Waits {
  /** queuedMs of each finished call, by the label its scope mapped to. */
  byLabel: Map<string, number[]>;
  /** When the last call of each label ended (ms since the flood started). */
  lastEndMs: Map<string, number>;
}

async function run(options: GuardOptions, latencyMs: number, plan: (client: Guarded, started: number, waits: Waits) => Promise<unknown>, label: (scope: Record<string, unknown>) => string): Promise<Waits> {
  const fake = await startFakeProvider({ latencyMs, outputTokens: 4 });
  const client = createGuardedClient(new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, maxRetries: 0 }), { logLevel: 'silent', ...options });
  // Warm connections and code first: the flood should meet a running client, not a cold one.
  await Promise.all(Array.from({ length: 8 }, () => client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 8, messages })));
  const waits: Waits = { byLabel: new Map(), lastEndMs: new Map() };
  const started = performance.now();
  client.guard.on('response', (e) => {
    const key = label(e.scope as Record<string, unknown>);
    (waits.byLabel.get(key) ?? waits.byLabel.set(key, []).get(key)!).push(e.queuedMs);
    waits.lastEndMs.set(key, performance.now() - started);
  });
  await plan(client, started, waits);
  await client.guard.close();
  await fake.close();
  return waits;
}

const call = (client: Guarded, scope: Parameters<Guarded['guard']['withScope']>[0]) => client.guard.withScope(scope).messages.create({ model: 'claude-haiku-4-5', max_tokens: 8, messages });

/** 300 low calls saturate 4 slots; 100 ms later 10 high and 30 normal ones arrive. */
async function priorityScenario(lanes: boolean): Promise<Waits> {
  return run(
    { limits: { maxConcurrent: 4 } },
    20,
    async (client) => {
      const low = Array.from({ length: 300 }, () => call(client, lanes ? { priority: 'low', workflow: 'low' } : { workflow: 'low' }));
      await sleep(100);
      const high = Array.from({ length: 10 }, () => call(client, lanes ? { priority: 'high', workflow: 'high' } : { workflow: 'high' }));
      const normal = Array.from({ length: 30 }, () => call(client, { workflow: 'normal' }));
      await Promise.all([...low, ...high, ...normal]);
    },
    (scope) => String(scope.workflow),
  );
}

/** Tenant A fires 600 calls; 50 ms later tenant B fires 20; 4 slots. */
async function fairnessScenario(fairShare: 'tenant' | 'none'): Promise<Waits> {
  return run(
    { limits: { maxConcurrent: 4, fairShare } },
    10,
    async (client) => {
      const a = Array.from({ length: 600 }, () => call(client, { tenant: 'A' }));
      await sleep(50);
      const b = Array.from({ length: 20 }, () => call(client, { tenant: 'B' }));
      await Promise.all([...a, ...b]);
    },
    (scope) => String(scope.tenant),
  );
}

export async function runPriority(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const rows: Array<Array<string | number>> = [];
  const add = (scenario: string, mode: string, waits: Waits, labels: string[]) => {
    for (const l of labels) {
      const w = waits.byLabel.get(l) ?? [];
      const row = [scenario, mode, l, w.length, `${fmt(percentile(w, 50), 0)} ms`, `${fmt(percentile(w, 99), 0)} ms`, `${fmt(waits.lastEndMs.get(l) ?? NaN, 0)} ms`];
      rows.push(row);
      log(`  ${row.join('  ')}`);
    }
  };
  await fairnessScenario('none'); // discarded: the first run in a process is the coldest
  for (const lanes of [false, true]) add('300 low, then 10 high + 30 normal; 4 slots, 20 ms latency', lanes ? 'scope.priority' : 'no priority (FIFO)', await priorityScenario(lanes), ['high', 'normal', 'low']);
  for (const share of ['none', 'tenant'] as const) add('tenant A 600 calls, then B 20; 4 slots, 10 ms latency', `fairShare '${share}'`, await fairnessScenario(share), ['B', 'A']);
  const markdown = [
    table(['scenario', 'mode', 'lane / tenant', 'calls', 'queue wait p50', 'queue wait p99', 'last call ended at'], rows),
    '',
    'Queue wait is the `response` event’s `queuedMs` (time from the call to its slot). “Last call ended at” counts from the start of the flood.',
  ].join('\n');
  return { markdown };
}
