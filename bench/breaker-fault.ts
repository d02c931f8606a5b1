/**
 * What a provider fault costs the process when the breaker's window is full of calls: opossum
 * with its latency percentiles on (its default: every call's latency kept, the window's sorted on
 * each failure) beside off (the guard's setting), and the guard itself, an in-memory fetch.
 */
import CircuitBreaker from 'opossum';
import OpenAI from 'openai';
import { createGuardedClient } from '../lib';
import { fmt, memoryFetch, table } from './support';

const WINDOW_CALLS = 60_000;
const FAULTS = 20;

async function opossumPerFault(percentiles: boolean): Promise<number> {
  const b = new CircuitBreaker((f: () => Promise<unknown>) => f(), { timeout: false, rollingCountTimeout: 60_000, rollingCountBuckets: 10, volumeThreshold: 5, errorThresholdPercentage: 50, allowWarmUp: false, rollingPercentilesEnabled: percentiles });
  for (let i = 0; i < WINDOW_CALLS; i++) await b.fire(() => Promise.resolve());
  const started = performance.now();
  for (let i = 0; i < FAULTS; i++) await b.fire(() => Promise.reject(new Error('fault'))).catch(() => {});
  b.shutdown();
  return (performance.now() - started) / FAULTS;
}

async function guardPerFault(): Promise<{ ok: number; fault: number }> {
  let failing = false;
  const ok = memoryFetch();
  const fetch: typeof globalThis.fetch = async (...args) => (failing ? new Response('{"error":{"message":"boom"}}', { status: 500, headers: { 'content-type': 'application/json' } }) : ok(...args));
  const client = createGuardedClient(new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://memory.invalid/v1', maxRetries: 0, fetch }), { limits: { maxConcurrent: 64, adaptive: false }, retry: 0, logLevel: 'silent' });
  const call = () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 16 });
  let started = performance.now();
  for (let i = 0; i < WINDOW_CALLS; i++) await call();
  const perOk = (performance.now() - started) / WINDOW_CALLS;
  failing = true;
  started = performance.now();
  for (let i = 0; i < FAULTS; i++) await call().catch(() => {});
  const perFault = (performance.now() - started) / FAULTS;
  await client.guard.close();
  return { ok: perOk, fault: perFault };
}

export async function runBreakerFault(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const on = await opossumPerFault(true);
  const off = await opossumPerFault(false);
  const guard = await guardPerFault();
  log(`  opossum, percentiles on: ${fmt(on, 3)} ms per fault; off: ${fmt(off, 3)} ms; the guard: ${fmt(guard.fault, 3)} ms per failed call (${fmt(guard.ok, 3)} ms per call before)`);
  const markdown = [
    table(
      [`${WINDOW_CALLS.toLocaleString('en')} calls in the breaker's window, then ${FAULTS} faults`, 'CPU per fault'],
      [
        ['opossum, rollingPercentilesEnabled (its default)', `${fmt(on, 3)} ms`],
        ['opossum, rollingPercentilesEnabled: false', `${fmt(off, 3)} ms`],
        ['the guard (a 500 from an in-memory fetch, retry 0)', `**${fmt(guard.fault, 3)} ms** (a successful call: ${fmt(guard.ok, 3)} ms)`],
      ],
    ),
  ].join('\n');
  return { markdown };
}
