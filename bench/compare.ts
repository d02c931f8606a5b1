/**
 * Before/after: this checkout's guard against another checkout's (BENCH_AGAINST=/path/to/it,
 * e.g. a `git worktree` of an earlier commit sharing this node_modules), each as its built
 * bundle (built when missing), in one process,
 * alternating rounds so host noise falls on both alike: calls per second with an in-memory
 * fetch, and the median time per call over local HTTP, each beside the raw SDK.
 */
import OpenAI from 'openai';
import type { createGuardedClient } from '../lib';
import { startFakeProvider } from '../lib/testing';
import { builtPackage, fmt, median, memoryFetch, table } from './support';

type Create = typeof createGuardedClient;
const messages = [{ role: 'user' as const, content: 'Hello there, how are you today?' }];

async function perSecond(create: Create | undefined, calls: number): Promise<number> {
  const base = new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://memory.invalid/v1', maxRetries: 0, fetch: memoryFetch() });
  const client = create ? create(base, { limits: { maxConcurrent: 64, adaptive: false }, logLevel: 'silent' }) : base;
  let next = 0;
  const run = (until: number) =>
    Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < until) {
          next++;
          await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 });
        }
      }),
    );
  await run(2_000); // warm-up: a new client's closures are not yet compiled
  next = 0;
  const started = performance.now();
  await run(calls);
  const rate = calls / ((performance.now() - started) / 1000);
  if (create) await (client as unknown as { guard: { close(): Promise<void> } }).guard.close();
  return rate;
}

async function perCallUs(create: Create | undefined, baseURL: string, calls: number): Promise<number> {
  const base = new OpenAI({ apiKey: 'sk-bench', baseURL, maxRetries: 0 });
  const client = create ? create(base, { limits: { maxConcurrent: 100 }, logLevel: 'silent' }) : base;
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 16 });
    times.push((performance.now() - t) * 1000);
  }
  if (create) await (client as unknown as { guard: { close(): Promise<void> } }).guard.close();
  return median(times.slice(100));
}

export async function runCompare(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const against = process.env.BENCH_AGAINST;
  if (!against) throw new Error('BENCH_AGAINST=/path/to/another/checkout is required for the compare part');
  // Both as users run them: each checkout's built bundle.
  const other = builtPackage(against).createGuardedClient as Create;
  const own = builtPackage().createGuardedClient;
  const fake = await startFakeProvider({ outputTokens: 16 });
  const rounds = 6;
  const rate: Record<'raw' | 'before' | 'after', number[]> = { raw: [], before: [], after: [] };
  const us: Record<'raw' | 'before' | 'after', number[]> = { raw: [], before: [], after: [] };
  const order = [['raw', undefined], ['before', other], ['after', own]] as const;
  for (let i = 0; i < rounds; i++) {
    // Each round starts with another of the three, so none always runs on a warmer (or busier) host.
    for (const [key, create] of [...order.slice(i % 3), ...order.slice(0, i % 3)]) {
      rate[key].push(await perSecond(create, 20_000));
      us[key].push(await perCallUs(create, fake.openaiBaseURL, 600));
    }
    log(`  round ${i + 1}: ${fmt(rate.before.at(-1)!, 0)} → ${fmt(rate.after.at(-1)!, 0)} calls/s (raw ${fmt(rate.raw.at(-1)!, 0)})`);
  }
  await fake.close();
  const row = (label: string, key: 'raw' | 'before' | 'after') => [label, fmt(median(rate[key]), 0), fmt(median(rate[key]) / median(rate.raw)), `${fmt(median(us[key]), 0)} µs`, key === 'raw' ? '—' : `${fmt(median(us[key]) - median(us.raw), 0)} µs`];
  return {
    markdown:
      `This checkout against \`${against}\`, ${rounds} alternating rounds in one process (medians): an in-memory fetch with 64 calls in flight, and one call at a time over local HTTP (openai SDK, budgets on: the defaults).\n\n` +
      table(['guard', 'calls/s (in memory)', 'vs raw', 'per call (HTTP)', 'added'], [row('raw SDK', 'raw'), row('before', 'before'), row('**after**', 'after')]),
  };
}
