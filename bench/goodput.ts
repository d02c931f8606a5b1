/**
 * Goodput: N requests fired at once at a provider limited to R requests/s (or T tokens/s);
 * wall time ÷ ideal time, 429s the provider sent, calls that failed — for the raw SDK (default
 * retries, and 10), a p-queue + p-retry wrapper built like LangChain's AsyncCaller, and the guard
 * (limits set to the provider's; adaptive with none set).
 */
import OpenAI from 'openai';
import PQueue from 'p-queue';
import pRetry from 'p-retry';
import { createGuardedClient } from '../lib';
import { startFakeProvider, type FakeProvider } from '../lib/testing';
import { fmt, settleAll, table } from './support';

type Call = (client: OpenAI, i: number) => Promise<unknown>;

interface Scenario {
  name: string;
  /** Provider limits (per minute) and how the ideal time follows from them. */
  limits: { requestsPerMinute?: number; tokensPerMinute?: number };
  n: number;
  call: Call;
  idealMs: () => number;
  /** Guard limits equal to the provider's. */
  guardLimits: { requestsPerMinute?: number; tokensPerMinute?: number };
}

interface Contender {
  name: string;
  run: (fake: FakeProvider, scenario: Scenario) => Promise<{ ok: number; failed: number; errors: Record<string, number> }>;
}

const LATENCY_MS = 50;
const messages = [{ role: 'user' as const, content: 'Summarise the following text in one line.' }];

function raw(fake: FakeProvider, maxRetries: number): OpenAI {
  return new OpenAI({ apiKey: `sk-bench-${Math.random()}`, baseURL: fake.openaiBaseURL, maxRetries });
}

const contenders: Contender[] = [
  {
    name: 'raw SDK, default retries (2)',
    run: (fake, s) => {
      const client = raw(fake, 2);
      return settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
    },
  },
  {
    name: 'raw SDK, maxRetries 10',
    run: (fake, s) => {
      const client = raw(fake, 10);
      return settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
    },
  },
  {
    // LangChain's AsyncCaller: p-queue (concurrency Infinity by default) around p-retry (6 retries,
    // randomized exponential backoff from 1 s), the SDK's own retries off.
    name: 'p-queue + p-retry (LangChain AsyncCaller)',
    run: (fake, s) => {
      const client = raw(fake, 0);
      const queue = new PQueue({ concurrency: Infinity });
      return settleAll(
        Array.from({ length: s.n }, (_, i) =>
          queue.add(() =>
            pRetry(() => s.call(client, i), {
              retries: 6,
              randomize: true,
              shouldRetry: ({ error }) => ![400, 401, 402, 403, 404, 405, 406, 407, 409].includes((error as { status?: number }).status ?? 0),
            }),
          ),
        ),
      );
    },
  },
  {
    name: 'guarded, limits set to the provider’s',
    run: async (fake, s) => {
      const client = createGuardedClient(raw(fake, 2), { limits: { ...s.guardLimits, maxConcurrent: 1000, maxQueue: 100_000 }, cost: { maxCostPerCallUsd: 100 } });
      const result = await settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
      await client.guard.close();
      return result;
    },
  },
  {
    name: 'guarded, adaptive (no limits set)',
    run: async (fake, s) => {
      const client = createGuardedClient(raw(fake, 2), { limits: { maxConcurrent: 1000, maxQueue: 100_000 }, cost: { maxCostPerCallUsd: 100 } });
      const result = await settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
      await client.guard.close();
      return result;
    },
  },
];

export const scenarios: Scenario[] = [
  {
    name: 'requests: provider at 20 requests/s, 200 calls at once',
    limits: { requestsPerMinute: 1200 },
    guardLimits: { requestsPerMinute: 1200 },
    n: 200,
    call: (client) => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 }),
    // A full bucket of 20 at once, then 20/s; plus one round trip.
    idealMs: () => ((200 - 20) / 20) * 1000 + LATENCY_MS,
  },
  {
    name: 'tokens: provider at 3,000 tokens/s, 120 calls of mixed sizes at once',
    limits: { tokensPerMinute: 180_000 },
    guardLimits: { tokensPerMinute: 180_000 },
    n: 120,
    call: (client, i) =>
      client.chat.completions.create({
        model: 'gpt-4o-mini',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'lorem ipsum '.repeat(40 + ((i * 37) % 400)) }],
      }),
    // The workload as the provider counts it (3 tokens per 'lorem ipsum ', 16 generated), past
    // its first full bucket, at its rate.
    idealMs: () => {
      let tokens = 0;
      for (let i = 0; i < 120; i++) tokens += 3 * (40 + ((i * 37) % 400)) + 16;
      return (Math.max(0, tokens - 3000) / 3000) * 1000 + LATENCY_MS;
    },
  },
];

export interface GoodputRow {
  scenario: string;
  contender: string;
  wallMs: number;
  idealMs: number;
  ratio: number;
  provider429s: number;
  failed: number;
  errors: Record<string, number>;
}

export async function runGoodput(log: (line: string) => void = console.log): Promise<{ rows: GoodputRow[]; markdown: string }> {
  const rows: GoodputRow[] = [];
  for (const scenario of scenarios) {
    for (const contender of contenders) {
      const fake = await startFakeProvider({ latencyMs: LATENCY_MS, outputTokens: 16, limits: scenario.limits });
      const started = performance.now();
      const result = await contender.run(fake, scenario);
      const wallMs = performance.now() - started;
      const idealMs = scenario.idealMs();
      const row: GoodputRow = {
        scenario: scenario.name,
        contender: contender.name,
        wallMs,
        idealMs,
        ratio: wallMs / idealMs,
        provider429s: fake.stats.byStatus[429] ?? 0,
        failed: result.failed,
        errors: result.errors,
      };
      rows.push(row);
      log(`  ${scenario.name} — ${contender.name}: ${fmt(wallMs / 1000)} s (${fmt(row.ratio)}× ideal), ${row.provider429s} × 429, ${row.failed} failed`);
      await fake.close();
    }
  }
  const markdown = scenarios
    .map((s) => {
      const ofScenario = rows.filter((r) => r.scenario === s.name);
      return `**${s.name}** (ideal ${fmt(ofScenario[0]!.idealMs / 1000)} s)\n\n${table(
        ['client', 'wall time', '× ideal', '429s received', '429s per request', 'failed calls'],
        ofScenario.map((r) => [
          r.contender,
          `${fmt(r.wallMs / 1000)} s`,
          r.failed ? `${fmt(r.ratio)} (gave up)` : fmt(r.ratio),
          r.provider429s,
          `${fmt((100 * r.provider429s) / s.n, 1)}%`,
          r.failed ? `${r.failed} (${Object.entries(r.errors).map(([k, v]) => `${v} ${k}`).join(', ')})` : '0',
        ]),
      )}`;
    })
    .join('\n\n');
  return { rows, markdown };
}
