/**
 * Goodput: N requests fired at once at a provider limited to R requests/s (or T tokens/s);
 * wall time ÷ ideal time, 429s the provider sent, calls that failed — for the raw SDK (default
 * retries, and 10), a p-queue + p-retry wrapper built like LangChain's AsyncCaller, and the guard
 * (limits set to the provider's; adaptive with none set).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import PQueue from 'p-queue';
import pRetry from 'p-retry';
import { createGuardedClient } from '../lib';
import { startFakeProvider, type FakeProvider } from '../lib/testing';
import { fmt, settleAll, table } from './support';

/** The SDK client of the scenario's wire format (raw or guarded: the same surface). */
type Client = Pick<OpenAI, 'chat'> & Pick<Anthropic, 'messages'>;
type Call = (client: Client, i: number) => Promise<unknown>;
type Wire = 'openai' | 'anthropic';

interface Scenario {
  name: string;
  wire: Wire;
  latencyMs: number;
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
  /** Made before the clock starts, BOOT_IDLE_MS ahead of the calls (as a server makes its client at boot); handed to run. */
  make?: (fake: FakeProvider, scenario: Scenario) => GuardedOpenAI;
  run: (fake: FakeProvider, scenario: Scenario, made?: GuardedOpenAI) => Promise<{ ok: number; failed: number; errors: Record<string, number> }>;
}

type GuardedOpenAI = ReturnType<typeof createGuardedClient<OpenAI>>;

/**
 * Guarded clients are made this long before their first calls, as servers make them at boot: a
 * client made just before its calls once hid a refill that counted from its creation.
 */
const BOOT_IDLE_MS = 500;

const LATENCY_MS = 50;
/** A generation's length: the provider's rate-limit headers arrive this long after it counted the call. */
const LONG_CALL_MS = 2000;
/** The start-up case: a short round trip, so connection set-up skew is a large part of it. */
const STARTUP_LATENCY_MS = 20;
const messages = [{ role: 'user' as const, content: 'Summarise the following text in one line.' }];

function raw(fake: FakeProvider, maxRetries: number, wire: Wire): Client {
  const apiKey = `sk-bench-${Math.random()}`;
  return (wire === 'openai' ? new OpenAI({ apiKey, baseURL: fake.openaiBaseURL, maxRetries }) : new Anthropic({ apiKey, baseURL: fake.anthropicBaseURL, maxRetries })) as unknown as Client;
}

/** One short call in the scenario's wire format. */
function shortCall(wire: Wire): Call {
  return wire === 'openai'
    ? (client) => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 })
    : (client) => client.messages.create({ model: 'claude-haiku-4-5', messages, max_tokens: 16 });
}

/**
 * A call of mixed input size: 40–439 × a 12-character phrase, 3 tokens each at the fake provider
 * (4 characters a token). 'big dog ran ' is 3 tokens for OpenAI's tokenizer too, so the guard's
 * exact count agrees with the provider's from the first call; 'lorem ipsum ' (2 tokens for the
 * tokenizer) is a host counting another way, which the guard learns only from the first answers.
 */
function mixedCall(wire: Wire, phrase = 'lorem ipsum '): Call {
  const content = (i: number) => phrase.repeat(40 + ((i * 37) % 400));
  return wire === 'openai'
    ? (client, i) => client.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: content(i) }] })
    : (client, i) => client.messages.create({ model: 'claude-haiku-4-5', max_tokens: 100, messages: [{ role: 'user', content: content(i) }] });
}

/** The ideal time of `n` mixed calls at `perSecond` tokens/s: the workload past the first full bucket, at the rate. */
function mixedIdealMs(n: number, perSecond: number, latencyMs: number): number {
  let tokens = 0;
  for (let i = 0; i < n; i++) tokens += 3 * (40 + ((i * 37) % 400)) + 16;
  return (Math.max(0, tokens - perSecond) / perSecond) * 1000 + latencyMs;
}

async function guardedRun(_fake: FakeProvider, s: Scenario, client?: GuardedOpenAI): Promise<{ ok: number; failed: number; errors: Record<string, number> }> {
  const result = await settleAll(Array.from({ length: s.n }, (_, i) => s.call(client as unknown as Client, i)));
  await client!.guard.close();
  return result;
}

const contenders: Contender[] = [
  {
    name: 'raw SDK, default retries (2)',
    run: (fake, s) => {
      const client = raw(fake, 2, s.wire);
      return settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
    },
  },
  {
    name: 'raw SDK, maxRetries 10',
    run: (fake, s) => {
      const client = raw(fake, 10, s.wire);
      return settleAll(Array.from({ length: s.n }, (_, i) => s.call(client, i)));
    },
  },
  {
    // LangChain's AsyncCaller: p-queue (concurrency Infinity by default) around p-retry (6 retries,
    // randomized exponential backoff from 1 s), the SDK's own retries off.
    name: 'p-queue + p-retry (LangChain AsyncCaller)',
    run: (fake, s) => {
      const client = raw(fake, 0, s.wire);
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
    make: (fake, s) => createGuardedClient(raw(fake, 2, s.wire) as unknown as OpenAI, { limits: { ...s.guardLimits, maxConcurrent: 1000, maxQueue: 100_000 }, cost: { maxCostPerCallUsd: 100 } }),
    run: guardedRun,
  },
  {
    name: 'guarded, adaptive (no limits set)',
    make: (fake, s) => createGuardedClient(raw(fake, 2, s.wire) as unknown as OpenAI, { limits: { maxConcurrent: 1000, maxQueue: 100_000 }, cost: { maxCostPerCallUsd: 100 } }),
    run: guardedRun,
  },
];

/** 200 short calls at once to a provider at 20 requests/s, answered after `latencyMs`. */
function requestsAt20PerSecond(name: string, latencyMs: number): Scenario {
  return {
    name,
    wire: 'openai',
    latencyMs,
    limits: { requestsPerMinute: 1200 },
    guardLimits: { requestsPerMinute: 1200 },
    n: 200,
    call: shortCall('openai'),
    // A full bucket of 20 at once, then 20/s; plus one round trip.
    idealMs: () => ((200 - 20) / 20) * 1000 + latencyMs,
  };
}

export const scenarios: Scenario[] = [
  requestsAt20PerSecond('requests: provider at 20 requests/s, 200 calls at once', LATENCY_MS),
  {
    name: 'tokens: provider at 3,000 tokens/s, 120 calls of mixed sizes at once',
    wire: 'openai',
    latencyMs: LATENCY_MS,
    limits: { tokensPerMinute: 180_000 },
    guardLimits: { tokensPerMinute: 180_000 },
    n: 120,
    call: mixedCall('openai'),
    // The workload as the provider counts it (3 tokens per 'lorem ipsum ', 16 generated).
    idealMs: () => mixedIdealMs(120, 3000, LATENCY_MS),
  },
  // Calls as long as real generations: the provider counts a call when it arrives and answers seconds later.
  requestsAt20PerSecond('long calls: provider at 20 requests/s, 200 calls at once, 2 s per call', LONG_CALL_MS),
  // Start-up: 240 calls in the first millisecond, 40 connections opening at once, 20 ms answers.
  ...(['openai', 'anthropic'] as const).flatMap((wire): Scenario[] => [
    {
      name: `start-up, ${wire === 'openai' ? 'OpenAI' : 'Anthropic'} wire: provider at 40 requests/s (1 s burst), 240 calls at once, ${STARTUP_LATENCY_MS} ms latency`,
      wire,
      latencyMs: STARTUP_LATENCY_MS,
      limits: { requestsPerMinute: 2400 },
      guardLimits: { requestsPerMinute: 2400 },
      n: 240,
      call: shortCall(wire),
      idealMs: () => ((240 - 40) / 40) * 1000 + STARTUP_LATENCY_MS,
    },
    {
      name: `start-up, ${wire === 'openai' ? 'OpenAI' : 'Anthropic'} wire: provider at 6,000 tokens/s, 240 calls of mixed sizes at once, ${STARTUP_LATENCY_MS} ms latency`,
      wire,
      latencyMs: STARTUP_LATENCY_MS,
      limits: { tokensPerMinute: 360_000 },
      guardLimits: { tokensPerMinute: 360_000 },
      n: 240,
      call: mixedCall(wire, 'big dog ran '),
      idealMs: () => mixedIdealMs(240, 6000, STARTUP_LATENCY_MS),
    },
  ]),
];

/** `BENCH_SCENARIOS=start-up npm run bench -- goodput`: only the scenarios whose name contains it. */
const only = process.env.BENCH_SCENARIOS;

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
  for (const scenario of scenarios.filter((s) => !only || s.name.includes(only))) {
    for (const contender of contenders) {
      const fake = await startFakeProvider({ latencyMs: scenario.latencyMs, outputTokens: 16, limits: scenario.limits });
      const made = contender.make?.(fake, scenario);
      if (made) await new Promise((r) => setTimeout(r, BOOT_IDLE_MS));
      const started = performance.now();
      const result = await contender.run(fake, scenario, made);
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
    .filter((s) => rows.some((r) => r.scenario === s.name))
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
  return { rows, markdown: `Guarded clients are made ${BOOT_IDLE_MS / 1000} s before their calls, as a server makes its client at boot.\n\n${markdown}` };
}
