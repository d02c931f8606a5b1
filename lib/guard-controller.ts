import type { GuardOptions } from './config/options';
import type { GuardEventName, GuardListener } from './events';
import { GUARD_REF, type Guard, type GuardStatus } from './guard';
import { currentScope, mergeScopes, validateScope, type GuardScope } from './scope';
import type { RealtimeClientLike, RealtimeSessionOptions } from './realtime/realtime-sessions';
import type { MetricsRegistry } from './telemetry/metrics';

/** Control over the guard of one client: scopes, status, live config, events, shutdown. */
export interface GuardController<T> {
  /** A view of the same client and guard whose calls are charged to `scope` (merged over this view's). */
  withScope(scope: GuardScope): Guarded<T>;
  /** The scope this view attaches to its calls. */
  readonly scope: Readonly<GuardScope>;
  /** A JSON-serialisable snapshot: config, limiter, breaker, budgets, totals. */
  status(): GuardStatus;
  /** Changes settings live; validated like construction (throws GuardConfigError, changes nothing). */
  updateConfig(patch: GuardOptions): void;
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<E extends GuardEventName>(event: E, listener: GuardListener<E>): () => void;
  /**
   * Registers Prometheus metrics for this guard in `registry` (prom-client's default registry
   * when omitted; prom-client is an optional peer) and returns the registry. Idempotent.
   */
  metrics(registry?: MetricsRegistry): MetricsRegistry;
  /**
   * Guards an OpenAI Realtime client (`OpenAIRealtimeWS` from openai/realtime/ws, or
   * `OpenAIRealtimeWebSocket`) for one session in this view's scope (merged over the current
   * runWithScope scope): responses are charged to the session and the scope's budgets, and the
   * session is stopped at `maxSessionUsd`, a budget or `maxDurationMs`. Returns the same client.
   * Throws RateLimitExceededError when `realtime.maxSessions` are open.
   */
  realtime<R extends RealtimeClientLike>(rt: R, options?: RealtimeSessionOptions): R;
  /** Stops timers and ends connections (and open Realtime sessions); the process has no open handle of ours afterwards. */
  close(): Promise<void>;
}

/** The SDK client, same type, plus `.guard`. */
export type Guarded<T> = T & { readonly guard: GuardController<T> };

/** The controller of one view (a scope) of a guarded client or fetch; `view` makes another view of the same guard. */
export function controllerFor<T>(guard: Guard, scope: Readonly<GuardScope>, view: (scope: Readonly<GuardScope>) => Guarded<T>): GuardController<T> {
  const controller: GuardController<T> = {
    scope,
    withScope: (next) => view(mergeScopes(scope, validateScope(next))),
    status: () => guard.status(),
    updateConfig: (patch) => guard.updateConfig(patch),
    on: (event, listener) => guard.on(event, listener),
    metrics: (registry) => guard.metrics(registry),
    realtime: (rt, options) => guard.realtime(rt, mergeScopes(currentScope(), scope), options),
    close: () => guard.close(),
  };
  Object.defineProperty(controller, GUARD_REF, { value: guard });
  return controller;
}
