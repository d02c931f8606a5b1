/**
 * Fixes for Bottleneck 2.19.5 (its last release, pinned exactly), applied per instance so they
 * ship with this package (a patch-package patch would only fix this repo's own install) and
 * touch only limiters created here. Checked by __tests__/traffic/bottleneck-fixes.test.ts.
 *
 * 1. Speed: a local limiter spends ~2.3 ms scheduling each job: every internal step yields with
 *    `setTimeout(0)`, a job starts through another `setTimeout(0)`, and each of its ~10 internal
 *    events allocates async-generator garbage even with no listener. Fixed: ~55 µs per job.
 * 2. Refill: `updateSettings()` on a limiter whose refill heartbeat runs *stops* the heartbeat
 *    for good (its `_startHeartbeat` clears the interval instead of keeping it), so a reservoir
 *    that is re-synced or paused never refills again. Fixed: the heartbeat restarts as needed,
 *    and its period can be changed.
 */
import Bottleneck from 'bottleneck';

interface StoreOptions {
  reservoir: number | null;
  reservoirRefreshInterval?: number | null;
  reservoirRefreshAmount?: number | null;
  reservoirIncreaseInterval?: number | null;
  reservoirIncreaseAmount?: number | null;
  reservoirIncreaseMaximum?: number | null;
}

interface LocalStore {
  yieldLoop(t?: number): Promise<void>;
  storeOptions?: StoreOptions;
  heartbeat?: ReturnType<typeof setInterval> | null;
  heartbeatInterval: number;
  _heartbeatMs?: number;
  _lastReservoirRefresh: number;
  _lastReservoirIncrease: number;
  _startHeartbeat(): void;
  computeCapacity(): unknown;
  instance: { _drainAll(capacity: unknown): unknown };
}

interface BottleneckInternals {
  _store: LocalStore;
  _run(index: string, job: JobInternals, wait: number): unknown;
  _clearGlobalState(index: string): boolean;
  _free(index: string, job: JobInternals, ...args: unknown[]): unknown;
  _scheduled: Record<string, { timeout: unknown; expiration?: ReturnType<typeof setTimeout>; job: JobInternals }>;
  _limiter: unknown;
  Events: { _events: Record<string, unknown[] | undefined>; trigger(name: string, ...args: unknown[]): Promise<unknown> };
}

interface JobInternals {
  options: { expiration?: number | null };
  doRun(): void;
  doExecute(limiter: unknown, clearGlobalState: () => boolean, run: (wait: number) => unknown, free: (...args: unknown[]) => unknown): unknown;
  doExpire(clearGlobalState: () => boolean, run: (wait: number) => unknown, free: (...args: unknown[]) => unknown): unknown;
}

const RESOLVED = Promise.resolve();
const FAST = Symbol.for('guarded-llm.fastBottleneck');

/** Applies the fixes to one limiter (idempotent). Redis-backed limiters only get the event fix. */
export function makeFast<T extends Bottleneck>(limiter: T): T {
  const l = limiter as unknown as BottleneckInternals & { [FAST]?: true };
  if (l[FAST]) return limiter;
  l[FAST] = true;

  // Events nobody listens to are not built (Bottleneck triggers ~10 per job, plus "debug" copies).
  const events = l.Events;
  const trigger = events.trigger.bind(events);
  events.trigger = (name, ...args) => (events._events[name]?.length || events._events.debug?.length ? trigger(name, ...args) : RESOLVED);

  if (!l._store.storeOptions) return limiter; // Redis datastore: its waits are real I/O.

  l._store._startHeartbeat = startHeartbeat;

  // A zero-length yield needs no timer: a resolved promise keeps Bottleneck's ordering.
  l._store.yieldLoop = (t = 0) => (t > 0 ? new Promise((resolve) => setTimeout(resolve, t)) : RESOLVED);

  // Start a job that has no minTime wait on the next turn instead of a 1 ms timer.
  const run = l._run;
  l._run = function (this: BottleneckInternals, index, job, wait) {
    if (wait > 0) return run.call(this, index, job, wait);
    job.doRun();
    const clearGlobalState = this._clearGlobalState.bind(this, index);
    const again = this._run.bind(this, index, job);
    const free = this._free.bind(this, index, job);
    const expiration = job.options.expiration;
    return (this._scheduled[index] = {
      timeout: setImmediate(() => job.doExecute(this._limiter, clearGlobalState, again, free)),
      expiration: expiration != null ? setTimeout(() => job.doExpire(clearGlobalState, again, free), expiration) : undefined,
      job,
    });
  };
  return limiter;
}

/** Bottleneck's refill tick, unchanged, in a heartbeat that survives updateSettings(). */
function startHeartbeat(this: LocalStore): void {
  const o = this.storeOptions!;
  const wanted =
    (o.reservoirRefreshInterval != null && o.reservoirRefreshAmount != null) ||
    (o.reservoirIncreaseInterval != null && o.reservoirIncreaseAmount != null);
  if (this.heartbeat != null && (!wanted || this._heartbeatMs !== this.heartbeatInterval)) {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
  if (!wanted || this.heartbeat != null) return;
  this._heartbeatMs = this.heartbeatInterval;
  this.heartbeat = setInterval(() => {
    const now = Date.now();
    if (o.reservoirRefreshInterval != null && o.reservoirRefreshAmount != null && now >= this._lastReservoirRefresh + o.reservoirRefreshInterval) {
      this._lastReservoirRefresh = now;
      o.reservoir = o.reservoirRefreshAmount;
      this.instance._drainAll(this.computeCapacity());
    }
    if (o.reservoirIncreaseInterval != null && o.reservoirIncreaseAmount != null && now >= this._lastReservoirIncrease + o.reservoirIncreaseInterval) {
      this._lastReservoirIncrease = now;
      const reservoir = o.reservoir ?? 0;
      const incr = o.reservoirIncreaseMaximum != null ? Math.min(o.reservoirIncreaseAmount, o.reservoirIncreaseMaximum - reservoir) : o.reservoirIncreaseAmount;
      if (incr > 0) {
        o.reservoir = reservoir + incr;
        this.instance._drainAll(this.computeCapacity());
      }
    }
  }, this.heartbeatInterval);
  this.heartbeat.unref();
}

/** Sets how often a local limiter's reservoir refills (applied at its next updateSettings). */
export function setHeartbeat(limiter: Bottleneck, ms: number): void {
  const store = (limiter as unknown as BottleneckInternals)._store;
  if (store.storeOptions) store.heartbeatInterval = ms;
}

/** A new local limiter with the fixes applied. */
export function fastLimiter(options: Bottleneck.ConstructorOptions): Bottleneck {
  return makeFast(new Bottleneck(options));
}

/** The reservoir of a local limiter, read synchronously (null = unlimited). */
export function localReservoir(limiter: Bottleneck): number | null {
  return (limiter as unknown as BottleneckInternals)._store.storeOptions?.reservoir ?? null;
}
