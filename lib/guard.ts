/**
 * The composition root of one guarded client: it resolves the config, builds the parts (ledger,
 * limiter, stages, router, observers) and hands each its collaborators; a call runs through them
 * with the config it started under, and a live config change reaches every part in one place.
 */
import { resolveConfig, unknownEnvVars, type ConfigSources } from './config/resolve';
import type { GuardOptions, ResolvedConfig } from './config/options';
import { mergeOptions } from './config/merge';
import { GuardConfigError } from './errors';
import { GuardEmitter, type GuardEventName, type GuardListener } from './events';
import { consoleLogger, type Logger } from './logger';
import { CallContext, compose, type Next, type Stage } from './pipeline';
import type { ProviderAdapter, Usage } from './providers/adapter';
import { currentScope } from './scope';
import { createAttempt } from './attempt';
import { tapOf } from './internal/response-tap';
import { fetchArgs } from './internal/fetch-args';
import { InputWeigher, type InputWeight } from './money/input-tokens';
import { withBodyOnDemand } from './internal/body-on-demand';
import { PriceBook, readPricesFile } from './money/prices';
import { MemoryLedger, type Ledger } from './money/ledger';
import { CostAccount } from './money/cost-account';
import { tierOf } from './money/budget-lines';
import { UnpricedModels } from './money/unpriced';
import { CostGuardStage } from './stages/cost-guard';
import { BatchCostStage } from './stages/batch-cost';
import { RetryStage } from './stages/retry';
import { CircuitBreakerStage } from './stages/circuit-breaker';
import { RateLimitStage } from './stages/rate-limit';
import { TrafficLimiter } from './limiter/traffic-limiter';
import { SharedStore } from './distributed/shared-store';
import { SharedLedger } from './distributed/shared-ledger';
import { sharedConnection } from './distributed/shared-bucket';
import type { CallObserver } from './telemetry/observer';
import { registerMetrics, type MetricsRegistry } from './telemetry/metrics';
import { createTracing } from './telemetry/tracing';
import { traceRealtimeSessions } from './telemetry/realtime-tracing';
import { CallTallies } from './telemetry/tallies';
import { FailoverRouter } from './failover/router';
import { endpointOf, targetLabel, validateTargets } from './failover/targets';
import { budgetRows, publicConfig, type GuardStatus, type GuardTotals } from './status';
import { RealtimeSessions, type RealtimeClientLike, type RealtimeSessionOptions } from './realtime/realtime-sessions';
import type { GuardScope } from './scope-kinds';

export { GUARD_REF } from './failover/targets';
export type { GuardStatus, GuardTotals, LearnedLimit } from './status';

/** A part whose state follows the config: told of every live change, with the config before it. */
interface Reconfigurable {
  reconfigure(next: ResolvedConfig, previous: ResolvedConfig): void;
}

export class Guard {
  config: ResolvedConfig;
  sources: ConfigSources;
  /** Prices for the current config (the overrides and the prices file), replaced with it. */
  private prices: PriceBook;
  readonly emitter: GuardEmitter;
  logger: Logger;
  readonly totals: GuardTotals = { calls: 0, attempts: 0, retries: 0, provider429s: 0, costUsd: 0 };
  readonly tallies: CallTallies;
  readonly limiter: TrafficLimiter;
  readonly ledger: Ledger;
  /** Distributed mode's Redis connection (undefined without `redis`). */
  readonly shared: SharedStore | undefined;
  /** The SDK client's base URL (for rerouting a request to another client's). */
  sdkBaseURL: string | undefined;
  /**
   * The longest timeout of the SDK clients that send through this guard (their signal aborts at
   * it): undefined while none is known, Infinity once one sends with a timeout it does not expose.
   */
  private sdkTimeoutMs: number | undefined;
  private readonly weigher: InputWeigher;
  private readonly stages: readonly Stage[];
  private readonly breaker: CircuitBreakerStage;
  private readonly pipeline: Next;
  private readonly reconfigurable: Reconfigurable[];
  private router: FailoverRouter | undefined;
  private callSeq = 0;
  /** Metrics and tracing: told of each call's start, attempts and end. */
  private observers: CallObserver[] = [];
  private readonly metricsIn = new Map<MetricsRegistry, () => void>();
  private readonly realtimeSessions: RealtimeSessions;
  private closed = false;

  constructor(
    readonly adapter: ProviderAdapter,
    private readonly options: GuardOptions,
    private readonly realFetch: typeof fetch,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    const { config, sources } = resolveConfig(options, env, adapter.name);
    validateTargets(config.fallback, adapter.name);
    this.config = config;
    this.sources = sources;
    this.logger = options.logger ?? consoleLogger(config.logLevel);
    const logger = () => this.logger;
    this.emitter = new GuardEmitter((event, error) =>
      this.logger.error({ event, error: error instanceof Error ? error.message : String(error) }, 'a guard event listener threw; the call went on'),
    );
    this.prices = this.priceBook(config);
    this.shared = config.redis !== undefined ? new SharedStore({ redis: config.redis, name: config.name, emitter: this.emitter, logger, connectTimeoutMs: config.redisConnectTimeoutMs }) : undefined;
    const sharedLedger = this.shared && new SharedLedger(this.shared, config.redisFailure);
    this.ledger = sharedLedger ?? new MemoryLedger();
    this.weigher = new InputWeigher({ adapter, fetch: realFetch, logger });
    this.limiter = new TrafficLimiter({
      config,
      emitter: this.emitter,
      provider: adapter.name,
      ...(this.shared ? { shared: { store: this.shared, connection: sharedConnection(this.shared.client) } } : {}),
    });

    // Lifetime counts by metric label, from the start: metrics registered later report them all.
    // Told of each call directly, not as an observer: every call counts, and then the observers
    // (metrics, tracing) cost a call nothing while none of them is active.
    this.tallies = new CallTallies(this.emitter);
    // Traces when @opentelemetry/api is installed (no-op spans until an SDK is registered).
    const tracing = createTracing({ guardName: () => this.config.name, breakerState: () => this.breaker.status(this.config).state });
    if (tracing) {
      this.addObserver(tracing);
      traceRealtimeSessions(this.emitter, () => this.config.name);
    }
    const unknown = unknownEnvVars(env, adapter.name);
    if (unknown.length) this.logger.warn({ vars: unknown }, 'ignoring LLM_GUARD_* env vars that name no setting');

    const account = new CostAccount({ emitter: this.emitter, charge: (usd, model, usage) => this.charge(usd, model, usage) });
    const unpriced = new UnpricedModels(logger);
    this.breaker = new CircuitBreakerStage({ emitter: this.emitter, provider: adapter.name, settings: config.breaker });
    // Fixed order, outermost first: cost guard → batch cost → retry → breaker → rate limiter → fetch.
    this.stages = [
      new CostGuardStage({ ledger: this.ledger, account, unpriced, emitter: this.emitter, logger }),
      new BatchCostStage({ ledger: this.ledger, account, unpriced, logger }),
      new RetryStage({ emitter: this.emitter, onRetry: () => void this.totals.retries++ }),
      this.breaker,
      new RateLimitStage(this.limiter),
    ];
    this.pipeline = compose(
      this.stages,
      createAttempt({
        fetch: realFetch,
        onAttempt: (ctx) => {
          ctx.report.attempts++;
          this.totals.attempts++;
          this.tallies.attemptStart(ctx);
          if (ctx.report.observed) for (const o of this.observers) o.attemptStart?.(ctx);
        },
        onResponse: (ctx, response) => {
          if (response.status === 429) this.totals.provider429s++;
          this.tallies.attemptEnd(ctx, response);
          if (ctx.report.observed) for (const o of this.observers) o.attemptEnd?.(ctx, response);
        },
        onAttemptError: (ctx, error) => {
          this.tallies.attemptEnd(ctx, undefined);
          if (ctx.report.observed) for (const o of this.observers) o.attemptEnd?.(ctx, undefined, error);
        },
      }),
    );
    this.reconfigurable = [this.limiter, this.breaker, ...(sharedLedger ? [sharedLedger] : [])];
    if (this.shared) {
      const shared = this.shared;
      shared.onUp(() => shared.publishBreaker(this.breaker.status(this.config).state));
      this.emitter.on('breaker', (e) => shared.publishBreaker(e.state));
    }
    this.realtimeSessions = new RealtimeSessions({
      config: () => this.config,
      ledger: this.ledger,
      emitter: this.emitter,
      logger,
      nextCallId: () => ++this.callSeq,
      addCost: (usd, model, usage) => this.charge(usd, model, usage),
    });
    this.route(config);
  }

  /** An SDK client copy now sends through this guard: its timeout counts (see callerEndsFirst). */
  sendsFor(client: object): void {
    const timeout = (client as { timeout?: unknown }).timeout;
    this.sdkTimeoutMs = Math.max(this.sdkTimeoutMs ?? 0, typeof timeout === 'number' && timeout >= 0 ? timeout : Infinity);
  }

  /** A charge (or, without usage, a refund) to the totals, and to the tallies of what was charged. */
  private charge(usd: number, model: string | undefined, usage: Usage | undefined): void {
    this.totals.costUsd += usd;
    if (usage) this.tallies.charged(model, usage, usd);
  }

  /** Guards an OpenAI Realtime client for a session in `scope` (see RealtimeSessions). */
  realtime<T extends RealtimeClientLike>(rt: T, scope: Readonly<GuardScope>, options?: RealtimeSessionOptions): T {
    if (this.adapter.name !== 'openai') throw new TypeError(`guard.realtime() needs a guarded OpenAI client; this guard's provider is ${this.adapter.name}`);
    if (!this.config.enabled) return rt; // a disabled guard is the plain SDK
    return this.realtimeSessions.guard(rt, scope, options);
  }

  /** The fetch installed into the SDK copy: every request runs through the pipeline (and the router, with fallbacks). */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const args = fetchArgs(input, init);
    const { url, init: requestInit } = args instanceof Promise ? await args : args;
    // This guard's SDK clients abort their signal at their timeout (see callerEndsFirst).
    const routed = this.router ? await this.router.fetch(url, requestInit, this.sdkTimeoutMs) : undefined;
    const { response, ctx } = routed ?? (await this.execute(url, requestInit, this.sdkTimeoutMs));
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
    return this.prices.cost(model, { inputTokens, outputTokens: maxOutputTokens ?? this.prices.outputBound(model).tokens });
  }

  /**
   * One call through this guard's own pipeline (no failover), under the config of this moment;
   * `sdkTimeoutMs`: when the caller's signal aborts, if its SDK client's timeout is known.
   */
  async execute(url: string, init: RequestInit, sdkTimeoutMs?: number): Promise<{ response: Response; ctx: CallContext }> {
    const made = this.callContext(url, init, sdkTimeoutMs);
    const ctx = made instanceof Promise ? await made : made;
    const request = ctx.request;
    this.totals.calls++;
    if (this.emitter.has('request')) {
      this.emitter.emit('request', { ...ctx.eventBase(), stream: request.stream, maxOutputTokens: request.maxOutputTokens, inputTokensEstimate: ctx.inputTokens });
    }
    // Metrics and tracing follow the call when any of them is active (in this frame: one async step less).
    const observers = this.observers.length === 0 || !this.observers.some((o) => o.active?.() ?? true) ? undefined : this.observers;
    let response: Response;
    if (observers) {
      ctx.report.observed = true;
      for (const o of observers) o.callStart?.(ctx);
    }
    try {
      response = await this.pipeline(ctx);
    } catch (error) {
      this.tallies.callEnd(ctx, undefined, error);
      if (observers) for (const o of observers) o.callEnd?.(ctx, undefined, error);
      throw error;
    }
    this.tallies.callEnd(ctx, response);
    if (observers) for (const o of observers) o.callEnd?.(ctx, response);
    this.weigher.learnFrom(ctx.input, tapOf(response));
    return { response, ctx };
  }

  /**
   * A call's context: its request parsed and weighed. Its own frame, so that no suspended frame of
   * the call holds the parsed body (see withBodyOnDemand).
   */
  private callContext(url: string, init: RequestInit, sdkTimeoutMs: number | undefined): CallContext | Promise<CallContext> {
    const { config, prices, adapter } = this;
    const scope = currentScope();
    // An unknown tier is refused here, before anything is weighed or sent.
    const tier = tierOf(config, scope);
    const method = init.method ?? 'GET';
    const parsed = adapter.parseRequest(url, method, init.body);
    const request = withBodyOnDemand(parsed, () => adapter.parseRequest(url, method, init.body).body);
    const make = (input: InputWeight) => new CallContext({ callId: ++this.callSeq, adapter, request, scope, signal: init.signal ?? undefined, sdkTimeoutMs, url, init, config, prices, input, tier });
    const weighed = this.weigher.weigh(parsed, config.cost.exactInputTokens, url, init);
    return weighed instanceof Promise ? weighed.then(make) : make(weighed);
  }

  /** Builds, updates or drops the router as fallback targets come and go. */
  private route(config: ResolvedConfig): void {
    if (!config.fallback.length) {
      this.router = undefined;
      return;
    }
    if (this.router) return this.router.reconfigure(config);
    this.router = new FailoverRouter({
      self: this,
      selfBaseURL: () => this.sdkBaseURL,
      config,
      endpointOf,
      onFailover: (from, to, reason) => {
        this.logger.warn({ from, to, reason }, 'failing over to the next target');
        if (this.emitter.has('failover')) this.emitter.emit('failover', { from, to, reason });
      },
    });
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

  private emitResponse(ctx: CallContext, response: Response, target?: string): void {
    const { report } = ctx;
    const emit = (usage: ReturnType<NonNullable<ReturnType<typeof tapOf>>['usage']>) =>
      this.emitter.emit('response', {
        ...ctx.eventBase(),
        ...(target !== undefined ? { target } : {}),
        status: response.status,
        usage,
        costUsd: report.costUsd,
        attempts: report.attempts,
        queuedMs: report.queuedMs,
        durationMs: performance.now() - report.startedAt,
      });
    // A successful body is reported once the SDK has read it: only then is usage known.
    const tap = tapOf(response);
    if (tap) tap.onEnd((end) => emit(end.usage));
    else emit(undefined);
  }

  on<E extends GuardEventName>(event: E, listener: GuardListener<E>): () => void {
    return this.emitter.on(event, listener);
  }

  /**
   * Re-validates everything as at construction, then hands the new config to every part that
   * holds state, in one place; calls made from now on run under it, calls in flight keep theirs.
   */
  updateConfig(patch: GuardOptions): void {
    for (const fixed of ['provider', 'logger', 'name', 'redis'] as const) {
      if (patch[fixed] !== undefined) throw new GuardConfigError(fixed, 'a change', 'the value given at creation (fixed for the life of the client)');
    }
    const merged = mergeOptions(this.options, patch);
    const { config, sources } = resolveConfig(merged, this.env, this.adapter.name);
    if (config.enabled !== this.config.enabled) {
      throw new GuardConfigError('enabled', String(config.enabled), `${this.config.enabled} (enabled is fixed at creation: a disabled guard is the plain SDK client)`);
    }
    validateTargets(config.fallback, this.adapter.name);
    const prices = this.priceBook(config);
    const previous = this.config;
    Object.assign(this.options, merged);
    this.config = config;
    this.prices = prices;
    this.sources = sources;
    for (const part of this.reconfigurable) part.reconfigure(config, previous);
    this.route(config);
  }

  /** Price overrides: the prices file, then `cost.prices` over it. */
  private priceBook(config: ResolvedConfig): PriceBook {
    const fromFile = config.cost.pricesFile ? readPricesFile(config.cost.pricesFile) : {};
    return new PriceBook(this.adapter.priceProvider, { ...fromFile, ...config.cost.prices }, config.cost.unpricedModel);
  }

  status(): GuardStatus {
    const states = this.ledger.states(undefined, 100);
    return {
      name: this.config.name,
      provider: this.adapter.name,
      enabled: this.config.enabled,
      config: publicConfig(this.config, targetLabel),
      sources: { ...this.sources },
      limiter: this.limiter.status(),
      breaker: this.breaker.status(this.config),
      budgets: states instanceof Promise ? [] : budgetRows(this.config, states),
      totals: { ...this.totals },
      realtime: { open: this.realtimeSessions.count, maxSessions: this.config.realtime.maxSessions },
      ...(this.shared ?
        { shared: { redis: this.shared.status, where: this.shared.where, prefix: this.shared.prefix, unsyncedCharges: (this.ledger as SharedLedger).unsynced } }
      : {}),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.realtimeSessions.close();
    await Promise.all([...this.stages.map((stage) => stage.close?.()), this.limiter.close()]);
    await this.ledger.close?.();
    await this.shared?.close();
    for (const detach of this.metricsIn.values()) detach();
    this.metricsIn.clear();
    this.emitter.clear();
  }
}
