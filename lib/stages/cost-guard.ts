import type { CallContext, Next, Stage } from '../pipeline';
import type { ResolvedConfig } from '../config/options';
import type { GuardEmitter } from '../events';
import type { Logger } from '../logger';
import type { Usage } from '../providers/adapter';
import { BudgetExceededError, UnpricedModelError } from '../errors';
import type { PriceBook } from '../money/prices';

export interface CostGuardDeps {
  config: () => ResolvedConfig;
  prices: () => PriceBook;
  emitter: GuardEmitter;
  logger: () => Logger;
  /** Adds what a call cost to the guard's totals. */
  charge: (usd: number) => void;
}

const usd = (n: number) => `$${n.toFixed(n < 0.01 ? 6 : 4)}`;

/**
 * Outermost stage: prices the worst case before anything is sent (refuse or clamp), and
 * charges the actual cost when the response body has been read.
 */
export class CostGuardStage implements Stage {
  readonly name = 'costGuard';
  private readonly warnedUnpriced = new Set<string>();

  constructor(private readonly deps: CostGuardDeps) {}

  async run(ctx: CallContext, next: Next): Promise<Response> {
    if (!ctx.request.billable) return next(ctx);
    const config = this.deps.config();
    const prices = this.deps.prices();
    const model = ctx.request.model;
    const source = prices.source(model);
    if (source.kind === 'unpriced') {
      if (prices.unpriced === 'reject') throw new UnpricedModelError(model ?? '(none)', ctx.adapter.name);
      this.warnUnpricedOnce(model, 'is not priced: its calls are counted at $0 (cost.unpricedModel = "allow")');
    } else if (source.kind === 'conservative') {
      this.warnUnpricedOnce(model, `is not priced: it is charged as ${source.modelId}, the provider's dearest model`);
    }

    this.enforceCallCap(ctx, config, prices);

    const response = await next(ctx);
    const tap = ctx.tap;
    if (tap) tap.onEnd((end) => end.usage && this.settle(ctx, end.usage));
    return response;
  }

  /** Refuses, or clamps max tokens, when the worst case of one call is over the per-call cap. */
  private enforceCallCap(ctx: CallContext, config: ResolvedConfig, prices: PriceBook): void {
    const { request } = ctx;
    const cap = config.cost.maxCostPerCallUsd;
    const maxOut = request.maxOutputTokens ?? prices.maxOutputTokens(request.model) ?? 0;
    const worst = this.price(ctx, prices, { inputTokens: ctx.inputTokens, outputTokens: maxOut });
    if (worst <= cap) return;
    const inputOnly = this.price(ctx, prices, { inputTokens: ctx.inputTokens, outputTokens: 0 });
    const perOutputToken = maxOut > 0 ? (worst - inputOnly) / maxOut : 0;
    const fits = perOutputToken > 0 ? Math.floor((cap - inputOnly) / perOutputToken) : 0;
    if (config.cost.onOverBudget === 'clamp' && fits >= config.cost.minOutputTokens && request.maxOutputTokensField) {
      const body = ctx.adapter.withMaxOutputTokens(request, fits);
      ctx.init = { ...ctx.init, body: JSON.stringify(body) };
      if (this.deps.emitter.has('adjusted')) {
        this.deps.emitter.emit('adjusted', {
          ...ctx.eventBase(),
          field: request.maxOutputTokensField,
          from: request.maxOutputTokens,
          to: fits,
          reason: `worst case ${usd(worst)} is over the per-call cap ${usd(cap)}`,
        });
      }
      request.body = body;
      request.maxOutputTokens = fits;
      return;
    }
    const error = new BudgetExceededError(
      `Refused before sending: the worst case of this call (${ctx.inputTokens} input + ${maxOut} output tokens of ${request.model} = ${usd(worst)}) ` +
        `is over the per-call cap of ${usd(cap)} (cost.maxCostPerCallUsd).` +
        (config.cost.onOverBudget === 'clamp' ? ` Clamping would leave ${Math.max(0, fits)} output tokens, under cost.minOutputTokens = ${config.cost.minOutputTokens}.` : ' Lower max tokens, or set cost.onOverBudget = "clamp".'),
      { stage: 'pre-call', scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worst },
    );
    if (this.deps.emitter.has('budget:exceeded')) {
      this.deps.emitter.emit('budget:exceeded', { ...ctx.eventBase(), stage: 'pre-call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worst });
    }
    throw error;
  }

  private price(ctx: CallContext, prices: PriceBook, usage: Usage): number {
    return prices.cost(ctx.request.model, usage, { batch: ctx.request.batch });
  }

  private settle(ctx: CallContext, usage: Usage): void {
    const cost = this.price(ctx, this.deps.prices(), usage);
    this.deps.charge(cost);
    if (this.deps.emitter.has('cost')) {
      this.deps.emitter.emit('cost', { ...ctx.eventBase(), usd: cost, usage, estimated: usage.estimated === true });
    }
  }

  private warnUnpricedOnce(model: string | undefined, what: string): void {
    const key = model ?? '';
    if (this.warnedUnpriced.has(key)) return;
    this.warnedUnpriced.add(key);
    this.deps.logger().warn({ model }, `model ${model ?? '(none)'} ${what}`);
  }
}
