/**
 * Before/after: this checkout's guard against another checkout's (BENCH_AGAINST=/path/to/it,
 * e.g. a `git worktree` of an earlier commit sharing this node_modules), each as its built bundle
 * (built when missing), beside the raw SDK: calls per second with an in-memory fetch (each run in
 * a fresh process, as in the overhead bench; rounds interleaved), and the median time per call
 * over local HTTP (raw, before and after taking turns call by call, so host noise falls on all;
 * in two fresh processes, each loading one of the two guards first), without and with the
 * provider's rate-limit headers. Two identical builds differed by up to ~10 µs a call here.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { builtPackage, fmt, median, table, throughputInFreshProcess } from './support';
import type { CompareHttpRun } from './compare-http';
type Key = 'raw' | 'before' | 'after';

/** One in-memory throughput run of `root`'s bundle (or the raw SDK), with a short prompt or a 2,000-token system prompt. */
function perSecond(root: string | undefined, longSystem = false): number {
  return throughputInFreshProcess({ guardedClient: root !== undefined, calls: longSystem ? 10_000 : 20_000, inFlight: 64, budgets: true, longSystem, ...(root ? { root } : {}) });
}

export async function runCompare(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const against = process.env.BENCH_AGAINST;
  if (!against) throw new Error('BENCH_AGAINST=/path/to/another/checkout is required for the compare part');
  const own = join(__dirname, '..');
  // Built here, once, before the processes that load them start.
  builtPackage(against);
  builtPackage(own);
  const roots: Record<Key, string | undefined> = { raw: undefined, before: against, after: own };
  const keys: Key[] = ['raw', 'before', 'after'];

  const rate: Record<Key, number[]> = { raw: [], before: [], after: [] };
  const rateLong: Record<Key, number[]> = { raw: [], before: [], after: [] };
  const rounds = 7;
  for (let i = 0; i < rounds; i++) {
    // Each round starts with another of the three, so none always runs on a warmer (or busier) host.
    for (const key of [...keys.slice(i % 3), ...keys.slice(0, i % 3)]) {
      rate[key].push(perSecond(roots[key]));
      rateLong[key].push(perSecond(roots[key], true));
    }
    log(`  round ${i + 1}: ${fmt(rate.before.at(-1)!, 0)} → ${fmt(rate.after.at(-1)!, 0)} calls/s (raw ${fmt(rate.raw.at(-1)!, 0)}); long prompt ${fmt(rateLong.before.at(-1)!, 0)} → ${fmt(rateLong.after.at(-1)!, 0)} (raw ${fmt(rateLong.raw.at(-1)!, 0)})`);
  }

  const plain = await perCallUs(against, own, false);
  const withHeaders = await perCallUs(against, own, true);
  const anthropicPlain = await perCallUs(against, own, false, 'anthropic');
  const anthropicHeaders = await perCallUs(against, own, true, 'anthropic');

  const http = (us: Record<Key, number[]>, key: Key) => [`${fmt(median(us[key]), 0)} µs`, key === 'raw' ? '—' : `${fmt(median(us[key]) - median(us.raw), 0)} µs`];
  // Each round's ratio to that round's raw run: the host's speed drifts between rounds (±25 % here).
  const vsRaw = (rates: Record<Key, number[]>, key: Key) => median(rates[key].map((r, i) => r / rates.raw[i]!));
  const row = (label: string, key: Key) => [label, fmt(median(rate[key]), 0), fmt(vsRaw(rate, key)), fmt(median(rateLong[key]), 0), fmt(vsRaw(rateLong, key)), ...http(plain, key), ...http(withHeaders, key)];
  return {
    markdown:
      `This checkout against \`${against}\`, both built bundles (budgets on: the defaults; the openai SDK, and the Anthropic SDK's calls over HTTP in a second table): an in-memory fetch with 64 calls in flight (a short prompt; and a 2,000-token system prompt, as production chat calls carry), each run in a fresh process, ${rounds} interleaved rounds (medians; vs raw: the median of each round's ratio); and 2,000 calls each over local HTTP, one at a time, raw, before and after taking turns (medians; half of them in a process that loads the before guard first, half in one that loads the after guard first, so that neither is always the one loaded second). from a provider that sends no rate-limit headers and from one that sends them on every response (as OpenAI and Anthropic do; limits never reached). Two identical builds measured this way differed by up to ~10 µs a call on this host (2026-12-03): a smaller difference is noise. The added µs here exceed the overhead bench's (two guards' code and the provider in one process): read the rows against each other.\n\n` +
      table(
        ['guard', 'calls/s (in memory)', 'vs raw', 'calls/s (in memory, 2,000-token system prompt)', 'vs raw', 'per call (HTTP)', 'added', 'per call (HTTP, rate-limit headers)', 'added'],
        [row('raw SDK', 'raw'), row('before', 'before'), row('**after**', 'after')],
      ) +
      `\n\nThe same over local HTTP with the Anthropic SDK (messages.create; same turns and processes):\n\n` +
      table(
        ['guard', 'per call (HTTP)', 'added', 'per call (HTTP, rate-limit headers)', 'added'],
        (['raw', 'before', 'after'] as const).map((key) => [key === 'raw' ? 'raw SDK' : key === 'after' ? '**after**' : key, ...http(anthropicPlain, key), ...http(anthropicHeaders, key)]),
      ),
  };
}

/**
 * Time per call over local HTTP for the raw SDK and both guards, taking turns call by call: half
 * the rounds in a process that loads the before guard first, half in one that loads the after
 * guard first (the one loaded second ran a few µs faster in some runs; see bench/compare-http.ts).
 */
async function perCallUs(against: string, own: string, limitHeaders: boolean, sdk: CompareHttpRun['sdk'] = 'openai'): Promise<Record<Key, number[]>> {
  const out: Record<Key, number[]> = { raw: [], before: [], after: [] };
  for (const beforeFirst of [true, false]) {
    const run: CompareHttpRun = { against, own, limitHeaders, beforeFirst, rounds: 1_000, sdk };
    const printed = execFileSync(process.execPath, ['--import', 'tsx', join(__dirname, 'compare-http.ts'), JSON.stringify(run)], { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
    const times = JSON.parse(printed.trim().split('\n').at(-1)!) as Record<Key, number[]>;
    for (const key of Object.keys(out) as Key[]) out[key].push(...times[key]);
  }
  return out;
}
