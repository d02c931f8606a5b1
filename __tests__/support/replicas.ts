import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { GuardOptions } from '../../lib';

export interface ReplicaSpec {
  baseURL: string;
  apiKey: string;
  /** Without it the replica keeps its limits and budgets to itself (the baselines of the bench). */
  redisUrl?: string;
  options: GuardOptions;
  calls: number;
  concurrency: number;
  model: string;
  maxTokens: number;
}

export interface ReplicaResult {
  ok: number;
  errors: Record<string, number>;
  costUsd: number;
  provider429s: number;
  /** From "go" to its last call's end. */
  elapsedMs: number;
}

const WORKER = join(__dirname, 'distributed-worker.ts');

/**
 * Starts `n` Node processes running the worker (or one per spec, given a list), lets them all go
 * at once, and collects their reports.
 */
export async function runReplicas(n: number, spec: ReplicaSpec | ReplicaSpec[]): Promise<ReplicaResult[]> {
  const specs = Array.isArray(spec) ? spec : Array.from({ length: n }, () => spec);
  const children: ChildProcess[] = [];
  const lines: Array<AsyncIterator<string>> = [];
  try {
    for (const one of specs) {
      const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
        env: { ...process.env, WORKER_SPEC: JSON.stringify(one) },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      children.push(child);
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
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill();
  }
}
