/**
 * Overhead: (1) the median latency the guard adds to one call over the raw SDK, against the same
 * local fake provider, raw and guarded calls interleaved; (2) calls per second through the
 * pipeline alone, with an in-memory fetch and no limits, beside the raw SDK on the same fetch.
 */
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { generateText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { startFakeProvider } from '../lib/testing';
import { builtPackage, fmt, LIMITS_NEVER_REACHED, median, memoryFetch, percentile, providerInOwnProcess, table, throughputInFreshProcess, timedInTurns } from './support';
import { inlineFloorFetch } from './inline-floor';

/** The built bundle, as users run it (see builtPackage). */
const { createGuardedClient, createGuardedFetch } = builtPackage();

const messages = [{ role: 'user' as const, content: 'Hello there, how are you today?' }];

export interface OverheadResult {
  provider: string;
  /** The provider sent its rate-limit headers (both real APIs do, on every response). */
  limitHeaders: boolean;
  /** The fake provider ran in a process of its own (as in production), not on the client's thread. */
  ownProcess: boolean;
  rawMedianUs: number;
  guardedMedianUs: number;
  addedMedianUs: number;
  addedP90Us: number;
  /** The lowest and highest `addedMedianUs` of the rounds (this one is their median). */
  addedRangeUs: [number, number];
}

/** Rounds of every HTTP case, taken in turns: the same build's added median moves by tens of µs between runs on a busy host. */
const HTTP_ROUNDS = 3;

/** The round whose added median is the median of all rounds, with their range. */
function medianRound(rounds: OverheadResult[]): OverheadResult {
  const sorted = [...rounds].sort((a, b) => a.addedMedianUs - b.addedMedianUs);
  return { ...sorted[Math.floor(sorted.length / 2)]!, addedRangeUs: [sorted[0]!.addedMedianUs, sorted[sorted.length - 1]!.addedMedianUs] };
}

/** Who makes the calls: an official SDK, or the Vercel AI SDK's provider with a guarded fetch (createGuardedFetch). */
type Caller = 'openai' | 'anthropic' | 'AI SDK, openai' | 'AI SDK, anthropic';

async function latency(kind: Caller, calls: number, limitHeaders: boolean, ownProcess = false): Promise<OverheadResult> {
  const options = { outputTokens: 16, ...(limitHeaders ? { limits: LIMITS_NEVER_REACHED } : {}) };
  // In this process its work (HTTP server, SSE, pricing its bill) runs between the client's steps, in the same CPU caches.
  const fake = ownProcess ? await providerInOwnProcess(options) : await startFakeProvider(options);
  const { raw, guarded, close } = callers(kind, fake);
  const [rawTimes, guardedTimes] = (await timedInTurns([raw, guarded], calls, 200)) as [number[], number[]];
  await close();
  await fake.close();
  const diffs = rawTimes.map((r, i) => guardedTimes[i]! - r);
  return {
    provider: kind,
    limitHeaders,
    ownProcess,
    rawMedianUs: median(rawTimes),
    guardedMedianUs: median(guardedTimes),
    addedMedianUs: median(guardedTimes) - median(rawTimes),
    addedP90Us: percentile(diffs, 90),
    addedRangeUs: [median(guardedTimes) - median(rawTimes), median(guardedTimes) - median(rawTimes)],
  };
}

/** The raw and the guarded call of one caller, against `fake`; `close` closes the guard. */
function callers(kind: Caller, fake: { openaiBaseURL: string; anthropicBaseURL: string }): { raw: () => Promise<unknown>; guarded: () => Promise<unknown>; close: () => Promise<void> } {
  const guardOptions = { limits: { maxConcurrent: 100 } };
  if (kind === 'AI SDK, openai' || kind === 'AI SDK, anthropic') {
    const wire = kind === 'AI SDK, openai' ? 'openai' : 'anthropic';
    const guardedFetch = createGuardedFetch(wire, guardOptions);
    const model = (fetch?: typeof globalThis.fetch) =>
      wire === 'openai' ?
        createOpenAI({ apiKey: 'sk-bench', baseURL: fake.openaiBaseURL, ...(fetch ? { fetch } : {}) }).chat('gpt-4o-mini')
      : createAnthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, ...(fetch ? { fetch } : {}) })('claude-haiku-4-5');
    const call = (m: ReturnType<typeof model>) => () => generateText({ model: m, messages, maxOutputTokens: 16, maxRetries: 0 });
    return { raw: call(model()), guarded: call(model(guardedFetch)), close: () => guardedFetch.guard.close() };
  }
  const make = () =>
    kind === 'openai' ? new OpenAI({ apiKey: 'sk-bench', baseURL: fake.openaiBaseURL, maxRetries: 0 }) : new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, maxRetries: 0 });
  const client = createGuardedClient(make(), guardOptions);
  const call = (c: OpenAI | Anthropic) => () =>
    c instanceof OpenAI ?
      c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 })
    : (c as Anthropic).messages.create({ model: 'claude-haiku-4-5', messages, max_tokens: 16 });
  return { raw: call(make()), guarded: call(client), close: () => client.guard.close() };
}

/**
 * What each part of the guard adds, sequential OpenAI calls in one process, all clients
 * interleaved: the guard as configured by users (defaults; budgets off; breaker and retries off;
 * all three off), and the inline floor (bench/inline-floor.ts) for what the essential work costs.
 */
async function byFeature(calls: number): Promise<Array<{ name: string; addedUs: number }>> {
  const fake = await startFakeProvider({ outputTokens: 16 });
  const make = (fetch?: typeof globalThis.fetch) => new OpenAI({ apiKey: 'sk-bench', baseURL: fake.openaiBaseURL, maxRetries: 0, ...(fetch ? { fetch } : {}) });
  const guarded = (options: Parameters<typeof createGuardedClient>[1] = {}) => createGuardedClient(make(), { limits: { maxConcurrent: 100 }, logLevel: 'silent', ...options });
  const bare = { cost: { budgets: [] }, breaker: { enabled: false }, retry: { retries: 0 } };
  const clients: Array<[string, OpenAI]> = [
    ['raw SDK', make()],
    ['inline floor: the essential work written inline (not a product)', make(inlineFloorFetch({ maxConcurrent: 100, budgetUsd: 50 }))],
    ['guarded, defaults', guarded()],
    ['guarded, budgets off', guarded({ cost: { budgets: [] } })],
    ['guarded, breaker off and retries 0', guarded({ breaker: { enabled: false }, retry: { retries: 0 } })],
    ['guarded, all three off (limiter, attempt, accounting)', guarded(bare)],
  ];
  const times = await timedInTurns(
    clients.map(([, client]) => () => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 })),
    calls,
    200,
  );
  for (const [, client] of clients) if ('guard' in client) await (client as ReturnType<typeof guarded>).guard.close();
  await fake.close();
  const raw = median(times[0]!);
  return clients.slice(1).map(([name], i) => ({ name, addedUs: median(times[i + 1]!) - raw }));
}

/**
 * The same calls one at a time with an in-memory fetch, raw and guarded taking turns: the guard's
 * own work with the CPU's caches warm. Over HTTP the same code runs several times slower (cold
 * after the network stack ran in between) and the host's noise moves that median by tens of µs;
 * this one moves with the guard's work (and with the host's speed, as the raw SDK's own time shows).
 */
async function warm(calls: number): Promise<{ rawUs: number; addedUs: number }> {
  const make = () => new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://memory.invalid/v1', maxRetries: 0, fetch: memoryFetch() });
  const raw = make();
  const guarded = createGuardedClient(make(), { logLevel: 'silent' });
  const call = (c: OpenAI) => c.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 });
  const [rawTimes, guardedTimes] = (await timedInTurns([() => call(raw), () => call(guarded)], calls, 2000)) as [number[], number[]];
  await guarded.guard.close();
  return { rawUs: median(rawTimes), addedUs: median(guardedTimes) - median(rawTimes) };
}

export async function runOverhead(log: (line: string) => void = console.log): Promise<{ markdown: string; latency: OverheadResult[]; guardedPerSecond: number; rawPerSecond: number }> {
  // First: HTTP calls in this process would leave their allocation history to it (see throughputInFreshProcess).
  const warmRun = await warm(20_000);
  log(`  one call at a time in memory (warm): raw SDK ${fmt(warmRun.rawUs, 0)} µs, the guard adds ${fmt(warmRun.addedUs, 1)} µs`);
  const cases: Array<[Caller, boolean, boolean]> = [
    ['openai', false, false],
    ['anthropic', false, false],
    ['openai', true, false],
    ['anthropic', true, false],
    ['openai', true, true],
    ['anthropic', true, true],
    // generateText() through createGuardedFetch, as the AI SDK's users call it.
    ['AI SDK, openai', true, true],
    ['AI SDK, anthropic', true, true],
  ];
  const rounds: OverheadResult[][] = cases.map(() => []);
  const featureRounds: Array<Array<{ name: string; addedUs: number }>> = [];
  for (let round = 0; round < HTTP_ROUNDS; round++) {
    for (const [i, [kind, limitHeaders, ownProcess]] of cases.entries()) {
      const r = await latency(kind, 2000, limitHeaders, ownProcess);
      rounds[i]!.push(r);
      log(`  round ${round + 1}, latency ${kind}${limitHeaders ? ' with rate-limit headers' : ''}${ownProcess ? ', provider in its own process' : ''}: raw ${fmt(r.rawMedianUs, 0)} µs, guarded ${fmt(r.guardedMedianUs, 0)} µs, added ${fmt(r.addedMedianUs, 0)} µs (p90 of paired differences ${fmt(r.addedP90Us, 0)} µs)`);
    }
    featureRounds.push(await byFeature(2000));
    for (const f of featureRounds[round]!) log(`  round ${round + 1}, ${f.name}: added ${fmt(f.addedUs, 0)} µs`);
  }
  const results = rounds.map(medianRound);
  const features = featureRounds[0]!.map(({ name }, i) => {
    const added = featureRounds.map((r) => r[i]!.addedUs).sort((a, b) => a - b);
    return { name, addedUs: median(added), rangeUs: [added[0]!, added[added.length - 1]!] as const };
  });
  // Five rounds of every scenario, interleaved so that host noise falls on all alike; medians.
  const runs: number[][] = [[], [], [], [], []];
  for (let round = 0; round < 5; round++) {
    // Each in a fresh process (throughputInFreshProcess says why).
    runs[0]!.push(throughputInFreshProcess({ guardedClient: false, calls: 20_000, inFlight: 64, budgets: true, longSystem: false }));
    runs[1]!.push(throughputInFreshProcess({ guardedClient: true, calls: 20_000, inFlight: 64, budgets: true, longSystem: false }));
    runs[2]!.push(throughputInFreshProcess({ guardedClient: true, calls: 20_000, inFlight: 64, budgets: false, longSystem: false }));
    runs[3]!.push(throughputInFreshProcess({ guardedClient: false, calls: 10_000, inFlight: 64, budgets: true, longSystem: true }));
    runs[4]!.push(throughputInFreshProcess({ guardedClient: true, calls: 10_000, inFlight: 64, budgets: true, longSystem: true }));
  }
  const [rawPerSecond, guardedPerSecond, noBudgetsPerSecond, rawLongPerSecond, guardedLongPerSecond] = runs.map((r) => median(r)) as [number, number, number, number, number];
  // Each round's ratio to that round's raw run: the host's speed drifts between rounds.
  const ratio = (guarded: number, raw: number) => median(runs[guarded]!.map((r, i) => r / runs[raw]![i]!));
  log(`  with a 2,000-token system prompt: raw SDK ${fmt(rawLongPerSecond, 0)} calls/s, guarded ${fmt(guardedLongPerSecond, 0)} calls/s`);
  log(`  throughput with an in-memory fetch: raw SDK ${fmt(rawPerSecond, 0)} calls/s, guarded ${fmt(guardedPerSecond, 0)} calls/s (budgets off: ${fmt(noBudgetsPerSecond, 0)})`);
  const markdown = [
    `${HTTP_ROUNDS} rounds of every case, taken in turns; each row is its median round (the added median of each round: lowest–highest in the last column).`,
    '',
    table(
      ['SDK', 'provider sends rate-limit headers', 'provider runs', 'raw SDK, median', 'guarded, median', 'added by the guard (median)', 'added, p90 of paired calls', 'added, rounds'],
      results.map((r) => [r.provider, r.limitHeaders ? 'yes (as the real APIs)' : 'no', r.ownProcess ? 'in its own process (as in production)' : 'in the client\'s process', `${fmt(r.rawMedianUs, 0)} µs`, `${fmt(r.guardedMedianUs, 0)} µs`, `**${fmt(r.addedMedianUs, 0)} µs**`, `${fmt(r.addedP90Us, 0)} µs`, `${fmt(r.addedRangeUs[0], 0)}–${fmt(r.addedRangeUs[1], 0)} µs`]),
    ),
    '',
    `What each part adds: sequential OpenAI calls, no rate-limit headers, all clients interleaved in one process (medians of ${HTTP_ROUNDS} rounds; see bench/overhead.ts).`,
    '',
    table(['client', 'added per call (median)', 'rounds'], features.map((f) => [f.name, `${fmt(f.addedUs, 0)} µs`, `${fmt(f.rangeUs[0], 0)}–${fmt(f.rangeUs[1], 0)} µs`])),
    '',
    `The same OpenAI calls one at a time with an in-memory fetch, raw and guarded taking turns (the guard's defaults; medians): the raw SDK takes ${fmt(warmRun.rawUs, 0)} µs a call, **the guard adds ${fmt(warmRun.addedUs, 1)} µs** (${fmt(warmRun.addedUs / warmRun.rawUs)} × the SDK's own time). That is its own work with the CPU's caches warm; over HTTP the same code runs several times slower, cold after the network stack ran in between (bench/overhead.ts).`,
    '',
    'In-memory fetch: each scenario in a fresh process, 5 interleaved rounds, medians; vs raw is the median of each round\'s ratio (see bench/overhead.ts).',
    '',
    table(
      ['in-memory fetch, 64 in flight, no limits', 'calls/s', 'vs raw'],
      [
        ['raw SDK', fmt(rawPerSecond, 0), '1.00'],
        ['guarded (pipeline + SDK), default budget', `**${fmt(guardedPerSecond, 0)}**`, fmt(ratio(1, 0))],
        ['guarded, budgets off', fmt(noBudgetsPerSecond, 0), fmt(ratio(2, 0))],
        ['raw SDK, 2,000-token system prompt', fmt(rawLongPerSecond, 0), '1.00'],
        ['guarded, 2,000-token system prompt', fmt(guardedLongPerSecond, 0), fmt(ratio(4, 3))],
      ],
    ),
  ].join('\n');
  return { markdown, latency: results, guardedPerSecond, rawPerSecond };
}
