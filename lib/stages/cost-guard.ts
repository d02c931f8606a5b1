import type { CallContext, Next, Stage } from '../pipeline';
import type { ResolvedBudgetRule, ResolvedConfig } from '../config/options';
import type { GuardEmitter } from '../events';
import type { Logger } from '../logger';
import type { Usage } from '../providers/adapter';
import { BudgetExceededError, UnpricedModelError, type BudgetExceededDetails, type BudgetStage } from '../errors';
import type { PriceBook } from '../money/prices';
import type { BudgetLine, BudgetState, Ledger, MaybePromise, ReserveResult } from '../money/ledger';
import type { TapEnd } from '../internal/response-tap';
import { windowText } from '../internal/windows';
import { estimateInputTokens } from '../money/estimate';
import { BudgetQueue } from '../money/budget-queue';

export interface CostGuardDeps {
  config: () => ResolvedConfig;
  prices: () => PriceBook;
  ledger: () => Ledger;
  emitter: GuardEmitter;
  logger: () => Logger;
  /** Adds what a call cost to the guard's totals. */
  charge: (usd: number) => void;
  /** How often calls waiting for budget room look again without a local settle (default 100 ms). */
  pollMs?: number;
}

const usd = (n: number) => `$${n.toFixed(n < 0.01 ? 6 : 4)}`;
const resolved = <T>(value: MaybePromise<T>): Promise<T> => (value instanceof Promise ? value : Promise.resolve(value));

/** The budget key a rule charges for a scope, or undefined when the call has no such scope. */
export function budgetKey(rule: ResolvedBudgetRule, scope: CallContext['scope']): string | undefined {
  if (rule.scope === 'global') return 'global';
  const id = scope[rule.scope];
  return id === undefined ? undefined : `${rule.scope}:${id}`;
}

/**
 * Outermost stage, the money promise: before anything is sent, the worst case (input estimate +
 * max output) is checked against the per-call cap and reserved against every budget that applies
 * (refused, or its max tokens clamped to fit); while a stream flows its running cost is watched
 * and the stream cut when it would cross the cap or a budget; after, the actual cost is charged
 * — always, and exactly once: settled on success, the partial usage on a cut, released when the
 * provider billed nothing.
 */
export class CostGuardStage implements Stage {
  readonly name = 'costGuard';
  private readonly warnedUnpriced = new Set<string>();
  /** Budget keys above their warnAt fraction, so each crossing warns once. */
  private readonly warned = new Set<string>();

  /** Message Batches charged at their worst case, until their results are read: batch id → charge. */
  private readonly batches = new Map<string, { usd: number; lines: BudgetLine[]; at: number }>();

  /** Calls waiting for in-flight reservations to settle (cost.budgetWaitMs), per budget key. */
  private readonly queue: BudgetQueue;

  constructor(private readonly deps: CostGuardDeps) {
    this.queue = new BudgetQueue(deps.pollMs ?? 100);
  }

  /** Room may have appeared in a budget: the first call waiting on each tries again. */
  private readonly roomChanged = <T>(value: T): T => {
    this.queue.wake();
    return value;
  };

  /** Settles or releases, then wakes waiting calls (at once with the in-memory ledger, after Redis answers with the shared one). */
  private afterward<T>(value: MaybePromise<T>): MaybePromise<T> {
    return value instanceof Promise ? value.then(this.roomChanged) : this.roomChanged(value);
  }

  close(): void {
    this.queue.close();
  }

  async run(ctx: CallContext, next: Next): Promise<Response> {
    if (ctx.request.endpoint === 'batches') return this.guardBatch(ctx, next);
    if (ctx.request.endpoint === 'batch_results') return this.trueUpBatch(ctx, next);
    if (!ctx.request.billable) return next(ctx);
    const config = this.deps.config();
    const prices = this.deps.prices();
    this.checkPriced(ctx, prices);

    const { worst } = this.enforceCallCap(ctx, config, prices);
    const lines = this.linesFor(ctx, config);
    const ledger = this.deps.ledger();
    const id = `c${ctx.callId}`;
    let reserved = 0;
    if (lines.length) {
      const r = this.reserve(ctx, config, prices, ledger, id, lines, worst);
      reserved = typeof r === 'number' ? r : await r;
    }

    const response = await this.send(ctx, next, ledger, id, lines);
    const tap = ctx.tap;
    if (!tap) {
      // An error answer: the provider billed nothing.
      if (lines.length) await resolved(this.afterward(ledger.release(id)));
      return response;
    }

    const cap = config.cost.maxCostPerCallUsd;
    let cut: BudgetExceededError | undefined;
    let overrun: BudgetExceededError | undefined;
    if (ctx.request.stream) {
      let extending = false;
      tap.onProgress((usage) => {
        // The provider's final count means the generation is over: nothing left to stop (an
        // overrun then is a post-call one, and what was generated is delivered).
        if (usage.estimated !== true) return;
        const running = this.price(ctx, prices, usage);
        if (running > cap) {
          cut = this.exceeded(ctx, 'stream', { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worst, partial: usage, costUsd: running },
            `Stopped mid-stream: this call has cost ${usd(running)} so far, over the per-call cap of ${usd(cap)} (cost.maxCostPerCallUsd). What was generated is charged.`);
          tap.abort(cut);
        } else if (lines.length && running > reserved && !extending) {
          // More than estimated (e.g. the provider counted more input than we did): ask for room.
          extending = true;
          const extra = running - reserved + (worst - running > 0 ? 0 : running * 0.1);
          void resolved(ledger.extend(id, extra)).then((result) => {
            extending = false;
            if (result.ok) {
              reserved += extra;
              return;
            }
            if (tap.done) return;
            cut = this.refusal(ctx, 'stream', result, running, usage);
            tap.abort(cut);
          });
        }
      });
    }
    tap.onEnd((end) => {
      // A body with nothing to count (no usage, no text) is charged its worst case, never $0.
      const usage = end.usage ?? this.worstUsage(ctx);
      const cost = this.price(ctx, prices, usage);
      if (usage.estimated && !cut && !end.error && !end.cancelled) this.warnEstimatedOnce(ctx, end.usage === undefined);
      if (lines.length) {
        const states = this.afterward(ledger.settle(id, cost));
        if (states instanceof Promise) void states.then((s) => this.warnings(ctx, config, lines, s), () => {});
        else this.warnings(ctx, config, lines, states);
      }
      this.recordCost(ctx, usage, cost);
      if (cut && this.deps.emitter.has('stream:aborted')) {
        this.deps.emitter.emit('stream:aborted', { ...ctx.eventBase(), reason: cut.message, usage, costUsd: cost });
      }
      if (!cut && cost > cap && !end.error && !end.cancelled) overrun = this.postCallOverrun(ctx, config, cost, usage);
    });
    tap.setFinalCheck((_end: TapEnd, value?: unknown) => {
      if (!overrun) return undefined;
      // The paid-for result travels with the error: nothing is thrown away.
      if (value !== undefined) overrun.response = value;
      return overrun;
    });
    return response;
  }

  /**
   * A Message Batch: every request's worst case at batch prices (half), each within the per-call
   * cap, their sum reserved against the budgets before the batch is sent and charged when it is
   * accepted — the provider bills it later, as the requests run — then trued up to the actual
   * usage when its results are read.
   */
  private async guardBatch(ctx: CallContext, next: Next): Promise<Response> {
    const config = this.deps.config();
    const prices = this.deps.prices();
    const cap = config.cost.maxCostPerCallUsd;
    const requests = Array.isArray(ctx.request.body?.requests) ? (ctx.request.body.requests as Array<{ custom_id?: unknown; params?: Record<string, unknown> }>) : [];
    let worst = 0;
    const usage: Usage = { inputTokens: 0, outputTokens: 0, estimated: true };
    for (const entry of requests) {
      const params = entry?.params ?? {};
      const model = typeof params.model === 'string' ? params.model : undefined;
      this.checkModelPriced(model, prices, ctx.adapter.name);
      const input = estimateInputTokens('messages', params);
      const output = typeof params.max_tokens === 'number' ? params.max_tokens : (prices.maxOutputTokens(model) ?? 0);
      const one = prices.cost(model, { inputTokens: input, outputTokens: output }, { batch: true });
      if (one > cap) {
        throw this.exceeded(
          ctx,
          'pre-call',
          { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: one },
          `Refused before sending: batch request "${String(entry?.custom_id)}" could cost ${usd(one)} at batch prices (${input} input + ${output} output tokens of ${model}), over the per-call cap of ${usd(cap)} (cost.maxCostPerCallUsd). Nothing was sent.`,
        );
      }
      worst += one;
      usage.inputTokens += input;
      usage.outputTokens += output;
    }
    const lines = this.linesFor(ctx, config);
    const ledger = this.deps.ledger();
    const id = `c${ctx.callId}`;
    if (lines.length) {
      const result = await resolved(ledger.reserve(id, lines, worst));
      if (!result.ok) throw this.refusal(ctx, 'pre-call', result, worst);
    }
    const response = await this.send(ctx, next, ledger, id, lines);
    if (!response.ok) {
      if (lines.length) await resolved(this.afterward(ledger.release(id)));
      return response;
    }
    const batchId = await response
      .clone()
      .json()
      .then((b: { id?: unknown }) => (typeof b.id === 'string' ? b.id : undefined), () => undefined);
    if (lines.length) await resolved(this.afterward(ledger.settle(id, worst)));
    this.recordCost(ctx, usage, worst);
    if (batchId) {
      if (this.batches.size >= 10_000) this.batches.delete(this.batches.keys().next().value!);
      this.batches.set(batchId, { usd: worst, lines, at: Date.now() });
    }
    return response;
  }

  /** Sends the call; if it fails without a response, its reservation is released. */
  private async send(ctx: CallContext, next: Next, ledger: Ledger, id: string, lines: BudgetLine[]): Promise<Response> {
    try {
      return await next(ctx);
    } catch (error) {
      if (lines.length) await resolved(this.afterward(ledger.release(id)));
      throw error;
    }
  }

  /** A batch's results: what its requests really cost replaces the worst case charged for it. */
  private async trueUpBatch(ctx: CallContext, next: Next): Promise<Response> {
    const response = await next(ctx);
    const batchId = /\/messages\/batches\/([^/]+)\/results$/.exec(new URL(ctx.url).pathname)?.[1];
    const charged = batchId === undefined ? undefined : this.batches.get(batchId);
    if (!response.ok || !charged) return response;
    this.batches.delete(batchId!);
    const prices = this.deps.prices();
    const asMessage = { ...ctx.request, endpoint: 'messages' as const };
    void response
      .clone()
      .text()
      .then(async (text) => {
        let actual = 0;
        for (const line of text.split('\n')) {
          if (!line.trim()) continue;
          const result = (JSON.parse(line) as { result?: { type?: string; message?: { model?: string } } }).result;
          // Errored, canceled and expired requests are not billed.
          if (result?.type !== 'succeeded' || !result.message) continue;
          const used = ctx.adapter.usageFromJson(asMessage, result.message);
          if (used) actual += prices.cost(result.message.model, used, { batch: true });
        }
        const back = charged.usd - actual;
        if (back <= 0) return;
        await resolved(this.deps.ledger().refund(charged.lines, back, charged.at));
        this.deps.charge(-back);
        this.deps.logger().debug({ batchId, chargedUsd: charged.usd, actualUsd: actual }, 'batch trued up to its actual cost');
      })
      .catch(() => this.batches.set(batchId!, charged)); // unreadable now: the next read trues it up
    return response;
  }

  private checkPriced(ctx: CallContext, prices: PriceBook): void {
    this.checkModelPriced(ctx.request.model, prices, ctx.adapter.name);
  }

  private checkModelPriced(model: string | undefined, prices: PriceBook, provider: string): void {
    const source = prices.source(model);
    if (source.kind === 'unpriced') {
      if (prices.unpriced === 'reject') throw new UnpricedModelError(model ?? '(none)', provider);
      this.warnUnpricedOnce(model, 'is not priced: its calls are counted at $0 (cost.unpricedModel = "allow")');
    } else if (source.kind === 'conservative') {
      this.warnUnpricedOnce(model, `is not priced: it is charged as ${source.modelId}, the provider's dearest model`);
    }
  }

  /** The budgets a call is charged to: global, and each scope it carries a budget for. */
  private linesFor(ctx: CallContext, config: ResolvedConfig): BudgetLine[] {
    const lines: BudgetLine[] = [];
    for (const rule of config.cost.budgets) {
      const key = budgetKey(rule, ctx.scope);
      if (key) lines.push({ key, limitUsd: rule.limitUsd, windowMs: rule.window, hard: rule.enforcement === 'hard' });
    }
    return lines;
  }

  private maxOutput(ctx: CallContext, prices: PriceBook): number {
    return ctx.request.endpoint === 'embeddings' ? 0 : (ctx.request.maxOutputTokens ?? prices.maxOutputTokens(ctx.request.model) ?? 0);
  }

  private worstUsage(ctx: CallContext): Usage {
    return { inputTokens: ctx.inputTokens, outputTokens: this.maxOutput(ctx, this.deps.prices()), estimated: true };
  }

  /** How many output tokens fit in `room` dollars, given this call's input. */
  private outputThatFits(ctx: CallContext, prices: PriceBook, room: number): number {
    const maxOut = this.maxOutput(ctx, prices);
    const inputOnly = this.price(ctx, prices, { inputTokens: ctx.inputTokens, outputTokens: 0 });
    const full = this.price(ctx, prices, { inputTokens: ctx.inputTokens, outputTokens: Math.max(1, maxOut) });
    const perToken = (full - inputOnly) / Math.max(1, maxOut);
    return perToken > 0 ? Math.floor((room - inputOnly) / perToken) : 0;
  }

  /** Lowers the request's output cap on the wire, with an event saying so. */
  private clampTo(ctx: CallContext, tokens: number, reason: string): void {
    const { request } = ctx;
    const body = ctx.adapter.withMaxOutputTokens(request, tokens);
    ctx.init = { ...ctx.init, body: JSON.stringify(body) };
    if (this.deps.emitter.has('adjusted')) {
      this.deps.emitter.emit('adjusted', { ...ctx.eventBase(), field: request.maxOutputTokensField!, from: request.maxOutputTokens, to: tokens, reason });
    }
    request.body = body;
    request.maxOutputTokens = tokens;
  }

  /** Refuses, or clamps max tokens, when the worst case of one call is over the per-call cap. */
  private enforceCallCap(ctx: CallContext, config: ResolvedConfig, prices: PriceBook): { worst: number } {
    const cap = config.cost.maxCostPerCallUsd;
    const worst = this.price(ctx, prices, this.worstUsage(ctx));
    if (worst <= cap) return { worst };
    const fits = this.outputThatFits(ctx, prices, cap);
    if (config.cost.onOverBudget === 'clamp' && fits >= config.cost.minOutputTokens && ctx.request.maxOutputTokensField) {
      this.clampTo(ctx, fits, `worst case ${usd(worst)} is over the per-call cap ${usd(cap)}`);
      return { worst: this.price(ctx, prices, this.worstUsage(ctx)) };
    }
    const maxOut = this.maxOutput(ctx, prices);
    throw this.exceeded(
      ctx,
      'pre-call',
      { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worst },
      `Refused before sending: the worst case of this call (${ctx.inputTokens} input + ${maxOut} output tokens of ${ctx.request.model} = ${usd(worst)}) ` +
        `is over the per-call cap of ${usd(cap)} (cost.maxCostPerCallUsd).` +
        (config.cost.onOverBudget === 'clamp' ?
          ` Clamping would leave ${Math.max(0, fits)} output tokens, under cost.minOutputTokens = ${config.cost.minOutputTokens}.`
        : ' Lower max tokens, or set cost.onOverBudget = "clamp".'),
    );
  }

  /**
   * Reserves the worst case on every budget; clamps to what is left, waits for calls in flight,
   * or refuses. Returns the reserved amount — at once when the ledger answers at once (the
   * in-memory one does) and nobody waits on these budgets.
   */
  private reserve(ctx: CallContext, config: ResolvedConfig, prices: PriceBook, ledger: Ledger, id: string, lines: BudgetLine[], worst: number): number | Promise<number> {
    if (this.queue.busy(lines.map((l) => l.key))) return this.reserveSlow(ctx, config, prices, ledger, id, lines, worst, undefined);
    const first = ledger.reserve(id, lines, worst);
    if (!(first instanceof Promise) && first.ok) return worst;
    return this.reserveSlow(ctx, config, prices, ledger, id, lines, worst, first);
  }

  /**
   * The slow path: a refusal is clamped (onOverBudget 'clamp'), or — when only what calls in
   * flight reserved stands in the way (spent + this call fits) — waits its turn for them to
   * settle, up to cost.budgetWaitMs. `first` is undefined when others already wait on these budgets.
   */
  private async reserveSlow(ctx: CallContext, config: ResolvedConfig, prices: PriceBook, ledger: Ledger, id: string, lines: BudgetLine[], worst: number, first: MaybePromise<ReserveResult> | undefined): Promise<number> {
    let result = first === undefined ? undefined : await resolved(first);
    let amount = worst;
    const started = Date.now();
    const deadline = started + config.cost.budgetWaitMs;
    let ticket: ReturnType<BudgetQueue['enter']> | undefined;
    let queuedOn: string | undefined;
    try {
      for (;;) {
        if (result?.ok) return amount;
        if (result && config.cost.onOverBudget === 'clamp' && ctx.request.maxOutputTokensField) {
          const room = result.refusedBy.limitUsd - result.state.spentUsd - result.state.reservedUsd;
          const fits = Math.min(this.outputThatFits(ctx, prices, room), this.maxOutput(ctx, prices));
          if (fits >= config.cost.minOutputTokens) {
            this.clampTo(ctx, fits, `worst case ${usd(worst)} is over what is left of budget ${result.refusedBy.key} (${usd(room)})`);
            amount = this.price(ctx, prices, this.worstUsage(ctx));
            result = await resolved(ledger.reserve(id, lines, amount));
            continue;
          }
        }
        // Settled spend alone is in the way (no wait can help), or the wait is over.
        if (result && (!reservedInTheWay(result, amount) || Date.now() >= deadline)) break;
        const key = result?.refusedBy.key ?? this.queue.busy(lines.map((l) => l.key))!;
        if (key !== queuedOn || !ticket) {
          ticket?.leave();
          ticket = this.queue.enter(key);
          queuedOn = key;
        }
        const current = ticket;
        if (!(await current.turn(deadline, ctx.signal))) {
          result ??= await resolved(ledger.reserve(id, lines, amount));
          if (result.ok) return amount;
          break;
        }
        result = await resolved(ledger.reserve(id, lines, amount));
      }
    } finally {
      ticket?.leave();
    }
    throw this.refusal(ctx, 'pre-call', result!, worst, undefined, queuedOn === undefined ? 0 : Date.now() - started);
  }

  private refusal(ctx: CallContext, stage: BudgetStage, result: Extract<ReserveResult, { ok: false }>, estimated: number, partial?: Usage, waitedMs = 0): BudgetExceededError {
    const { refusedBy, state } = result;
    const scope = refusedBy.key === 'global' ? 'global' : (refusedBy.key.slice(0, refusedBy.key.indexOf(':')) as BudgetExceededDetails['scope']);
    const left = Math.max(0, refusedBy.limitUsd - state.spentUsd - state.reservedUsd);
    const what = stage === 'pre-call' ? `Refused before sending: the worst case of this call (${usd(estimated)})` : `Stopped mid-stream: this call (${usd(estimated)} so far)`;
    return this.exceeded(
      ctx,
      stage,
      { scope, key: refusedBy.key, limitUsd: refusedBy.limitUsd, spentUsd: state.spentUsd, estimatedUsd: estimated, ...(partial ? { partial, costUsd: estimated } : {}) },
      `${what} does not fit in budget ${refusedBy.key}: ${usd(refusedBy.limitUsd)} per ${windowText(refusedBy.windowMs)}, ${usd(state.spentUsd)} spent and ${usd(state.reservedUsd)} reserved, ${usd(left)} left.` +
        (waitedMs > 0 ? ` It waited ${waitedMs} ms for calls in flight to settle (cost.budgetWaitMs).` : '') +
        (state.nextReleaseAt ? ` Room comes back from ${new Date(state.nextReleaseAt).toISOString()}.` : ''),
      state.nextReleaseAt ? state.nextReleaseAt - Date.now() : undefined,
    );
  }

  private exceeded(ctx: CallContext, stage: BudgetStage, details: Omit<BudgetExceededDetails, 'stage'>, message: string, retryAfterMs?: number): BudgetExceededError {
    if (this.deps.emitter.has('budget:exceeded')) {
      this.deps.emitter.emit('budget:exceeded', {
        ...ctx.eventBase(),
        stage,
        key: details.key,
        limitUsd: details.limitUsd,
        spentUsd: details.spentUsd,
        estimatedUsd: details.estimatedUsd,
      });
    }
    return new BudgetExceededError(message, { ...details, stage }, retryAfterMs !== undefined ? { retryAfterMs } : {});
  }

  /** The actual cost was over the per-call cap (a surprise input count): warn, or throw with the response. */
  private postCallOverrun(ctx: CallContext, config: ResolvedConfig, cost: number, usage: Usage): BudgetExceededError | undefined {
    const cap = config.cost.maxCostPerCallUsd;
    const error = this.exceeded(
      ctx,
      'post-call',
      { scope: 'call', key: 'call', limitUsd: cap, spentUsd: cost, estimatedUsd: cost, costUsd: cost },
      `This call cost ${usd(cost)}, over the per-call cap of ${usd(cap)} (cost.maxCostPerCallUsd): its usage was more than estimated. It was charged; the response is attached as \`response\`.`,
    );
    if (config.cost.postCallOverrun === 'throw') return error;
    this.deps.logger().warn({ model: ctx.request.model, costUsd: cost, capUsd: cap, inputTokens: usage.inputTokens, outputTokens: usage.outputTokens }, 'a call cost more than the per-call cap (cost.postCallOverrun = "warn")');
    return undefined;
  }

  private warnings(ctx: CallContext, config: ResolvedConfig, lines: BudgetLine[], states: BudgetState[]): void {
    for (const state of states) {
      const line = lines.find((l) => l.key === state.key);
      const rule = line && config.cost.budgets.find((r) => budgetKey(r, ctx.scope) === state.key);
      if (!line || rule?.warnAt === undefined) continue;
      // What was spent, not what is reserved: a reservation passing warnAt and its settlement
      // falling back under it would warn on every call.
      const fraction = state.spentUsd / line.limitUsd;
      if (fraction < rule.warnAt) {
        this.warned.delete(state.key);
        continue;
      }
      if (this.warned.has(state.key)) continue;
      if (this.warned.size > 10_000) this.warned.clear();
      this.warned.add(state.key);
      if (this.deps.emitter.has('budget:warning')) {
        this.deps.emitter.emit('budget:warning', { key: state.key, scope: rule.scope, limitUsd: line.limitUsd, spentUsd: state.spentUsd, fraction });
      }
    }
  }

  private price(ctx: CallContext, prices: PriceBook, usage: Usage): number {
    return prices.cost(ctx.request.model, usage, { batch: ctx.request.batch });
  }

  private recordCost(ctx: CallContext, usage: Usage, cost: number): void {
    this.deps.charge(cost);
    ctx.costUsd = cost;
    if (this.deps.emitter.has('cost')) {
      this.deps.emitter.emit('cost', { ...ctx.eventBase(), usd: cost, usage, estimated: usage.estimated === true });
    }
  }

  /** Model and host pairs already warned about for answering without usage. */
  private readonly warnedEstimated = new Set<string>();

  /** A response that reported no usage was charged an estimate: say so once per model and host. */
  private warnEstimatedOnce(ctx: CallContext, worstCase: boolean): void {
    const host = hostOf(ctx.url);
    const key = `${ctx.request.model ?? ''}@${host}`;
    if (this.warnedEstimated.has(key)) return;
    if (this.warnedEstimated.size > 1000) this.warnedEstimated.clear();
    this.warnedEstimated.add(key);
    const how = worstCase ? 'at its worst case (nothing in it could be counted)' : 'an estimate (input estimate + output counted from its text)';
    const hint = ctx.request.stream && ctx.request.endpoint === 'chat' && !ctx.request.streamReportsUsage ? ' Set stream_options: { include_usage: true } to get the exact count.' : '';
    this.deps.logger().warn({ model: ctx.request.model, host }, `a response from ${host} for model ${ctx.request.model ?? '(none)'} reported no usage: it was charged ${how}.${hint}`);
  }

  private warnUnpricedOnce(model: string | undefined, what: string): void {
    const key = model ?? '';
    if (this.warnedUnpriced.has(key)) return;
    this.warnedUnpriced.add(key);
    this.deps.logger().warn({ model }, `model ${model ?? '(none)'} ${what}`);
  }
}


/** The host of a request URL, for messages (never its path or query, which may hold a key). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unknown host)';
  }
}

/** Whether a refusal is only what calls in flight reserved: spent plus this call would fit. */
function reservedInTheWay(result: Extract<ReserveResult, { ok: false }>, amount: number): boolean {
  return result.state.reservedUsd > 0 && result.state.spentUsd + amount <= result.refusedBy.limitUsd * (1 + 1e-12);
}
