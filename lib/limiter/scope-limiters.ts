import Bottleneck from 'bottleneck';
import { freeNow, localReservoir, makeFast, takeNow } from '../internal/bottleneck';
import type { ResolvedConfig } from '../config/options';
import type { GuardScope, ScopeKey } from '../scope';
import { SAFETY_MARGIN, refillSettings } from './bucket';

/** A held slot in some limiter; `undo` gives it back as if the call never went. */
export interface Grant {
  release(): void;
  undo(): void;
}

/** Idle per-scope limiters are dropped after this long: by then a per-minute bucket is full again. */
export const SCOPE_IDLE_MS = 90_000;

/** A slot taken at once when nothing waits and there is room; undefined otherwise. */
export function takeSlotNow(limiter: Bottleneck, weight = 1): Grant | undefined {
  if (!takeNow(limiter, weight)) return undefined;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    freeNow(limiter, weight);
  };
  return {
    release,
    undo: () => {
      release();
      if (weight > 0 && localReservoir(limiter) !== null) void limiter.incrementReservoir(weight).catch(() => {});
    },
  };
}

/** Takes one slot of a Bottleneck limiter and holds it until released. */
export function holdSlot(limiter: Bottleneck, weight = 1): Promise<Grant> | Grant {
  const now = takeSlotNow(limiter, weight);
  if (now) return now;
  return new Promise((granted, failed) => {
    limiter
      .schedule(
        { weight },
        () =>
          new Promise<void>((done) => {
            let released = false;
            const release = () => {
              if (released) return;
              released = true;
              done();
            };
            granted({
              release,
              undo: () => {
                release();
                // (An unlimited limiter has no reservoir to give back to.)
                if (weight > 0 && localReservoir(limiter) !== null) void limiter.incrementReservoir(weight).catch(() => {});
              },
            });
          }),
      )
      .catch(failed);
  });
}

/**
 * Per-scope limits (`limits.perScope.user = { requestsPerMinute, maxConcurrent }`), one
 * Bottleneck.Group per scope kind, one limiter per key (user id, tenant id…). A per-scope rate
 * is a fairness limit: its bucket holds the whole minute, so "10 per minute" allows 10 at once.
 */
/** One scope's limiter, with its refill rate when it has a rate limit. */
export interface ScopeLimiter {
  key: string;
  limiter: Bottleneck;
  perMs: number | undefined;
}

export class ScopeLimiters {
  private groups = new Map<ScopeKey, { group: Bottleneck.Group; perMs: number | undefined }>();

  constructor(perScope: ResolvedConfig['limits']['perScope']) {
    this.configure(perScope);
  }

  configure(perScope: ResolvedConfig['limits']['perScope']): void {
    const old = this.groups;
    this.groups = new Map();
    for (const [scope, limits] of Object.entries(perScope) as Array<[ScopeKey, NonNullable<(typeof perScope)['user']>]>) {
      if (!limits || (limits.maxConcurrent === undefined && limits.requestsPerMinute === undefined)) continue;
      const rate = limits.requestsPerMinute === undefined ? undefined : limits.requestsPerMinute * SAFETY_MARGIN;
      const options: Bottleneck.ConstructorOptions & { timeout: number } = {
        maxConcurrent: limits.maxConcurrent ?? null,
        ...(rate ? refillSettings({ perMinute: rate, capacity: Math.max(1, Math.floor(rate)) }, Math.max(1, Math.floor(rate))) : {}),
        timeout: SCOPE_IDLE_MS,
      };
      const group = new Bottleneck.Group(options);
      group.on('created', (limiter: Bottleneck) => makeFast(limiter));
      this.groups.set(scope, { group, perMs: rate === undefined ? undefined : rate / 60_000 });
    }
    // Calls holding slots of replaced groups finish there; the old groups are dropped after.
    for (const { group } of old.values()) void group.disconnect(false);
  }

  get active(): boolean {
    return this.groups.size > 0;
  }

  /** The limiters that apply to `scope`, outermost first. */
  limitersFor(scope: Readonly<GuardScope>): ScopeLimiter[] {
    const out: ScopeLimiter[] = [];
    for (const [kind, { group, perMs }] of this.groups) {
      const key = scope[kind];
      if (key !== undefined) out.push({ key: `${kind}:${key}`, limiter: group.key(key), perMs });
    }
    return out;
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
    await Promise.all([...this.groups.values()].map(({ group }) => group.disconnect(false)));
    this.groups.clear();
  }
}
