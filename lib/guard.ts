import { resolveConfig, unknownEnvVars, type ConfigSources } from './config/resolve';
import type { GuardOptions, ResolvedConfig } from './config/options';
import { mergeOptions } from './config/merge';
import { GuardConfigError } from './errors';
import { GuardEmitter, type GuardEventName, type GuardListener } from './events';
import { consoleLogger, type Logger } from './logger';
import { CallContext, compose, type Next, type Stage } from './pipeline';
import type { ProviderAdapter } from './providers/adapter';
import { currentScope } from './scope';
import { createAttempt } from './attempt';
import { estimateInputTokens, openaiCounter } from './money/estimate';
import { openaiAdapter } from './providers/openai';
import { anthropicAdapter } from './providers/anthropic';
import { countAnthropicInputTokens } from './money/count-tokens';
import { PriceBook, readPricesFile } from './money/prices';
import { MemoryLedger, type Ledger } from './money/ledger';
import { CostGuardStage } from './stages/cost-guard';
import { RetryStage } from './stages/retry';
import { CircuitBreakerStage } from './stages/circuit-breaker';
import { RateLimitStage } from './stages/rate-limit';
import { TrafficLimiter } from './limiter/traffic-limiter';
import { SharedStore } from './distributed/shared-store';
import { redactUrl } from './internal/redact';
import { SharedLedger } from './distributed/shared-ledger';
import { sharedConnection } from './distributed/shared-bucket';
import type { CallObserver } from './telemetry/observer';
import { registerMetrics, type MetricsRegistry } from './telemetry/metrics';
import { createTracing } from './telemetry/tracing';
import { CallTallies } from './telemetry/tallies';
import { FailoverRouter, type ClientEndpoint } from './failover/router';

export interface GuardTotals {
  /** Calls made through the guard (each may have several attempts). */
  calls: number;
  /** HTTP attempts that reached the network. */
  attempts: number;
  retries: number;
  provider429s: number;
  costUsd: number;
}

export interface GuardStatus {
  name: string;
  provider: string;
  enabled: boolean;
  config: Record<string, unknown>;
  /** Where each setting came from: 'default', 'option' or the env var's name. */
  sources: ConfigSources;
  limiter: {
    running: number;
    queued: number;
    paused: boolean;
    pausedUntil?: string;
    /** How the request rate is set: configured, probing (nothing learned yet), learned from headers, or unlimited. */
    mode: 'configured' | 'probing' | 'learned' | 'unlimited';
    learned?: Record<string, unknown>;
    /** Live per-scope limiter keys, by scope kind. */
    scopes?: Record<string, number>;
  };
  breaker: { state: 'closed' | 'open' | 'half-open'; retryAfterMs?: number; breakers?: Record<string, string> };
  budgets: Array<{
    scope: string;
    key: string;
    limitUsd: number;
    spentUsd: number;
    reservedUsd: number;
    window: string;
    enforcement: 'hard' | 'soft';
    nextReleaseAt?: string;
  }>;
  totals: GuardTotals;
  /** Distributed mode: the Redis connection, and charges made while it was down that it has not seen yet. */
  shared?: { redis: 'connecting' | 'up' | 'down'; where: string; prefix: string; unsyncedCharges: number };
}

/** Where a guarded client keeps its guard, for fallback targets (not enumerable, not public). */
export const GUARD_REF = Symbol.for('guarded-llm.guard');

/** The guard behind a guarded client, or undefined for any other object. */
function guardOf(client: object): Guard | undefined {
  return (client as { guard?: Record<symbol, unknown> }).guard?.[GUARD_REF] as Guard | undefined;
}

/** A fallback target as status() shows it: never the client object (it holds an API key). */
function targetLabel(target: ResolvedConfig['fallback'][number]): string {
  const client = 'guard' in target ? target : 'client' in target ? target.client : undefined;
  const model = 'model' in target ? target.model : undefined;
  const guard = client && guardOf(client);
  return client ? `client:${guard?.config.name ?? '?'}${model ? `/${model}` : ''}` : `model:${model}`;
}

/** JSON-safe copy of the config: an ioredis client is shown as '[client]', URLs lose passwords. */
function publicConfig(config: ResolvedConfig): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify({ ...config, redis: undefined, fallback: config.fallback.map(targetLabel) })) as Record<string, unknown>;
  if (typeof config.redis === 'string') copy.redis = redactUrl(config.redis);
  else if (config.redis) copy.redis = '[client]';
  return copy;
}

/**
 * The engine behind one guarded client: resolved config, the stage pipeline, events and totals.
 * The fetch it exposes is what the SDK copy calls for every HTTP request.
 */
export class Guard {
  config: ResolvedConfig;
  sources: ConfigSources;
  readonly emitter: GuardEmitter;
  logger: Logger;
  readonly totals: GuardTotals = { calls: 0, attempts: 0, retries: 0, provider429s: 0, costUsd: 0 };
  readonly stages: readonly Stage[];
  private readonly pipeline: Next;
  prices: PriceBook;
  readonly limiter: TrafficLimiter;
  readonly ledger: Ledger;
  /** Distributed mode's Redis connection (undefined without `redis`). */
  readonly shared: SharedStore | undefined;
  private readonly breaker: CircuitBreakerStage;
  private callSeq = 0;
  /** Metrics and tracing: told of each call's start, attempts and end. */
  private observers: CallObserver[] = [];
  private readonly metricsIn = new Map<MetricsRegistry, () => void>();
  readonly tallies: CallTallies;
  /**
   * Per model, how many input tokens the provider counts for each one the built-in estimate
   * counted (a moving average, never below 1): the estimate learns the provider's tokenizer.
   */
  private readonly calibration = new Map<string, number>();
  private closed = false;
  /** The SDK client's base URL (for rerouting a request to another client's). */
  sdkBaseURL: string | undefined;
  private router: FailoverRouter | undefined;

  constructor(
    readonly adapter: ProviderAdapter,
    private readonly options: GuardOptions,
    private readonly realFetch: typeof fetch,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    const { config, sources } = resolveConfig(options, env, adapter.name);
    this.config = config;
    this.sources = sources;
    this.logger = options.logger ?? consoleLogger(config.logLevel);
    this.emitter = new GuardEmitter((event, error) =>
      this.logger.error({ event, error: error instanceof Error ? error.message : String(error) }, 'a guard event listener threw; the call went on'),
    );
    this.prices = this.makePriceBook(config);
    this.shared = config.redis !== undefined ? new SharedStore({ redis: config.redis, name: config.name, emitter: this.emitter, logger: () => this.logger, connectTimeoutMs: () => this.config.redisConnectTimeoutMs }) : undefined;
    this.ledger = this.shared ? new SharedLedger(this.shared, () => this.config.redisFailure) : new MemoryLedger();
    // Load the optional exact tokenizer now (tens of ms), not in the middle of the first call.
    if (adapter === openaiAdapter) openaiCounter(undefined);
    this.limiter = new TrafficLimiter({
      config: () => this.config,
      emitter: this.emitter,
      provider: adapter.name,
      ...(this.shared ? { shared: { store: this.shared, connection: sharedConnection(this.shared.client) } } : {}),
    });
    if (this.shared) {
      const shared = this.shared;
      shared.onUp(() => shared.publishBreaker(this.breaker.status(this.config).state));
      this.emitter.on('breaker', (e) => shared.publishBreaker(e.state));
    }
    // Lifetime counts by metric label, from the start: metrics registered later report them all.
    this.tallies = new CallTallies(this.emitter);
    this.addObserver(this.tallies);
    // Traces when @opentelemetry/api is installed (no-op spans until an SDK is registered).
    const tracing = createTracing({ guardName: () => this.config.name, breakerState: () => this.breaker.status(this.config).state });
    if (tracing) this.addObserver(tracing);
    const unknown = unknownEnvVars(env, adapter.name);
    if (unknown.length) this.logger.warn({ vars: unknown }, 'ignoring LLM_GUARD_* env vars that name no setting');

    // Fixed order, outermost first: cost guard → retry → breaker → rate limiter → fetch.
    this.stages = [
      new CostGuardStage({
        config: () => this.config,
        prices: () => this.prices,
        ledger: () => this.ledger,
        emitter: this.emitter,
        logger: () => this.logger,
        charge: (usd) => {
          this.totals.costUsd += usd;
        },
      }),
      new RetryStage({
        config: () => this.config,
        emitter: this.emitter,
        onRetry: () => {
          this.totals.retries++;
        },
      }),
      (this.breaker = new CircuitBreakerStage({ config: () => this.config, emitter: this.emitter, provider: adapter.name })),
      new RateLimitStage(() => this.limiter),
    ];
    this.route(config);
    this.pipeline = compose(
      this.stages,
      createAttempt({
        fetch: realFetch,
        timeoutMs: () => this.config.timeoutMs,
        onAttempt: (ctx) => {
          ctx.attempt++;
          this.totals.attempts++;
          if (ctx.observed) for (const o of this.observers) o.attemptStart?.(ctx);
        },
        onResponse: (ctx, response) => {
          if (response.status === 429) this.totals.provider429s++;
          if (ctx.observed) for (const o of this.observers) o.attemptEnd?.(ctx, response);
        },
        onAttemptError: (ctx, error) => {
          if (ctx.observed) for (const o of this.observers) o.attemptEnd?.(ctx, undefined, error);
        },
      }),
    );
  }

  /** The fetch installed into the SDK copy: every request runs through the pipeline (and the router, with fallbacks). */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const requestInit: RequestInit = init ?? (input instanceof Request ? { method: input.method, headers: input.headers, body: input.body } : {});
    const routed = this.router ? await this.router.fetch(url, requestInit) : undefined;
    const { response, ctx } = routed ?? (await this.execute(url, requestInit));
    if (this.emitter.has('response')) this.emitResponse(ctx, response, routed?.target);
    return response;
  };

  get adapterName(): string {
    return this.adapter.name;
  }

  get name(): string {
    return this.config.name;
  }

  /** The worst-case cost of a call to `model` (for routing by cost). */
  worstCostUsd(model: string | undefined, inputTokens: number, maxOutputTokens: number | undefined): number {
    return this.prices.cost(model, { inputTokens, outputTokens: maxOutputTokens ?? this.prices.maxOutputTokens(model) ?? 0 });
  }

  /** One call through this guard's own pipeline (no failover): what the router runs on each target. */
  async execute(url: string, requestInit: RequestInit): Promise<{ response: Response; ctx: CallContext }> {
    const request = this.adapter.parseRequest(url, requestInit.method ?? 'GET', requestInit.body);
    const exact = this.adapter === openaiAdapter ? openaiCounter(request.model) : undefined;
    let estimated = request.billable ? estimateInputTokens(request.endpoint, request.body, exact) : 0;
    const counted = this.config.cost.exactInputTokens && this.adapter === anthropicAdapter && request.endpoint === 'messages' && request.body ? await this.countExactly(url, requestInit, request.body) : undefined;
    if (counted !== undefined) estimated = counted;
    // An OpenAI-format count is exact for OpenAI's own tokenizer, but a compatible host may count
    // with another: it is calibrated like the estimate. Anthropic's countTokens is the provider's own.
    const factor = counted !== undefined || !request.model ? 1 : (this.calibration.get(request.model) ?? 1);
    const inputTokens = Math.ceil(estimated * factor);
    const ctx = new CallContext(++this.callSeq, this.adapter, request, currentScope(), requestInit.signal ?? undefined, url, requestInit, inputTokens);
    if (counted === undefined && request.model) {
      const model = request.model!;
      ctx.recount = () => (ctx.inputTokens = Math.max(ctx.inputTokens, Math.ceil(estimated * (this.calibration.get(model) ?? 1))));
    }
    this.totals.calls++;
    if (this.emitter.has('request')) {
      this.emitter.emit('request', {
        ...ctx.eventBase(),
        stream: request.stream,
        maxOutputTokens: request.maxOutputTokens,
        inputTokensEstimate: inputTokens,
      });
    }
    const response = this.observers.length === 0 || !this.observers.some((o) => o.active?.() ?? true) ? await this.pipeline(ctx) : await this.observed(ctx);
    if (counted === undefined && estimated > 0 && ctx.tap && request.model) this.calibrate(ctx.tap, request.model, estimated);
    return { response, ctx };
  }

  /** Builds the router when fallback targets are set; each must be a guarded client of the same wire format. */
  private route(config: ResolvedConfig): void {
    if (!config.fallback.length) {
      this.router = undefined;
      return;
    }
    config.fallback.forEach((target, i) => {
      if (!('guard' in target) && !('client' in target)) return;
      const endpoint = this.endpointOf('guard' in target ? target : target.client);
      if (!endpoint) throw new GuardConfigError(`fallback[${i}]`, 'an object with a guard this package did not make', 'a client returned by createGuardedClient');
      if (endpoint.guard.adapterName !== this.adapter.name) {
        throw new GuardConfigError(`fallback[${i}]`, `a ${endpoint.guard.adapterName} client`, `a guarded ${this.adapter.name} client (the same wire format as the primary)`);
      }
    });
    this.router ??= new FailoverRouter({
      self: this,
      selfBaseURL: () => this.sdkBaseURL,
      config: () => this.config,
      endpointOf: (client) => this.endpointOf(client),
      onFailover: (from, to, reason) => {
        this.logger.warn({ from, to, reason }, 'failing over to the next target');
        if (this.emitter.has('failover')) this.emitter.emit('failover', { from, to, reason });
      },
    });
  }

  private endpointOf(client: object): ClientEndpoint | undefined {
    const guard = guardOf(client);
    if (!guard) return undefined;
    const sdk = client as { baseURL?: unknown; apiKey?: unknown };
    return { guard, baseURL: typeof sdk.baseURL === 'string' ? sdk.baseURL : (guard.sdkBaseURL ?? ''), apiKey: typeof sdk.apiKey === 'string' ? sdk.apiKey : undefined };
  }

  private async observed(ctx: CallContext): Promise<Response> {
    ctx.observed = true;
    for (const o of this.observers) o.callStart?.(ctx);
    try {
      const response = await this.pipeline(ctx);
      for (const o of this.observers) o.callEnd?.(ctx, response);
      return response;
    } catch (error) {
      for (const o of this.observers) o.callEnd?.(ctx, undefined, error);
      throw error;
    }
  }

  /** Adds a call observer (metrics, tracing); returns the disposer. */
  addObserver(observer: CallObserver): () => void {
    this.observers = [...this.observers, observer];
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
    };
  }

  metrics(registry?: MetricsRegistry): MetricsRegistry {
    const { registry: target, detach } = registerMetrics(
      { name: this.config.name, provider: this.adapter.name, status: () => this.status(), addObserver: (o) => this.addObserver(o), emitter: this.emitter, tallies: this.tallies },
      registry,
    );
    if (this.metricsIn.has(target)) detach();
    else this.metricsIn.set(target, detach);
    return target;
  }

  private countWarned = false;

  /** Anthropic's own count for cost.exactInputTokens; on failure the estimate stands (warned once). */
  private async countExactly(url: string, init: RequestInit, body: Record<string, unknown>): Promise<number | undefined> {
    try {
      const counted = await countAnthropicInputTokens(this.realFetch, url, init, body);
      if (counted !== undefined) return counted;
    } catch (error) {
      if (init.signal?.aborted) throw error;
    }
    if (!this.countWarned) {
      this.countWarned = true;
      this.logger.warn({}, 'cost.exactInputTokens: the provider did not count the input; the estimate is used instead');
    }
    return undefined;
  }

  private calibrate(tap: NonNullable<CallContext['tap']>, model: string, estimated: number): void {
    tap.onEnd((end) => {
      if (!end.usage || end.usage.estimated || end.usage.inputTokens <= 0) return;
      const sample = Math.min(4, end.usage.inputTokens / estimated);
      const current = this.calibration.get(model);
      if (this.calibration.size > 1000 && current === undefined) this.calibration.clear();
      // The first answer counts in full; later ones move the average.
      this.calibration.set(model, Math.max(1, current === undefined ? sample : current + 0.3 * (sample - current)));
    });
  }

  private emitResponse(ctx: CallContext, response: Response, target?: string): void {
    const emit = (usage: ReturnType<NonNullable<CallContext['tap']>['usage']>) =>
      this.emitter.emit('response', {
        ...ctx.eventBase(),
        ...(target !== undefined ? { target } : {}),
        status: response.status,
        usage,
        costUsd: ctx.costUsd,
        attempts: ctx.attempt,
        queuedMs: ctx.queuedMs,
        durationMs: performance.now() - ctx.startedAt,
      });
    // A successful body is reported once the SDK has read it: only then is usage known.
    if (ctx.tap) ctx.tap.onEnd((end) => emit(end.usage));
    else emit(undefined);
  }

  on<E extends GuardEventName>(event: E, listener: GuardListener<E>): () => void {
    return this.emitter.on(event, listener);
  }

  /** Re-validates everything as at construction; applied to new calls at once. */
  updateConfig(patch: GuardOptions): void {
    for (const fixed of ['provider', 'logger', 'name', 'redis'] as const) {
      if (patch[fixed] !== undefined) throw new GuardConfigError(fixed, 'a change', 'the value given at creation (fixed for the life of the client)');
    }
    const merged = mergeOptions(this.options, patch);
    const { config, sources } = resolveConfig(merged, this.env, this.adapter.name);
    if (config.enabled !== this.config.enabled) {
      throw new GuardConfigError('enabled', String(config.enabled), `${this.config.enabled} (enabled is fixed at creation: a disabled guard is the plain SDK client)`);
    }
    const prices = this.makePriceBook(config);
    const previous = this.config;
    Object.assign(this.options, merged);
    this.config = config;
    this.prices = prices;
    this.limiter.configure(config, previous);
    this.route(config);
    this.sources = sources;
  }

  /** Price overrides: the prices file, then `cost.prices` over it. */
  private makePriceBook(config: ResolvedConfig): PriceBook {
    const fromFile = config.cost.pricesFile ? readPricesFile(config.cost.pricesFile) : {};
    return new PriceBook(this.adapter.priceProvider, { ...fromFile, ...config.cost.prices }, config.cost.unpricedModel);
  }

  status(): GuardStatus {
    return {
      name: this.config.name,
      provider: this.adapter.name,
      enabled: this.config.enabled,
      config: publicConfig(this.config),
      sources: { ...this.sources },
      limiter: this.limiter.status(),
      breaker: this.breaker.status(this.config),
      budgets: this.budgetStatus(),
      totals: { ...this.totals },
      ...(this.shared ?
        { shared: { redis: this.shared.status, where: this.shared.where, prefix: this.shared.prefix, unsyncedCharges: (this.ledger as SharedLedger).unsynced } }
      : {}),
    };
  }

  /** Budget states for status(): the global budget, then the scope keys with most spent. */
  private budgetStatus(): GuardStatus['budgets'] {
    const states = this.ledger.states(undefined, 100);
    if (states instanceof Promise) return [];
    const out: GuardStatus['budgets'] = [];
    for (const rule of this.config.cost.budgets) {
      const matching = rule.scope === 'global' ? [states.find((s) => s.key === 'global') ?? { key: 'global', spentUsd: 0, reservedUsd: 0, nextReleaseAt: undefined }] : states.filter((s) => s.key.startsWith(`${rule.scope}:`));
      for (const state of matching) {
        out.push({
          scope: rule.scope,
          key: state.key,
          limitUsd: rule.limitUsd,
          spentUsd: state.spentUsd,
          reservedUsd: state.reservedUsd,
          window: rule.windowText,
          enforcement: rule.enforcement,
          ...(state.nextReleaseAt !== undefined ? { nextReleaseAt: new Date(state.nextReleaseAt).toISOString() } : {}),
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.stages.map((stage) => stage.close?.()), this.limiter.close()]);
    await this.ledger.close?.();
    await this.shared?.close();
    for (const detach of this.metricsIn.values()) detach();
    this.metricsIn.clear();
    this.emitter.clear();
  }
}
