/**
 * Prometheus metrics through prom-client (an optional peer). Every guard registered on one
 * registry shares its metric objects and is told apart by the `guard` label. Labels are bounded:
 * guard name, provider, model (capped), outcome, reason, direction, budget scope kind — never a
 * user, tenant or session id.
 */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { GuardConfigError } from '../errors';
import type { GuardStatus } from '../status';
import type { GuardEmitter } from '../events';
import { callOutcome, type CallObserver } from './observer';
import type { CallTallies, LabeledCounts } from './tallies';

type PromClient = typeof import('prom-client');

function loadPromClient(): PromClient {
  try {
    return require('prom-client') as PromClient;
  } catch {
    throw new GuardConfigError('metrics', 'a call to guard.metrics()', 'the optional peer "prom-client" (15) installed: npm install prom-client', 'argument');
  }
}

/** A guard as the metrics see it. */
export interface MeteredGuard {
  name: string;
  provider: string;
  status(): GuardStatus;
  addObserver(observer: CallObserver): () => void;
  emitter: GuardEmitter;
  /** The guard's lifetime counts: the counters report them, so registering late loses nothing. */
  tallies: CallTallies;
}

const BREAKER_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

type TallyName = 'requests' | 'attempts' | 'retries' | 'provider429s' | 'localWaits' | 'tokens' | 'cost' | 'budgetRefusals';

class GuardMetrics {
  readonly duration: Histogram;
  readonly queueWait: Histogram;
  readonly realtimeDuration: Histogram;
  readonly realtimeCost: Histogram;
  readonly guards = new Set<MeteredGuard>();

  constructor(prom: PromClient, registry: Registry) {
    const registers = [registry];
    const guards = this.guards;
    // Each counter is read from the guards' lifetime tallies at scrape time.
    const counter = (name: string, help: string, labelNames: string[], tally: TallyName) =>
      new prom.Counter({
        name,
        help,
        labelNames: ['guard', 'provider', ...labelNames],
        registers,
        collect(this: Counter) {
          this.reset();
          for (const guard of guards) {
            const counts: LabeledCounts = guard.tallies[tally];
            for (const { labels, value } of counts.entries()) this.inc({ guard: guard.name, provider: guard.provider, ...labels }, value);
          }
        },
      });
    counter('guarded_llm_requests_total', 'Calls through the guard, by how they ended.', ['model', 'outcome'], 'requests');
    counter('guarded_llm_attempts_total', 'HTTP attempts sent to the provider (first tries and retries).', ['model'], 'attempts');
    counter('guarded_llm_retries_total', 'Retries, by reason.', ['model', 'reason'], 'retries');
    counter('guarded_llm_provider_429_total', '429 answers from the provider.', ['model'], 'provider429s');
    counter('guarded_llm_rate_limit_waits_total', 'Calls that waited for the local rate limiter (5 ms or more).', [], 'localWaits');
    counter('guarded_llm_tokens_total', 'Tokens used, as the provider reported them (estimated where it did not).', ['model', 'direction'], 'tokens');
    counter('guarded_llm_cost_usd_total', 'What calls cost, in US dollars.', ['model'], 'cost');
    counter('guarded_llm_budget_exceeded_total', 'Calls refused or cut by a budget or the per-call cap, by stage and scope kind.', ['stage', 'scope'], 'budgetRefusals');
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
      new prom.Histogram({ name, help, labelNames: ['guard', 'provider', ...labelNames], buckets, registers });
    this.duration = histogram('guarded_llm_request_duration_seconds', 'Time from the call to its response headers (or its error), retries and queueing included.', ['model', 'outcome'], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]);
    this.queueWait = histogram('guarded_llm_queue_wait_seconds', 'Time calls waited for the rate limiter.', [], [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120]);
    this.realtimeDuration = histogram('guarded_llm_realtime_session_duration_seconds', 'How long Realtime sessions lasted, by how they ended.', ['reason'], [1, 10, 30, 60, 300, 600, 1200, 1800, 3600]);
    this.realtimeCost = histogram(
      'guarded_llm_realtime_session_cost_usd',
      'What Realtime sessions cost, in US dollars (their responses are in guarded_llm_cost_usd_total too).',
      ['reason'],
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
    const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge, s: GuardStatus, guard: MeteredGuard) => void) =>
      new prom.Gauge({
        name,
        help,
        labelNames,
        registers,
        collect(this: Gauge) {
          this.reset();
          for (const guard of guards) read(this, guard.status(), guard);
        },
      });
    gauge('guarded_llm_breaker_state', 'Circuit breaker: 0 closed, 1 half-open, 2 open.', ['guard', 'provider'], (g, s, guard) =>
      g.set({ guard: guard.name, provider: guard.provider }, BREAKER_VALUE[s.breaker.state]),
    );
    gauge('guarded_llm_realtime_sessions_active', 'Realtime sessions open now.', ['guard', 'provider'], (g, s, guard) => g.set({ guard: guard.name, provider: guard.provider }, s.realtime.open));
    gauge('guarded_llm_queue_depth', 'Calls waiting for the rate limiter.', ['guard', 'provider'], (g, s, guard) => g.set({ guard: guard.name, provider: guard.provider }, s.limiter.queued));
    gauge('guarded_llm_in_flight', 'Calls holding a concurrency slot.', ['guard', 'provider'], (g, s, guard) => g.set({ guard: guard.name, provider: guard.provider }, s.limiter.running));
    gauge('guarded_llm_budget_remaining_usd', 'What is left of each global budget (per-scope budgets have unbounded keys and are not exported).', ['guard', 'provider', 'window'], (g, s, guard) => {
      for (const b of s.budgets) {
        if (b.scope === 'global' && b.unit === 'usd') g.set({ guard: guard.name, provider: guard.provider, window: b.window }, Math.max(0, b.limitUsd - b.spentUsd - b.reservedUsd));
      }
    });
  }

  /** Hooks one guard's calls into these metrics (counters read its tallies); returns the disposer. */
  attach(guard: MeteredGuard): () => void {
    this.guards.add(guard);
    const base = { guard: guard.name, provider: guard.provider };
    const offObserver = guard.addObserver({
      callEnd: (ctx, response, error) => {
        const outcome = callOutcome(response, error);
        this.duration.observe({ ...base, model: guard.tallies.models.label(ctx.request.model), outcome }, (performance.now() - ctx.startedAt) / 1000);
        if (ctx.report.queuedMs > 0) this.queueWait.observe(base, ctx.report.queuedMs / 1000);
      },
    });
    const offRealtime = guard.emitter.on('realtime:close', (e) => {
      this.realtimeDuration.observe({ ...base, reason: e.reason }, e.durationMs / 1000);
      this.realtimeCost.observe({ ...base, reason: e.reason }, e.costUsd);
    });
    return () => {
      this.guards.delete(guard);
      offObserver();
      offRealtime();
    };
  }
}

/**
 * A prom-client Registry as far as the public API needs to name it (so that users without
 * prom-client installed get no missing-types error from ours).
 */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
}

const perRegistry = new WeakMap<Registry, GuardMetrics>();

/** Registers `guard` in `registry` (prom-client's default registry when omitted). */
export function registerMetrics(guard: MeteredGuard, registry?: MetricsRegistry): { registry: Registry; detach: () => void } {
  const prom = loadPromClient();
  const target = (registry as Registry | undefined) ?? prom.register;
  let metrics = perRegistry.get(target);
  if (!metrics) {
    metrics = new GuardMetrics(prom, target);
    perRegistry.set(target, metrics);
  }
  return { registry: target, detach: metrics.attach(guard) };
}
