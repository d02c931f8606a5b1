import type { RequestRecord } from '../../lib/testing';

/** The most arrivals the server saw in any window of `windowMs`. */
export function maxInWindow(times: number[], windowMs: number, weights?: number[]): number {
  const sorted = times.map((t, i) => [t, weights?.[i] ?? 1] as const).sort((a, b) => a[0] - b[0]);
  let best = 0;
  let sum = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    sum += sorted[end]![1];
    while (sorted[end]![0] - sorted[start]![0] >= windowMs) sum -= sorted[start++]![1];
    best = Math.max(best, sum);
  }
  return best;
}

/** The same, counting only windows that start `afterMs` after the first arrival (past the first burst). */
export function maxInWindowAfter(times: number[], windowMs: number, afterMs: number, weights?: number[]): number {
  const first = Math.min(...times);
  const keep = times.map((t, i) => [t, weights?.[i] ?? 1] as const).filter(([t]) => t >= first + afterMs);
  return maxInWindow(keep.map(([t]) => t), windowMs, keep.map(([, w]) => w));
}

export function arrivalsOf(records: RequestRecord[]): number[] {
  return records.map((r) => r.at);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `predicate` holds (checked every 2 ms), or fails after `ms`. */
export async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(2);
  }
}

/**
 * How far the arrivals exceed a token bucket of `capacity` refilled at `perSecond` over any
 * window (≤ 0 means they never did): the shape every per-minute limit here promises.
 */
export function bucketExcess(times: number[], capacity: number, perSecond: number, weights?: number[]): number {
  const sorted = times.map((t, i) => [t, weights?.[i] ?? 1] as const).sort((a, b) => a[0] - b[0]);
  let worst = -Infinity;
  for (let i = 0; i < sorted.length; i++) {
    let sum = 0;
    for (let j = i; j < sorted.length; j++) {
      sum += sorted[j]![1];
      worst = Math.max(worst, sum - (capacity + (perSecond * (sorted[j]![0] - sorted[i]![0])) / 1000));
    }
  }
  return worst;
}

/** Arrivals per second from `afterMs` past the first arrival to the last one (the steady rate after a burst). */
export function steadyRate(times: number[], afterMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  const steady = sorted.filter((t) => t >= sorted[0]! + afterMs);
  return (steady.length - 1) / ((steady[steady.length - 1]! - steady[0]!) / 1000);
}
