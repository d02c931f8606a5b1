/**
 * `npm run bench`: goodput at the provider's limit, the guard's overhead, per-scope memory.
 * Prints as it goes and writes a dated section with the machine into bench/RESULTS.md
 * (`npm run bench -- goodput` runs one part; `--no-write` leaves RESULTS.md alone).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runGoodput } from './goodput';
import { runOverhead } from './overhead';
import { runProfile } from './profile';
import { runScopeMemory } from './scope-memory';
import { runBudgetOvershoot } from './budget-overshoot';
import { runEstimate } from './estimate';
import { runDistributed } from './distributed';
import { runFleet } from './fleet';
import { runCompare } from './compare';
import { runPriority } from './priority';
import { runBreakerFault } from './breaker-fault';
import { machine } from './support';

const parts: Record<string, { title: string; run: () => Promise<{ markdown: string }> }> = {
  goodput: { title: 'Goodput at the provider’s limit (Traffic control, 10a)', run: () => runGoodput() },
  overhead: { title: 'Overhead (Traffic control, 10b)', run: () => runOverhead() },
  profile: { title: 'Where a call’s CPU goes: raw SDK and guard, by package (Traffic at the provider’s limit, 5)', run: () => runProfile() },
  priority: { title: 'Priority lanes and fair share: queue wait per lane and per tenant (Traffic at the provider’s limit, 6)', run: () => runPriority() },
  'breaker-fault': { title: 'A provider fault with the breaker’s window full (Traffic control)', run: () => runBreakerFault() },
  'scope-memory': { title: 'Per-scope limits with 100,000 keys (Traffic control, 3)', run: () => runScopeMemory() },
  'budget-overshoot': { title: 'Budget overshoot under 100 concurrent calls (Money, 10)', run: () => runBudgetOvershoot() },
  estimate: { title: 'Input-token estimate against OpenAI’s tokenizer (Money, 10)', run: () => runEstimate() },
  distributed: { title: 'Distributed mode: three replicas, one limit; ledger operations; per-scope keys in Redis (Distributed, 7)', run: () => runDistributed() },
  fleet: { title: 'Fleets that start, join and restart (Distributed in the field)', run: () => runFleet() },
  // Only on request: `BENCH_AGAINST=/path/to/other/checkout npm run bench -- compare`.
  ...(process.env.BENCH_AGAINST ? { compare: { title: `Before/after against ${process.env.BENCH_AGAINST}`, run: () => runCompare() } } : {}),
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const write = !args.includes('--no-write');
  const wanted = args.filter((a) => !a.startsWith('--'));
  const unknown = wanted.filter((w) => !parts[w]);
  if (unknown.length) throw new Error(`Unknown bench part ${unknown.join(', ')}; parts: ${Object.keys(parts).join(', ')}`);
  if (!(globalThis as { gc?: unknown }).gc) console.log('(run with node --expose-gc for exact heap figures; `npm run bench` does)');
  const sections: string[] = [];
  for (const name of wanted.length ? wanted : Object.keys(parts)) {
    const part = parts[name]!;
    console.log(`\n## ${part.title}`);
    const { markdown } = await part.run();
    console.log(`\n${markdown}`);
    sections.push(`### ${part.title}\n\n${markdown}`);
  }
  if (write) {
    const file = join(__dirname, 'RESULTS.md');
    const header = `## ${new Date().toISOString().slice(0, 10)} — ${machine()}`;
    const existing = readFileSync(file, 'utf8');
    const [intro, ...rest] = existing.split(/\n(?=## )/);
    // Each section trimmed: joined with one blank line, the file does not grow blank lines on every write.
    writeFileSync(file, [intro!.trimEnd(), `${header}\n\n${sections.join('\n\n')}`, ...rest.map((section) => section.trimEnd())].join('\n\n') + '\n');
    console.log(`\nWritten to bench/RESULTS.md`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
