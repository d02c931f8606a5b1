import type { GuardScope } from './scope-kinds';
import type { Usage } from './providers/adapter';
import type { BudgetStage } from './errors';

/** Fields every per-call event carries. Never a prompt, a key or a header value. */
export interface CallEventBase {
  /** Sequence number of the call within this guard. */
  callId: number;
  provider: string;
  model: string | undefined;
  endpoint: string;
  scope: Readonly<GuardScope>;
}

export interface GuardEventMap {
  request: CallEventBase & { stream: boolean; maxOutputTokens: number | undefined; inputTokensEstimate: number };
  response: CallEventBase & {
    /** With fallback targets: which one served the call ('primary', 'model:<id>', 'client:<name>'). */
    target?: string;
    status: number;
    usage: Usage | undefined;
    costUsd: number | undefined;
    attempts: number;
    queuedMs: number;
    durationMs: number;
  };
  retry: CallEventBase & { attempt: number; delayMs: number; reason: string; status?: number };
  'rate-limited': {
    source: 'local' | 'provider';
    provider: string;
    model?: string | undefined;
    callId?: number;
    /** Local: how long the call waited in the queue. Provider: the pause imposed on the limiter. */
    waitMs: number;
    reason?: string;
  };
  breaker: { state: 'open' | 'half-open' | 'closed'; key: string; provider: string };
  cost: CallEventBase & { usd: number; usage: Usage; estimated: boolean };
  /** A budget (or a token quota: unit 'tokens', limitTokens, spentTokens; the USD fields NaN) crossed its warnAt. */
  'budget:warning': { key: string; scope: string; unit: 'usd' | 'tokens'; limitUsd: number; spentUsd: number; limitTokens?: number; spentTokens?: number; fraction: number };
  'budget:exceeded': CallEventBase & {
    stage: BudgetStage;
    key: string;
    /** 'tokens' for a token quota (then limitTokens / spentTokens say it; the USD fields are NaN). */
    unit: 'usd' | 'tokens';
    limitUsd: number;
    spentUsd: number;
    estimatedUsd: number;
    limitTokens?: number;
    spentTokens?: number;
  };
  'stream:aborted': CallEventBase & { reason: string; usage: Usage | undefined; costUsd: number | undefined };
  /** The guard changed a request so it fits (e.g. clamped max tokens). */
  adjusted: CallEventBase & { field: string; from: number | undefined; to: number; reason: string };
  warning: { message: string; code: string };
  /** A target was rate-limited or down; the call moves on to the next one. */
  failover: { from: string; to: string; reason: string };
  /** A Realtime session was opened through guard.realtime(). */
  'realtime:open': { sessionId: string; model: string | undefined; scope: Readonly<GuardScope>; startedAt: number };
  /** A Realtime session ended: closed by the client or the server, dropped, or stopped by the guard at a cap. */
  'realtime:close': {
    sessionId: string;
    model: string | undefined;
    scope: Readonly<GuardScope>;
    reason: 'closed' | 'session-cap' | 'budget' | 'duration' | 'dropped' | 'guard-closed';
    costUsd: number;
    durationMs: number;
  };
  /** Distributed mode: the Redis connection went down (limits and budgets fall back) or came back. */
  redis: { state: 'up' | 'down'; redis: string; error?: string };
}

export type GuardEventName = keyof GuardEventMap;
export type GuardListener<E extends GuardEventName> = (payload: GuardEventMap[E]) => void;

/**
 * A small typed emitter. `has()` lets the hot path skip building payloads nobody listens to;
 * a listener that throws is reported to `onListenerError` and never fails the call.
 */
export class GuardEmitter {
  private readonly listeners = new Map<GuardEventName, Set<(payload: never) => void>>();

  constructor(private readonly onListenerError: (event: GuardEventName, error: unknown) => void) {}

  on<E extends GuardEventName>(event: E, listener: GuardListener<E>): () => void {
    if (typeof listener !== 'function') throw new TypeError(`Expected a listener function for "${event}", got ${typeof listener}`);
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => {
      set.delete(listener as (payload: never) => void);
    };
  }

  has(event: GuardEventName): boolean {
    const set = this.listeners.get(event);
    return set !== undefined && set.size > 0;
  }

  emit<E extends GuardEventName>(event: E, payload: GuardEventMap[E]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of set) {
      try {
        (listener as GuardListener<E>)(payload);
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
