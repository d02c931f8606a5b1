/**
 * One in-memory throughput scenario of the overhead and compare benches, run in a process of its
 * own (see throughputInFreshProcess in bench/support.ts): `tsx bench/throughput.ts '{"guardedClient":true,"calls":20000,…}'` prints
 * `{ "perSecond": … }` as its last line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { builtPackage, memoryFetch, type ThroughputScenario } from './support';

const messages = [{ role: 'user' as const, content: 'Hello there, how are you today?' }];

async function main(): Promise<void> {
  const { guardedClient, calls, inFlight, budgets, longSystem, root } = JSON.parse(process.argv[2] ?? '{}') as ThroughputScenario;
  const system = longSystem ? readFileSync(join(__dirname, '..', 'README.md'), 'utf8').slice(0, 8000) : undefined;
  // The guard's defaults, as users run it (adaptive mode: this fetch sends no rate-limit headers, so
  // nothing is learned; it once set adaptive off, which hid a cost that only the default paid).
  const base = new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://memory.invalid/v1', maxRetries: 0, fetch: memoryFetch() });
  const client = guardedClient ? builtPackage(root).createGuardedClient(base, { limits: { maxConcurrent: inFlight }, logLevel: 'silent', ...(budgets ? {} : { cost: { budgets: [] } }) }) : base;
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      next++;
      await client.chat.completions.create({ model: 'gpt-4o-mini', messages: system ? [{ role: 'system' as const, content: system }, ...messages] : messages, max_tokens: 16 });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker)); // warm-up round
  next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const perSecond = calls / ((performance.now() - started) / 1000);
  if ('guard' in client) await (client as { guard: { close(): Promise<void> } }).guard.close();
  console.log(JSON.stringify({ perSecond }));
}

void main();
