import Bottleneck from 'bottleneck';
import { adjustReservoir, freeNow, isIdle, localReservoir, makeFast, setLocalSettings, stopGroupCleanup, takeNow } from '../internal/bottleneck';
import type { ResolvedConfig } from '../config/options';
import type { GuardScope, ScopeKind } from '../scope-kinds';

/** A held slot in some limiter; `undo` gives it back as if the call never went. */
export interface Grant {
  release(): void;
  undo(): void;
}

/** Idle per-scope limiters are dropped after this long: by then a per-minute bucket is full again. */
export const SCOPE_IDLE_MS = 90_000;

/** A grant whose release runs once; undo also gives the taken weight back to the reservoir. */
function grant(limiter: Bottleneck, weight: number, free: () => void): Grant {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    free();
  };
  return {
    release,
    undo: () => {
      release();
      adjustReservoir(limiter, weight);
    },
  };
}

/** A slot taken at once when nothing waits and there is room; undefined otherwise. */
export function takeSlotNow(limiter: Bottleneck, weight = 1): Grant | undefined {
  return takeNow(limiter, weight) ? grant(limiter, weight, () => freeNow(limiter, weight)) : undefined;
}

/** Takes one slot of a Bottleneck limiter and holds it until released. */
export function holdSlot(limiter: Bottleneck, weight = 1): Promise<Grant> | Grant {
  const now = takeSlotNow(limiter, weight);
  if (now) return now;
  return new Promise((granted, failed) => {
    limiter
      .schedule(
        { weight },
        () => new Promise<void>((done) => granted(grant(limiter, weight, done))),
      )
      .catch(failed);
  });
}

/** One scope's limiter, with its refill rate and bucket size when it has a rate limit. */
export interface ScopeLimiter {
  key: string;
  limiter: Bottleneck;
  perMs: number | undefined;
  capacity: number;
  /** Drops the key's limiter if it holds nothing a fresh one would not (called after a release). */
  dropIfIdle(): void;
}

/**
 * Per-scope limits (`limits.perScope.user = { requestsPerMinute, maxConcurrent }`), one
 * Bottleneck.Group per scope kind, one limiter per key (user id, tenant id…), dropped when idle.
 * A per-scope rate is a fairness limit: its bucket holds the whole minute, so "10 per minute"
 * allows 10 at once. Its reservoir is refilled when the key is used (and by a one-shot timer only
 * while a call waits on it), never by a heartbeat: 100,000 keys cost no timers at all.
 */
export class ScopeLimiters {
  private groups = new Map<ScopeKind, { group: Bottleneck.Group; perMs: number | undefined; capacity: number }>();
  private readonly refilledAt = new WeakMap<Bottleneck, number>();
  private readonly wakeups = new WeakMap<Bottleneck, ReturnType<typeof setTimeout>>();

  constructor(perScope: ResolvedConfig['limits']['perScope']) {
    this.configure(perScope);
  }

  configure(perScope: ResolvedConfig['limits']['perScope']): void {
    const old = this.groups;
    this.groups = new Map();
    for (const [scope, limits] of Object.entries(perScope) as Array<[ScopeKind, NonNullable<(typeof perScope)['user']>]>) {
      if (!limits || (limits.maxConcurrent === undefined && limits.requestsPerMinute === undefined)) continue;
      // Exactly what was set: a limit the operator put on their own users, not a provider's to stay under.
      const rate = limits.requestsPerMinute;
      const capacity = rate === undefined ? 0 : Math.max(1, Math.floor(rate));
      const options: Bottleneck.ConstructorOptions & { timeout: number } = {
        maxConcurrent: limits.maxConcurrent ?? null,
        reservoir: rate === undefined ? null : capacity,
        // Idle this long, a key's bucket is full again: dropping it forgets nothing.
        timeout: rate === undefined ? SCOPE_IDLE_MS : Math.ceil(capacity / (rate / 60_000)) + 5000,
      };
      const group = new Bottleneck.Group(options);
      group.on('created', (limiter: Bottleneck) => {
        makeFast(limiter);
        this.refilledAt.set(limiter, Date.now());
      });
      this.groups.set(scope, { group, perMs: rate === undefined ? undefined : rate / 60_000, capacity });
    }
    // Calls holding slots of replaced groups finish there; the old groups are dropped after.
    for (const { group } of old.values()) stopGroupCleanup(group);
  }

  get active(): boolean {
    return this.groups.size > 0;
  }

  /** The limiters that apply to `scope`, outermost first. */
  limitersFor(scope: Readonly<GuardScope>): ScopeLimiter[] {
    const out: ScopeLimiter[] = [];
    for (const [kind, { group, perMs, capacity }] of this.groups) {
      const key = scope[kind];
      if (key === undefined) continue;
      const limiter = group.key(key);
      const scoped: ScopeLimiter = {
        key: `${kind}:${key}`,
        limiter,
        perMs,
        capacity,
        dropIfIdle: () => {
          if (!isIdle(limiter)) return;
          const reservoir = localReservoir(limiter);
          if (reservoir !== null && reservoir < capacity) return;
          void group.deleteKey(key);
        },
      };
      this.refill(scoped);
      out.push(scoped);
    }
    return out;
  }

  /** Adds what the scope's bucket earned since it was last refilled. */
  private refill({ limiter, perMs, capacity }: ScopeLimiter): void {
    if (perMs === undefined) return;
    const now = Date.now();
    const last = this.refilledAt.get(limiter) ?? now;
    this.refilledAt.set(limiter, now);
    const reservoir = localReservoir(limiter);
    if (reservoir === null || reservoir >= capacity) return;
    setLocalSettings(limiter, { reservoir: Math.min(capacity, reservoir + (now - last) * perMs) });
  }

  /** A call now waits on this scope: refill it when the next unit is due, until nothing waits. */
  wake(scoped: ScopeLimiter): void {
    const { limiter, perMs } = scoped;
    if (perMs === undefined || this.wakeups.has(limiter)) return;
    const reservoir = localReservoir(limiter) ?? 0;
    const timer = setTimeout(() => {
      this.wakeups.delete(limiter);
      this.refill(scoped);
      if (limiter.queued() > 0) this.wake(scoped);
    }, Math.max(1, Math.ceil((1 - reservoir) / perMs)));
    timer.unref(); // the waiting call keeps the process alive, not this timer
    this.wakeups.set(limiter, timer);
  }

  /** How long a new call would wait for this scope's rate (0 = at once). */
  static waitMs({ limiter, perMs }: ScopeLimiter): number {
    const reservoir = localReservoir(limiter);
    if (perMs === undefined || reservoir === null) return 0;
    const need = limiter.queued() + 1 - reservoir;
    return need > 0 ? need / perMs : 0;
  }

  /** How many keys are live, per scope kind. */
  sizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, { group }] of this.groups) out[kind] = group.keys().length;
    return out;
  }

  async close(): Promise<void> {
    for (const { group } of this.groups.values()) {
      stopGroupCleanup(group);
      await Promise.all(group.keys().map((key) => group.deleteKey(key)));
    }
    this.groups.clear();
  }
}
