/**
 * One HTTP half of the compare bench, in a process of its own (see perCallUs in bench/compare.ts):
 * `tsx bench/compare-http.ts '{"against":…,"own":…,"limitHeaders":true,"beforeFirst":true,"rounds":1000}'`
 * prints `{ "raw": [µs…], "before": […], "after": […] }` as its last line. The two bundles are
 * loaded and their clients made in the order given, and compare runs both orders: of two
 * identical builds in one process, the one loaded second ran 5–13 µs a call faster (paired
 * differences) in some runs and not in others, and no build should always be the one loaded second.
 */
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { startFakeProvider } from '../lib/testing';
import { builtPackage, LIMITS_NEVER_REACHED, timedInTurns } from './support';

const messages = [{ role: 'user' as const, content: 'Hello there, how are you today?' }];

export interface CompareHttpRun {
  against: string;
  own: string;
  limitHeaders: boolean;
  /** Which SDK makes the calls (default openai). */
  sdk?: 'openai' | 'anthropic';
  /** Load and make the before guard first (else the after one). */
  beforeFirst: boolean;
  rounds: number;
}

async function main(): Promise<void> {
  const run = JSON.parse(process.argv[2] ?? '{}') as CompareHttpRun;
  const fake = await startFakeProvider({ outputTokens: 16, ...(run.limitHeaders ? { limits: LIMITS_NEVER_REACHED } : {}) });
  // Each SDK as it is made and called in production: a client per guard, the same request each time.
  const make = () => (run.sdk === 'anthropic' ? new Anthropic({ apiKey: 'sk-bench', baseURL: fake.anthropicBaseURL, maxRetries: 0 }) : new OpenAI({ apiKey: 'sk-bench', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
  const call = (client: OpenAI | Anthropic) =>
    client instanceof Anthropic ?
      () => client.messages.create({ model: 'claude-haiku-4-5', messages, max_tokens: 16 })
    : () => client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 });
  const guarded = (root: string) => builtPackage(root).createGuardedClient(make(), { limits: { maxConcurrent: 100 }, logLevel: 'silent' });
  const raw = make();
  const first = guarded(run.beforeFirst ? run.against : run.own);
  const second = guarded(run.beforeFirst ? run.own : run.against);
  const [before, after] = run.beforeFirst ? [first, second] : [second, first];
  const [rawUs, beforeUs, afterUs] = await timedInTurns([call(raw), call(before), call(after)], run.rounds, 300);
  await Promise.all([before.guard.close(), after.guard.close()]);
  await fake.close();
  console.log(JSON.stringify({ raw: rawUs, before: beforeUs, after: afterUs }));
}

void main();
