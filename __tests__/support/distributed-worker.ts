/**
 * One "replica" for the Distributed-mode tests, run as its own Node process: it creates a guarded
 * client from WORKER_SPEC, says "ready" once Redis is up, waits for "go" on stdin, makes its
 * calls, and prints one JSON line with what happened.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient } from '../../lib';
import type { ReplicaSpec as WorkerSpec } from './replicas';

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.WORKER_SPEC!) as WorkerSpec;
  const client = createGuardedClient(new Anthropic({ apiKey: spec.apiKey, baseURL: spec.baseURL }), { ...spec.options, ...(spec.redisUrl ? { redis: spec.redisUrl } : {}) });
  for (let i = 0; i < 100 && spec.redisUrl && client.guard.status().shared?.redis !== 'up'; i++) await new Promise((r) => setTimeout(r, 50));
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));

  const started = performance.now();
  const errors: Record<string, number> = {};
  let ok = 0;
  let next = 0;
  const run = async () => {
    while (next < spec.calls) {
      next++;
      try {
        await client.messages.create({ model: spec.model, max_tokens: spec.maxTokens, messages: [{ role: 'user', content: 'Hello from a replica' }] });
        ok++;
      } catch (error) {
        const name = (error as Error).name;
        errors[name] = (errors[name] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, run));
  const elapsedMs = performance.now() - started;
  const status = client.guard.status();
  await client.guard.close();
  process.stdout.write(JSON.stringify({ ok, errors, costUsd: status.totals.costUsd, provider429s: status.totals.provider429s, elapsedMs }) + '\n');
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ crashed: String(error) }) + '\n');
  process.exitCode = 1;
});
