import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { GuardOptions, GuardScope } from '../../lib';

export interface ReplicaSpec {
  baseURL: string;
  apiKey: string;
  /** Without it the replica keeps its limits and budgets to itself (the baselines of the bench). */
  redisUrl?: string;
  options: GuardOptions;
  /** Calls to make; with `durationMs`, calls go on until that time has passed instead. */
  calls: number;
  durationMs?: number;
  concurrency: number;
  model: string;
  /** Undefined: the call sets no max tokens (the model's largest output is what is reserved). */
  maxTokens?: number;
  /** The scope every call is made in (e.g. one user). */
  scope?: GuardScope;
  /**
   * Wait for Redis, then for "go" on stdin, before the first call (a barrier). Default false: the
   * replica calls from its first millisecond, as a worker that boots into traffic does.
   */
  barrier?: boolean;
  /** Redis Cluster: the worker passes an ioredis Cluster built from these nodes as `redis`. */
  clusterNodes?: Array<{ host: string; port: number }>;
}

export interface ReplicaResult {
  ok: number;
  errors: Record<string, number>;
  costUsd: number;
  provider429s: number;
  /** From the first call (or "go") to its last call's end. */
  elapsedMs: number;
  /** Retry-After (ms) of each RateLimitExceededError, as the caller saw it. */
  retryAfterMs: number[];
}

const WORKER = join(__dirname, 'distributed-worker.ts');

/** One replica process: its report, or a kill before it reports. */
export interface Replica {
  readonly child: ChildProcess;
  /** Resolves with the report, or undefined if the process died without one (SIGKILL). */
  readonly done: Promise<ReplicaResult | undefined>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts one replica process now (its first call follows as fast as Node can start it). */
export function startReplica(spec: ReplicaSpec): Replica {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
    env: { ...process.env, WORKER_SPEC: JSON.stringify(spec) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const done = (async () => {
    for (;;) {
      const line = await lines.next();
      if (line.done) return undefined;
      if (line.value === 'ready') {
        child.stdin!.write('go\n');
        continue;
      }
      const report = JSON.parse(line.value as string) as ReplicaResult & { crashed?: string };
      if (report.crashed) throw new Error(`a replica crashed: ${report.crashed}`);
      return report;
    }
  })();
  done.catch(() => {});
  return { child, done, kill: (signal = 'SIGKILL') => child.kill(signal) };
}

/**
 * Starts `n` replica processes (or one per spec, given a list), each `delaysMs[i]` after the
 * first (0 by default: one after another, as fast as they spawn), and collects their reports.
 * Without `barrier` in the spec, each calls from its first millisecond: no one waits for Redis.
 */
export async function runReplicas(n: number, spec: ReplicaSpec | ReplicaSpec[], delaysMs: number[] = []): Promise<ReplicaResult[]> {
  const specs = Array.isArray(spec) ? spec : Array.from({ length: n }, () => spec);
  const barrier = specs.some((s) => s.barrier);
  const replicas: Replica[] = [];
  try {
    if (barrier) return await runWithBarrier(specs, replicas);
    const started = performance.now();
    for (const [i, one] of specs.entries()) {
      const wait = (delaysMs[i] ?? 0) - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      replicas.push(startReplica(one));
    }
    const results: ReplicaResult[] = [];
    for (const replica of replicas) {
      const report = await replica.done;
      if (!report) throw new Error('a replica exited without a report');
      results.push(report);
    }
    return results;
  } finally {
    for (const { child } of replicas) if (child.exitCode === null) child.kill();
  }
}

/** All replicas ready (Redis up), then "go" to all at once: only where a barrier is what a test is about. */
async function runWithBarrier(specs: ReplicaSpec[], replicas: Replica[]): Promise<ReplicaResult[]> {
  const children: ChildProcess[] = [];
  const lines: Array<AsyncIterator<string>> = [];
  for (const one of specs) {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: { ...process.env, WORKER_SPEC: JSON.stringify(one) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    children.push(child);
    replicas.push({ child, done: Promise.resolve(undefined), kill: () => child.kill() });
    lines.push(createInterface({ input: child.stdout! })[Symbol.asyncIterator]());
  }
  for (const it of lines) {
    const first = await it.next();
    if (first.value !== 'ready') throw new Error(`a replica did not start: ${String(first.value)}`);
  }
  for (const child of children) child.stdin!.write('go\n');
  const results: ReplicaResult[] = [];
  for (const it of lines) {
    const report = JSON.parse((await it.next()).value as string) as ReplicaResult & { crashed?: string };
    if (report.crashed) throw new Error(`a replica crashed: ${report.crashed}`);
    results.push(report);
  }
  return results;
}
