import CircuitBreaker from 'opossum';
import type { CallContext, Next, Stage } from '../pipeline';
import type { ResolvedConfig } from '../config/options';
import type { GuardEmitter } from '../events';
import { CircuitOpenError, isGuardError } from '../errors';

/** A 5xx answer, thrown so opossum counts it; the response itself still goes back to the SDK. */
class ProviderFault extends Error {
  constructor(readonly response?: Response) {
    super(response ? `HTTP ${response.status}` : 'provider fault');
  }
}
const MAX_BREAKERS = 1000;
const NO_ARGS: unknown[] = [];

/** Successes on a closed breaker are handed to opossum in batches, at most this far apart. */
const SUCCESS_FLUSH_MS = 100;

interface Entry {
  breaker: CircuitBreaker;
  openedAt: number;
  /** Successes not yet handed to opossum, since `pendingSince`; the last at `lastSuccessAt`. */
  pending: number;
  pendingSince: number;
  lastSuccessAt: number;
}

export interface BreakerDeps {
  emitter: GuardEmitter;
  provider: string;
  /** The breaker settings at creation; later ones come through reconfigure(). */
  settings: ResolvedConfig['breaker'];
}

/**
 * An opossum breaker per guard (or per model with `breaker.perModel`). It counts provider faults
 * only — 5xx, 529, per-attempt timeouts, connection errors — against successes; 4xx and 429 are
 * not counted at all (the limiter owns 429s). Open: calls fail at once with CircuitOpenError and
 * the provider sees nothing; after resetTimeoutMs one probe goes (half-open) and its outcome
 * closes or re-opens it. opossum's own timeout and shared abortController are not used.
 */
export class CircuitBreakerStage implements Stage {
  readonly name = 'breaker';
  private breakers = new Map<string, Entry>();
  /** The breaker settings the breakers are made with. */
  private settings: ResolvedConfig['breaker'];

  constructor(private readonly deps: BreakerDeps) {
    this.settings = deps.settings;
  }

  /** Live config change: new thresholds mean new breakers (their state starts closed). */
  reconfigure(next: ResolvedConfig, previous: ResolvedConfig): void {
    this.settings = next.breaker;
    if (JSON.stringify(next.breaker) !== JSON.stringify(previous.breaker)) this.shutdownAll();
  }

  private keyOf(ctx: CallContext, config: ResolvedConfig): string {
    return config.breaker.perModel ? `${config.name}:${ctx.request.model ?? '(none)'}` : config.name;
  }

  private entry(key: string): Entry {
    let entry = this.breakers.get(key);
    if (entry) return entry;
    if (this.breakers.size >= MAX_BREAKERS) this.shutdownAll();
    const b = this.settings;
    const breaker = new CircuitBreaker((outcome: () => Promise<unknown>) => outcome(), {
      timeout: false,
      errorThresholdPercentage: b.errorThresholdPercentage,
      volumeThreshold: b.volumeThreshold,
      rollingCountTimeout: b.rollingWindowMs,
      rollingCountBuckets: 10,
      resetTimeout: b.resetTimeoutMs,
      allowWarmUp: false,
      // Unused latency percentiles: opossum would keep every call's latency and sort the whole
      // window's on each failure (60 k calls a minute: a sort per fault, in an outage).
      rollingPercentilesEnabled: false,
      // Unused too: a 'snapshot' of the whole window every bucket interval, per breaker.
      enableSnapshots: false,
      name: key,
    });
    const created: Entry = { breaker, openedAt: 0, pending: 0, pendingSince: 0, lastSuccessAt: 0 };
    const emit = (state: 'open' | 'half-open' | 'closed') => {
      if (this.deps.emitter.has('breaker')) this.deps.emitter.emit('breaker', { state, key, provider: this.deps.provider });
    };
    breaker.on('open', () => {
      created.openedAt = Date.now();
      emit('open');
    });
    breaker.on('halfOpen', () => emit('half-open'));
    breaker.on('close', () => emit('closed'));
    this.breakers.set(key, created);
    entry = created;
    return entry;
  }

  async run(ctx: CallContext, next: Next): Promise<Response> {
    const config = ctx.config;
    if (!config.breaker.enabled) return next(ctx);
    const key = this.keyOf(ctx, config);
    const entry = this.entry(key);
    const { breaker, openedAt } = entry;
    if (breaker.opened) throw this.openError(key, openedAt, config);

    if (breaker.halfOpen) {
      // The single probe goes through opossum itself, so that only one is let through.
      try {
        return (await breaker.fire(() => this.probe(ctx, next))) as Response;
      } catch (error) {
        if ((error as { code?: string }).code === 'EOPENBREAKER') throw this.openError(key, this.breakers.get(key)?.openedAt ?? Date.now(), config);
        if (error instanceof ProviderFault && error.response) return error.response;
        throw error;
      }
    }

    // Closed: run the attempt, then record its outcome (a fault or a success; others not at all).
    let response: Response;
    try {
      response = await next(ctx);
    } catch (error) {
      if (isFault(error, ctx)) this.record(entry, error);
      throw error;
    }
    if (response.status >= 500) this.record(entry, new ProviderFault());
    else if (response.ok) this.record(entry, undefined);
    return response;
  }

  /** The half-open probe: a 5xx rejects (so opossum counts it as a fault) carrying the response. */
  private async probe(ctx: CallContext, next: Next): Promise<Response> {
    const response = await next(ctx);
    if (response.status >= 500) throw new ProviderFault(response);
    return response;
  }

  /**
   * Feeds opossum an outcome. Successes on a closed breaker are counted here and handed to opossum
   * at most every SUCCESS_FLUSH_MS, and always before a fault, so the error rate it trips on
   * counts them all (a success through opossum's events cost ~12 µs per call on a server between
   * calls). A fault, or any outcome in another state, goes through fire() so opossum can trip or close.
   */
  private record(entry: Entry, fault: unknown): void {
    const now = Date.now();
    if (fault === undefined && entry.breaker.closed) {
      if (entry.pending === 0) entry.pendingSince = now;
      entry.pending++;
      entry.lastSuccessAt = now;
      if (now - entry.pendingSince >= SUCCESS_FLUSH_MS) this.flush(entry, now);
      return;
    }
    this.flush(entry, now);
    entry.breaker.fire(() => (fault === undefined ? Promise.resolve() : Promise.reject(fault))).catch(() => {});
  }

  /** Hands pending successes to opossum through the events its stats count ('fire', 'success': what fire() emits). */
  private flush(entry: Entry, now: number): void {
    const n = entry.pending;
    if (n === 0) return;
    entry.pending = 0;
    // Past the rolling window they have left opossum's count: dropped, not counted late. (A
    // change of the breaker settings makes new breakers, so these are the entry's own.)
    if (now - entry.lastSuccessAt >= this.settings.rollingWindowMs) return;
    for (let i = 0; i < n; i++) {
      entry.breaker.emit('fire', NO_ARGS);
      entry.breaker.emit('success', undefined, 0);
    }
  }

  private openError(key: string, openedAt: number, config: ResolvedConfig): CircuitOpenError {
    const retryAfterMs = Math.max(0, openedAt + config.breaker.resetTimeoutMs - Date.now());
    return new CircuitOpenError(
      `Refused: the circuit breaker "${key}" is open after repeated provider faults; nothing was sent. It lets one probe through in ${Math.ceil(retryAfterMs / 1000)} s.`,
      { breaker: key, retryAfterMs },
    );
  }

  status(config: ResolvedConfig): { state: 'closed' | 'open' | 'half-open'; retryAfterMs?: number; breakers?: Record<string, string> } {
    const states = [...this.breakers.entries()].map(([key, e]) => [key, e.breaker.opened ? 'open' : e.breaker.halfOpen ? 'half-open' : 'closed'] as const);
    const worst = states.some(([, s]) => s === 'open') ? 'open' : states.some(([, s]) => s === 'half-open') ? 'half-open' : 'closed';
    const out: ReturnType<CircuitBreakerStage['status']> = { state: worst };
    if (worst === 'open') {
      const openedAt = Math.max(...[...this.breakers.values()].filter((e) => e.breaker.opened).map((e) => e.openedAt));
      out.retryAfterMs = Math.max(0, openedAt + config.breaker.resetTimeoutMs - Date.now());
    }
    if (config.breaker.perModel) out.breakers = Object.fromEntries(states);
    return out;
  }

  private shutdownAll(): void {
    for (const { breaker } of this.breakers.values()) breaker.shutdown();
    this.breakers.clear();
  }

  close(): void {
    this.shutdownAll();
  }
}

/** Provider faults: a timeout or a lost connection. A caller's abort and guard refusals are not. */
function isFault(error: unknown, ctx: CallContext): boolean {
  if (ctx.signal?.aborted) return false;
  if (isGuardError(error)) return false;
  return true;
}
