/**
 * One "replica" for the Distributed-mode tests, run as its own Node process: it creates a guarded
 * client from WORKER_SPEC and calls at once, as a worker that boots into traffic does (with
 * `barrier`: says "ready" once Redis is up and waits for "go" on stdin first), then prints one
 * JSON line with what happened.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createGuardedClient, isGuardError } from '../../lib';
import type { ReplicaSpec as WorkerSpec } from './replicas';

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.WORKER_SPEC!) as WorkerSpec;
  let redis: unknown = spec.redisUrl;
  if (spec.clusterNodes) {
    const { Cluster } = await import('ioredis');
    redis = new Cluster(spec.clusterNodes, { enableOfflineQueue: false, redisOptions: { connectTimeout: 2000, maxRetriesPerRequest: 1 } });
  }
  const base = createGuardedClient(new Anthropic({ apiKey: spec.apiKey, baseURL: spec.baseURL }), { ...spec.options, ...(redis ? { redis: redis as string } : {}) });
  const client = spec.scope ? base.guard.withScope(spec.scope) : base;
  if (spec.barrier) {
    for (let i = 0; i < 100 && redis && client.guard.status().shared?.redis !== 'up'; i++) await new Promise((r) => setTimeout(r, 50));
    process.stdout.write('ready\n');
    await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  }

  const started = performance.now();
  const errors: Record<string, number> = {};
  const retryAfterMs: number[] = [];
  let ok = 0;
  let next = 0;
  const more = () => (spec.durationMs !== undefined ? performance.now() - started < spec.durationMs : next < spec.calls);
  const run = async () => {
    while (more()) {
      next++;
      try {
        await client.messages.create({
          model: spec.model,
          ...(spec.maxTokens !== undefined ? { max_tokens: spec.maxTokens } : {}),
          messages: [{ role: 'user', content: 'Hello from a replica' }],
        } as Anthropic.MessageCreateParamsNonStreaming);
        ok++;
      } catch (error) {
        const name = (error as Error).name;
        errors[name] = (errors[name] ?? 0) + 1;
        if (isGuardError(error) && error.retryAfterMs !== undefined) retryAfterMs.push(error.retryAfterMs);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, run));
  const elapsedMs = performance.now() - started;
  const status = client.guard.status();
  await client.guard.close();
  if (redis && typeof redis !== 'string') (redis as { disconnect(): void }).disconnect();
  process.stdout.write(JSON.stringify({ ok, errors, costUsd: status.totals.costUsd, provider429s: status.totals.provider429s, elapsedMs, retryAfterMs }) + '\n');
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ crashed: String(error) }) + '\n');
  process.exitCode = 1;
});
