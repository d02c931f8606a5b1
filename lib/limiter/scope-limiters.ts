import type { ResolvedConfig } from '../config/options';
import type { GuardScope, ScopeKind } from '../scope-kinds';
import type { Grant } from './slots';

/** Live keys are looked over this often (every N calls, no timer) to drop the idle ones. */
const SWEEP_EVERY = 1024;

/** One scope key's limits (a user's, a tenant's…), as the traffic limiter uses them. */
export interface ScopeLimiter {
  /** e.g. 'user:alice'. */
  readonly key: string;
  /** The rate in calls per ms, when it has one. */
  readonly perMs: number | undefined;
  /** Its bucket: "10 per minute" holds 10. */
  readonly capacity: number;
  /** How long a new call would wait for the rate (those already waiting included); 0 = at once. */
  waitMs(): number;
  /** A slot at once when nobody waits and there is room; else undefined. */
  takeNow(): Grant | undefined;
  /** A slot, in arrival order. */
  take(): Grant | Promise<Grant>;
  /** Forgets the key if it holds nothing a fresh one would not (called after a release). */
  dropIfIdle(): void;
}

interface KindLimits {
  maxConcurrent: number | undefined;
  perMs: number | undefined;
  capacity: number;
}

/**
 * One key's state, kept light (a few numbers; an array and a timer only while calls wait): the
 * rate as GCRA — `tat` is when its bucket would be empty — and the calls holding a slot.
 */
class ScopeKey implements ScopeLimiter {
  /** Theoretical arrival time: the bucket holds capacity - (tat - now) · perMs. */
  private tat = 0;
  private running = 0;
  private waiters: Array<(grant: Grant) => void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly key: string,
    private readonly limits: KindLimits,
    private readonly forget: () => void,
  ) {}

  get perMs(): number | undefined {
    return this.limits.perMs;
  }

  get capacity(): number {
    return this.limits.capacity;
  }

  /** How long until one more unit of the rate is there (0: now). */
  private rateWaitMs(now: number): number {
    const { perMs, capacity } = this.limits;
    if (perMs === undefined) return 0;
    return Math.max(0, Math.max(this.tat, now) + 1 / perMs - capacity / perMs - now);
  }

  private fits(now: number): boolean {
    return (this.limits.maxConcurrent === undefined || this.running < this.limits.maxConcurrent) && this.rateWaitMs(now) === 0;
  }

  private grant(now: number): Grant {
    const { perMs } = this.limits;
    if (perMs !== undefined) this.tat = Math.max(this.tat, now) + 1 / perMs;
    this.running++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running--;
      this.pump();
    };
    return {
      release,
      undo: () => {
        release();
        // As if it never went: its unit of the rate comes back.
        if (perMs !== undefined) this.tat -= 1 / perMs;
        this.pump();
      },
    };
  }

  waitMs(): number {
    const { perMs } = this.limits;
    if (perMs === undefined) return 0;
    // Each call already waiting takes its own unit first.
    return this.rateWaitMs(Date.now()) + (this.waiters?.length ?? 0) / perMs;
  }

  takeNow(): Grant | undefined {
    const now = Date.now();
    return this.waiters?.length || !this.fits(now) ? undefined : this.grant(now);
  }

  take(): Grant | Promise<Grant> {
    const now = this.takeNow();
    if (now) return now;
    return new Promise((resolve) => {
      (this.waiters ??= []).push(resolve);
      this.pump();
    });
  }

  /** Lets waiting calls go while there is room; wakes itself when the rate has the next unit. */
  private pump(): void {
    const waiters = this.waiters;
    if (!waiters?.length) return;
    const now = Date.now();
    while (waiters.length && this.fits(now)) waiters.shift()!(this.grant(now));
    if (!waiters.length) {
      this.waiters = undefined;
      return;
    }
    const wait = this.rateWaitMs(now);
    if (wait > 0 && !this.timer) {
      // The waiting call keeps the process alive (the limiter's keep-alive), not this timer.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, Math.ceil(wait));
      this.timer.unref();
    }
  }

  /** Nothing held, nobody waiting, its bucket full again: a fresh key would be the same. */
  get idle(): boolean {
    return this.running === 0 && !this.waiters?.length && this.tat <= Date.now();
  }

  dropIfIdle(): void {
    if (this.idle) this.forget();
  }

  close(): void {
    clearTimeout(this.timer);
  }
}

/** No per-scope limits: one shared empty list instead of one per call. */
const NO_LIMITERS: readonly ScopeLimiter[] = Object.freeze([]);

/**
 * Per-scope limits (`limits.perScope.user = { requestsPerMinute, maxConcurrent }`): one light
 * state per live key (user id, tenant id…), dropped when it holds nothing a fresh one would not.
 * A per-scope rate is a fairness limit: its bucket holds the whole minute, so "10 per minute"
 * allows 10 at once; it is exactly what was set (no provider margin). No timers, but one while
 * calls of a key wait for its rate.
 */
export class ScopeLimiters {
  private kinds = new Map<ScopeKind, KindLimits>();
  private keys = new Map<string, ScopeKey>();
  private calls = 0;

  constructor(perScope: ResolvedConfig['limits']['perScope']) {
    this.configure(perScope);
  }

  configure(perScope: ResolvedConfig['limits']['perScope']): void {
    const kinds = new Map<ScopeKind, KindLimits>();
    for (const [kind, limits] of Object.entries(perScope) as Array<[ScopeKind, NonNullable<(typeof perScope)['user']>]>) {
      if (!limits || (limits.maxConcurrent === undefined && limits.requestsPerMinute === undefined)) continue;
      const rate = limits.requestsPerMinute;
      kinds.set(kind, { maxConcurrent: limits.maxConcurrent, perMs: rate === undefined ? undefined : rate / 60_000, capacity: rate === undefined ? 0 : Math.max(1, Math.floor(rate)) });
    }
    this.kinds = kinds;
    // Calls holding slots of the old limits finish there; new calls start from fresh keys.
    for (const key of this.keys.values()) key.close();
    this.keys = new Map();
  }

  get active(): boolean {
    return this.kinds.size > 0;
  }

  /** The limiters that apply to `scope`, outermost first. */
  limitersFor(scope: Readonly<GuardScope>): readonly ScopeLimiter[] {
    if (this.kinds.size === 0) return NO_LIMITERS;
    if (++this.calls % SWEEP_EVERY === 0) this.sweep();
    const out: ScopeLimiter[] = [];
    for (const [kind, limits] of this.kinds) {
      const id = scope[kind];
      if (id === undefined) continue;
      const name = `${kind}:${id}`;
      let key = this.keys.get(name);
      if (!key) {
        const keys = this.keys;
        key = new ScopeKey(name, limits, () => keys.get(name) === key && keys.delete(name));
        keys.set(name, key);
      }
      out.push(key);
    }
    return out;
  }

  /** Drops keys that came back to nothing (a key left with its bucket not yet full is dropped here later). */
  private sweep(): void {
    for (const [name, key] of this.keys) if (key.idle) this.keys.delete(name);
  }

  /** How many keys are live, per scope kind (idle ones are dropped first). */
  sizes(): Record<string, number> {
    this.sweep();
    const out: Record<string, number> = {};
    for (const kind of this.kinds.keys()) out[kind] = 0;
    for (const name of this.keys.keys()) {
      const kind = name.slice(0, name.indexOf(':'));
      out[kind] = (out[kind] ?? 0) + 1;
    }
    return out;
  }

  close(): void {
    for (const key of this.keys.values()) key.close();
    this.keys.clear();
  }
}
