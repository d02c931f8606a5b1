/**
 * Per-scope limits with 100,000 users: heap held per live key, timers created (none should be),
 * and that idle keys are dropped, so that memory stays bounded.
 */
import OpenAI from 'openai';
import { createGuardedClient, type ScopeLimits } from '../lib';
import { fmt, memoryFetch, table } from './support';

const messages = [{ role: 'user' as const, content: 'hi' }];
function heapMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function scenario(name: string, user: ScopeLimits, keys: number, waitIdleMs: number, log: (line: string) => void): Promise<Array<string | number>> {
  const fetchImpl = memoryFetch();
  const client = createGuardedClient(new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://memory.invalid/v1', maxRetries: 0, fetch: fetchImpl }), {
    limits: { maxConcurrent: 256, adaptive: false, perScope: { user } },
    // This measures the limiter's per-key memory: 1,000 calls at once without max_tokens would
    // otherwise reserve past the default $50 global budget.
    cost: { budgets: [] },
  });
  const before = heapMiB();
  const timersBefore = timers();
  const started = performance.now();
  for (let base = 0; base < keys; base += 1000) {
    await Promise.all(Array.from({ length: 1000 }, (_, i) => client.guard.withScope({ user: `user-${base + i}` }).chat.completions.create({ model: 'gpt-4o-mini', messages })));
  }
  const elapsed = performance.now() - started;
  const live = client.guard.status().limiter.scopes?.user ?? 0;
  const after = heapMiB();
  const timersAdded = timers() - timersBefore;
  let idleLive: number | string = '—';
  let idleHeap = '—';
  // Heap per live key: what the keys hold above the start; when they expire, what their expiry
  // gave back (a few thousand live keys are too few to read it above the start's noise).
  let perKeyKiB = live ? ((after - before) * 1024) / live : undefined;
  if (waitIdleMs > 0) {
    await new Promise((r) => setTimeout(r, waitIdleMs));
    const stillLive = client.guard.status().limiter.scopes?.user ?? 0;
    const idle = heapMiB();
    idleLive = stillLive;
    idleHeap = `${fmt(idle - before, 1)} MiB`;
    if (live > stillLive) perKeyKiB = ((after - idle) * 1024) / (live - stillLive);
  }
  await client.guard.close();
  const perKey = perKeyKiB === undefined ? '—' : `${fmt(perKeyKiB, 2)} KiB`;
  log(`  ${name}: ${live} live keys after ${keys} users, +${fmt(after - before, 1)} MiB, ${timersAdded} timers added; after ${waitIdleMs / 1000} s idle: ${idleLive} keys, ${idleHeap}`);
  return [name, keys.toLocaleString('en'), fmt(keys / (elapsed / 1000), 0), live.toLocaleString('en'), `${fmt(after - before, 1)} MiB`, perKey, timersAdded, String(idleLive), idleHeap];
}

export async function runScopeMemory(log: (line: string) => void = console.log): Promise<{ markdown: string }> {
  const rows = [
    await scenario('maxConcurrent 2 per user', { maxConcurrent: 2 }, 100_000, 0, log),
    // Each key stays live for a minute after its call: the heap per live key.
    await scenario('1 request/min + maxConcurrent 2 per user', { requestsPerMinute: 1, maxConcurrent: 2 }, 100_000, 0, log),
    // Each key's bucket is full again a second after its call: idle keys are dropped.
    await scenario('60 requests/min + maxConcurrent 2 per user', { requestsPerMinute: 60, maxConcurrent: 2 }, 100_000, 2_000, log),
  ];
  return {
    markdown: `${table(
      ['per-user limit', 'users (one call each)', 'calls/s', 'live keys after', 'heap added', 'per live key', 'timers added', 'live keys 2 s later', 'heap 2 s later'],
      rows,
    )}\n\nPer live key: heap added ÷ live keys; where the keys expire (the last row), the heap their expiry gave back ÷ the keys that expired.\n`,
  };
}
