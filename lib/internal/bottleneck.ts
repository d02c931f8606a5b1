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
 *    its period can be changed, and each tick adds for the time that actually passed (timer
 *    ticks run late, which made the stock refill ~2% slow at 50 ms periods) — since the heartbeat
 *    started and since the reservoir was last set from a count (`refillFromNow`), never for time
 *    before: a late first tick once credited up to four periods from the limiter's creation.
 * 3. An uncontended take: when nothing waits in a local limiter and its conditions allow, a
 *    slot is registered in Bottleneck's own datastore at once (`takeNow`/`freeNow`: what its
 *    `__register__`/`__free__` do, without the job machinery, ~50 µs less per call). Whenever
 *    anything waits, calls queue through Bottleneck's scheduler as usual.
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
  _running: number;
  _done: number;
  _nextRequest: number;
  yieldLoop(t?: number): Promise<void>;
  storeOptions?: StoreOptions & { maxConcurrent?: number | null; minTime?: number };
  heartbeat?: ReturnType<typeof setInterval> | null;
  heartbeatInterval: number;
  _heartbeatMs?: number;
  _lastReservoirRefresh: number;
  _lastReservoirIncrease: number;
  /** When the reservoir was last set from a count (refillFromNow): refill before it is in that count. */
  _refillFrom?: number;
  _startHeartbeat(): void;
  computeCapacity(): unknown;
  instance: { _drainAll(capacity: unknown): unknown };
}

interface EventsInternals {
  _events: Record<string, Array<{ cb: unknown; status: string }> | undefined>;
  trigger(name: string, ...args: unknown[]): Promise<unknown>;
}

interface BottleneckInternals {
  _queues: { Events: EventsInternals };
  _states: { counts: number[] };
  _store: LocalStore;
  _run(index: string, job: JobInternals, wait: number): unknown;
  _clearGlobalState(index: string): boolean;
  _drainAll(capacity: unknown): unknown;
  _free(index: string, job: JobInternals, ...args: unknown[]): unknown;
  _scheduled: Record<string, { timeout: unknown; expiration?: ReturnType<typeof setTimeout>; job: JobInternals }>;
  _limiter: unknown;
  Events: EventsInternals;
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

  fastEvents(l.Events);
  fastEvents(l._queues.Events);

  if (!l._store.storeOptions) return limiter; // Redis datastore: its waits are real I/O.

  l._store._startHeartbeat = startHeartbeat;
  // The constructor already started the stock heartbeat: this one replaces it now.
  if (l._store.heartbeat != null) {
    clearInterval(l._store.heartbeat);
    l._store.heartbeat = null;
    l._store._startHeartbeat();
  }

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

/**
 * Bottleneck's event trigger without its per-call async-generator garbage: events nobody listens
 * to cost nothing, listeners are called as before (synchronously, 'once' honoured, a throwing
 * listener reported as 'error'), and the first non-null result is what the promise resolves to.
 * With a "debug" listener attached, the original runs unchanged.
 */
function fastEvents(events: EventsInternals): void {
  const original = events.trigger.bind(events);
  const trigger = (name: string, ...args: unknown[]): Promise<unknown> => {
    const all = events._events;
    if (all.debug?.length) return original(name, ...args);
    const listeners = all[name];
    if (!listeners?.length) return RESOLVED;
    const results: unknown[] = [];
    for (const listener of listeners.slice()) {
      if (listener.status === 'none') continue;
      if (listener.status === 'once') listener.status = 'none';
      try {
        const returned = typeof listener.cb === 'function' ? (listener.cb as (...a: unknown[]) => unknown)(...args) : undefined;
        results.push(
          returned !== null && typeof returned === 'object' && typeof (returned as Promise<unknown>).then === 'function' ?
            (returned as Promise<unknown>).then(undefined, (error: unknown) => (name !== 'error' && void trigger('error', error), null))
          : returned,
        );
      } catch (error) {
        if (name !== 'error') void trigger('error', error);
        results.push(null);
      }
    }
    all[name] = listeners.filter((listener) => listener.status !== 'none');
    return results.some((r) => r instanceof Promise) ? Promise.all(results).then((rs) => rs.find((r) => r != null)) : Promise.resolve(results.find((r) => r != null));
  };
  events.trigger = trigger;
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
  // A refill switched on now owes nothing for the time before (the stock clock runs from creation).
  this._lastReservoirIncrease = Date.now();
  this.heartbeat = setInterval(() => {
    const now = Date.now();
    if (o.reservoirRefreshInterval != null && o.reservoirRefreshAmount != null && now >= this._lastReservoirRefresh + o.reservoirRefreshInterval) {
      this._lastReservoirRefresh = now;
      o.reservoir = o.reservoirRefreshAmount;
      this.instance._drainAll(this.computeCapacity());
    }
    if (o.reservoirIncreaseInterval != null && o.reservoirIncreaseAmount != null && now >= this._lastReservoirIncrease + o.reservoirIncreaseInterval) {
      // The amount is per heartbeat period; ticks run a little late, so add for the time that
      // passed — since the last tick, or since the reservoir was set from a count that included it.
      const from = Math.max(this._lastReservoirIncrease, this._refillFrom ?? 0);
      const amount = (o.reservoirIncreaseAmount * Math.min(Math.max(0, now - from), 4 * this.heartbeatInterval)) / this.heartbeatInterval;
      this._lastReservoirIncrease = now;
      const reservoir = o.reservoir ?? 0;
      const incr = o.reservoirIncreaseMaximum != null ? Math.min(amount, o.reservoirIncreaseMaximum - reservoir) : amount;
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

/**
 * Sets store options of a local limiter at once (updateSettings() applies them a turn later,
 * and jobs drained in between would use the old values: a pause must stop dispatch now).
 * Returns false for a Redis-backed limiter, whose state lives in Redis.
 */
export function setLocalSettings(limiter: Bottleneck, settings: Partial<StoreOptions>): boolean {
  const l = limiter as unknown as BottleneckInternals;
  const store = l._store;
  const options = store.storeOptions;
  if (!options) return false;
  const before = options.reservoir;
  Object.assign(options, settings);
  const after = options.reservoir;
  // More room matters only to jobs that wait (RECEIVED or QUEUED): updateSettings drains them.
  // Without any, it would cost a Bottleneck lock and a drain on every response that re-syncs.
  const waiting = hasWaiting(l);
  const moreRoom = after === null || (before !== null && after > before);
  // A running heartbeat reads the refill amount at each tick; only a stopped one needs a restart.
  const restartRefill = settings.reservoirIncreaseAmount !== undefined && store.heartbeat == null;
  if ((moreRoom && waiting) || restartRefill) void limiter.updateSettings({});
  return true;
}

/**
 * Takes `weight` from a local limiter at once if nothing waits in it and its concurrency and
 * reservoir allow (exactly what its __register__ would do); false otherwise: then schedule().
 */
export function takeNow(limiter: Bottleneck, weight: number): boolean {
  const l = limiter as unknown as BottleneckInternals;
  const store = l._store;
  const o = store.storeOptions;
  if (!o || o.minTime) return false;
  const counts = l._states.counts;
  if (counts[0]! > 0 || counts[1]! > 0) return false; // RECEIVED or QUEUED: they go first
  const concurrencyOk = o.maxConcurrent == null || store._running + weight <= o.maxConcurrent;
  const reservoirOk = o.reservoir == null || o.reservoir - weight >= 0;
  if (!concurrencyOk || !reservoirOk) return false;
  store._running += weight;
  if (o.reservoir != null) o.reservoir -= weight;
  store._nextRequest = Math.max(store._nextRequest, Date.now());
  return true;
}

/** Gives back a slot taken with takeNow (what __free__ does), letting queued calls go. */
export function freeNow(limiter: Bottleneck, weight: number): void {
  const l = limiter as unknown as BottleneckInternals;
  const store = l._store;
  store._running -= weight;
  store._done += weight;
  drainIfWaiting(l);
}

/** Whether jobs wait in a local limiter (RECEIVED or QUEUED). */
function hasWaiting(l: BottleneckInternals): boolean {
  return l._states.counts[0]! > 0 || l._states.counts[1]! > 0;
}

/**
 * Lets the jobs that wait go as far as there is room now (Bottleneck's own drain). Nothing waits
 * on the common path, and updateSettings({}) would take a Bottleneck lock and two async steps there.
 */
function drainIfWaiting(l: BottleneckInternals): void {
  if (hasWaiting(l)) l._drainAll(l._store.computeCapacity());
}

/** Whether jobs wait in a local limiter: then a take must queue behind them. */
export function jobsWaiting(limiter: Bottleneck): boolean {
  return hasWaiting(limiter as unknown as BottleneckInternals);
}

/** Whether a local limiter has nothing running and nothing waiting. */
export function isIdle(limiter: Bottleneck): boolean {
  const l = limiter as unknown as BottleneckInternals;
  return limiter.queued() === 0 && l._states.counts[0] === 0 && (l._store.storeOptions ? l._store._running === 0 : false);
}

/** Stops a Group's cleanup interval: Group.disconnect() leaves it running, holding every key's limiter. */
export function stopGroupCleanup(group: Bottleneck.Group): void {
  clearInterval((group as unknown as { interval?: ReturnType<typeof setInterval> }).interval);
}

/**
 * Adds `amount` to a reservoir (negative: takes it, leaving a debt below 0): at once on a local
 * limiter, so it can never land after a later synchronous change; through Bottleneck otherwise.
 * An unlimited limiter has no reservoir to change.
 */
export function adjustReservoir(limiter: Bottleneck, amount: number): void {
  const o = (limiter as unknown as BottleneckInternals)._store.storeOptions;
  if (!o) {
    void limiter.incrementReservoir(amount).catch(() => {});
    return;
  }
  if (o.reservoir == null || amount === 0) return;
  o.reservoir += amount;
  if (amount > 0) drainIfWaiting(limiter as unknown as BottleneckInternals); // more room: let waiting calls go
}

/**
 * The reservoir was just set from a count that includes the refill until now (a provider's
 * remaining): the next tick adds only for the time after this, so that refill is not counted twice.
 */
export function refillFromNow(limiter: Bottleneck): void {
  const store = (limiter as unknown as BottleneckInternals)._store;
  if (store.storeOptions) store._refillFrom = Date.now();
}

/** The reservoir of a local limiter, read synchronously (null = unlimited). */
export function localReservoir(limiter: Bottleneck): number | null {
  return (limiter as unknown as BottleneckInternals)._store.storeOptions?.reservoir ?? null;
}

/** Bottleneck's own recovery errors, as Redis 7 reports them (`ERR SETTINGS_KEY_NOT_FOUND`). */
const RECOVERABLE = /(SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT)$/;

interface ConnectionInternals {
  __scriptArgs__(name: string, id: string, args: unknown[], cb: (err: Error | null, replies?: unknown) => void): unknown[];
  limiters: Record<string, { _store: { runScript(name: string, args: unknown[]): Promise<unknown>; prepareInitSettings(clear: boolean): unknown[] } } | undefined>;
}

/**
 * 4. Redis 7 prefixes script errors with "ERR ", and Bottleneck compares the message exactly
 *    (`=== "SETTINGS_KEY_NOT_FOUND"`), so once its keys vanish (expiry, flush, failover) every
 *    job fails for good (upstream #205/#212/#219; the fix, PR #215, never merged). Fixed on
 *    the connection this package makes: the message is reduced to the bare code, and
 *    Bottleneck's own recovery (re-init the keys, register the client again) runs as intended.
 *    Its heartbeat, though, ignores missing keys instead of recreating them, so calls already
 *    queued would wait forever for a refill nobody computes: a heartbeat that finds its keys
 *    gone re-inits them too.
 */
export function fixRedisErrors(connection: Bottleneck.IORedisConnection): Bottleneck.IORedisConnection {
  const c = connection as unknown as ConnectionInternals;
  const scriptArgs = c.__scriptArgs__.bind(c);
  c.__scriptArgs__ = (name, id, args, cb) =>
    scriptArgs(name, id, args, (err, replies) => {
      const match = err && RECOVERABLE.exec(err.message);
      if (match) {
        err!.message = match[1]!;
        const store = c.limiters[`b_${id}`]?._store;
        if (name === 'heartbeat' && store) {
          void store.runScript('init', store.prepareInitSettings(false)).then(() => store.runScript('heartbeat', [])).catch(() => {});
        }
      }
      cb(err, replies);
    });
  return connection;
}
