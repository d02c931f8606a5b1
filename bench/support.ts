import os from 'node:os';
import { execFileSync, fork } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeProviderOptions } from '../lib/testing';

/** The machine line every result section starts with. */
export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const fmt = (n: number, digits = 2) => n.toFixed(digits);

/** A markdown table from rows of cells. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Settles every promise, counting failures by error class name. */
export async function settleAll(promises: Array<Promise<unknown>>): Promise<{ ok: number; failed: number; errors: Record<string, number> }> {
  const results = await Promise.allSettled(promises);
  const errors: Record<string, number> = {};
  let failed = 0;
  for (const r of results) {
    if (r.status === 'rejected') {
      failed++;
      const name = (r.reason as Error)?.constructor?.name ?? 'Error';
      errors[name] = (errors[name] ?? 0) + 1;
    }
  }
  return { ok: results.length - failed, failed, errors };
}

/**
 * Microseconds per call of each of `calls`, run one at a time and taking turns call by call; each
 * round starts with the next one, so none always meets a warmer cache (or a busier host). The
 * first `warmup` rounds are dropped; the lists line up round by round (for paired differences).
 */
export async function timedInTurns(calls: ReadonlyArray<() => Promise<unknown>>, rounds: number, warmup: number): Promise<number[][]> {
  const times = calls.map(() => [] as number[]);
  for (let i = 0; i < warmup + rounds; i++) {
    for (let j = 0; j < calls.length; j++) {
      const k = (i + j) % calls.length;
      const t = performance.now();
      await calls[k]!();
      if (i >= warmup) times[k]!.push((performance.now() - t) * 1000);
    }
  }
  return times;
}

/** An in-memory fetch answering every chat completion at once: what is left is the client's own work. */
export function memoryFetch(): typeof fetch {
  const body = JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hi!', refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
  });
  return async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
}

/** One in-memory throughput scenario (bench/throughput.ts). */
export interface ThroughputScenario {
  guardedClient: boolean;
  calls: number;
  inFlight: number;
  budgets: boolean;
  /** A 2,000-token system prompt, as production chat calls carry one. */
  longSystem: boolean;
  /** The checkout whose bundle to measure (default: this one). */
  root?: string;
}

/**
 * Calls per second of `scenario` in a process of its own: after HTTP calls in the same process,
 * V8 had pretenured the per-call allocation sites and in-memory calls paid old-generation GC for
 * that history (0.34 × raw instead of 0.59 ×; 0.80 × with --no-allocation-site-pretenuring).
 */
export function throughputInFreshProcess(scenario: ThroughputScenario): number {
  const out = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, 'throughput.ts'), JSON.stringify(scenario)], { encoding: 'utf8' });
  return (JSON.parse(out.trim().split('\n').at(-1)!) as { perSecond: number }).perSecond;
}

/** The fake provider in a process of its own (bench/provider-process.ts): its base URLs, and close(). */
export async function providerInOwnProcess(options: FakeProviderOptions = {}): Promise<{ openaiBaseURL: string; anthropicBaseURL: string; close(): Promise<void> }> {
  const child = fork(join(__dirname, 'provider-process.ts'), [JSON.stringify(options)], { execArgv: ['--import', 'tsx'] });
  const urls = await new Promise<{ openaiBaseURL: string; anthropicBaseURL: string }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { openaiBaseURL: string; anthropicBaseURL: string }));
    child.once('exit', (code) => reject(new Error(`the provider process exited (${code}) before it listened`)));
  });
  return {
    ...urls,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.disconnect();
      }),
  };
}

/**
 * The package as users run it: `<root>/dist` (one bundle), built first when missing or older than
 * lib/. The hot path measured through tsx's per-file transpile ran ~15 % slower than the bundle.
 */
export function builtPackage(root: string = join(__dirname, '..')): typeof import('../lib') {
  const entry = join(root, 'dist', 'index.js');
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  if (!existsSync(entry) || statSync(entry).mtimeMs < newest(join(root, 'lib'))) {
    console.log(`  building ${root} (npx tsup) to measure the bundle users run`);
    execFileSync('npx', ['tsup'], { cwd: root, stdio: 'ignore' });
  }
  return require(entry) as typeof import('../lib');
}

/**
 * Provider limits far above what the benches reach: nothing is throttled, but every response
 * carries rate-limit headers, as OpenAI's and Anthropic's do, and the guard learns from them.
 */
export const LIMITS_NEVER_REACHED = { requestsPerMinute: 6_000_000, tokensPerMinute: 6_000_000_000 };
