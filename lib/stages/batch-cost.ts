import type { CallContext, Next, Stage } from '../pipeline';
import type { Logger } from '../logger';
import type { Usage } from '../providers/adapter';
import type { BudgetLine, Ledger, MaybePromise } from '../money/ledger';
import { budgetLines } from '../money/budget-lines';
import { batchRequestCapRefusal } from '../money/refusals';
import { estimateInputTokens } from '../money/estimate';
import type { CostAccount } from '../money/cost-account';
import type { UnpricedModels } from '../money/unpriced';

export interface BatchCostDeps {
  ledger: Ledger;
  account: CostAccount;
  unpriced: UnpricedModels;
  logger: () => Logger;
}

const resolved = <T>(value: MaybePromise<T>): Promise<T> => (value instanceof Promise ? value : Promise.resolve(value));
/** Batches charged at their worst case whose results were not read yet, at most (the oldest are forgotten). */
const MAX_OPEN_BATCHES = 10_000;

/**
 * Message Batches (for adapters that describe them): every request's worst case at batch prices
 * (half), each within the per-call cap, their sum reserved against the budgets before the batch
 * is sent and charged when it is accepted — the provider bills it later, as the requests run —
 * then trued up to what the requests really cost when the batch's results are read.
 */
export class BatchCostStage implements Stage {
  readonly name = 'batchCost';
  /** Batches charged at their worst case, until their results are read: batch id → charge. */
  private readonly batches = new Map<string, { usd: number; tokens: number; lines: readonly BudgetLine[]; at: number }>();

  constructor(private readonly deps: BatchCostDeps) {}

  run(ctx: CallContext, next: Next): Promise<Response> {
    if (ctx.request.endpoint === 'batches' && ctx.adapter.batchRequests) return this.create(ctx, next);
    if (ctx.request.endpoint === 'batch_results' && ctx.adapter.batchResults) return this.results(ctx, next);
    return next(ctx);
  }

  private async create(ctx: CallContext, next: Next): Promise<Response> {
    const { prices } = ctx;
    const cap = ctx.config.cost.maxCostPerCallUsd;
    let worst = 0;
    const usage: Usage = { inputTokens: 0, outputTokens: 0, estimated: true };
    for (const { id, request } of ctx.adapter.batchRequests!(ctx.request)) {
      this.deps.unpriced.check(request.model, prices, ctx.adapter.name);
      const input = estimateInputTokens(request.endpoint, request.body);
      const output = request.maxOutputTokens ?? prices.outputBound(request.model).tokens;
      const one = prices.cost(request.model, { inputTokens: input, outputTokens: output }, { batch: true });
      if (one > cap) {
        throw this.deps.account.exceeded(
          ctx,
          'pre-call',
          { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: one },
          batchRequestCapRefusal({ id, worstUsd: one, inputTokens: input, outputTokens: output, model: request.model, capUsd: cap }),
        );
      }
      worst += one;
      usage.inputTokens += input;
      usage.outputTokens += output;
    }
    const lines = budgetLines(ctx.config, ctx.scope, ctx.tier);
    const ledger = this.deps.ledger;
    const id = `c${ctx.callId}`;
    const charge = { usd: worst, tokens: usage.inputTokens + usage.outputTokens };
    if (lines.length) {
      const result = await resolved(ledger.reserve(id, lines, charge));
      if (!result.ok) throw this.deps.account.refused(ctx, 'pre-call', result, charge);
    }
    let response: Response;
    try {
      response = await next(ctx);
    } catch (error) {
      if (lines.length) await resolved(ledger.release(id));
      throw error;
    }
    if (!response.ok) {
      if (lines.length) await resolved(ledger.release(id));
      return response;
    }
    const batchId = await response
      .clone()
      .json()
      .then((b: { id?: unknown }) => (typeof b.id === 'string' ? b.id : undefined), () => undefined);
    if (lines.length) await resolved(ledger.settle(id, charge));
    this.deps.account.charged(ctx, usage, worst);
    if (batchId) {
      if (this.batches.size >= MAX_OPEN_BATCHES) this.batches.delete(this.batches.keys().next().value!);
      this.batches.set(batchId, { ...charge, lines, at: Date.now() });
    }
    return response;
  }

  /** A batch's results: what its requests really cost replaces the worst case charged for it. */
  private async results(ctx: CallContext, next: Next): Promise<Response> {
    const response = await next(ctx);
    const batchId = ctx.request.batchId;
    const charged = batchId === undefined ? undefined : this.batches.get(batchId);
    if (!response.ok || !charged) return response;
    this.batches.delete(batchId!);
    void response
      .clone()
      .text()
      .then(async (text) => {
        let actual = 0;
        let tokens = 0;
        for (const { model, usage } of ctx.adapter.batchResults!(ctx.request, text)) {
          actual += ctx.prices.cost(model, usage, { batch: true });
          tokens += usage.inputTokens + usage.outputTokens;
        }
        const back = charged.usd - actual;
        if (back <= 0) return;
        await resolved(this.deps.ledger.refund(charged.lines, { usd: back, tokens: Math.max(0, charged.tokens - tokens) }, charged.at));
        this.deps.account.refunded(back);
        this.deps.logger().debug({ batchId, chargedUsd: charged.usd, actualUsd: actual }, 'batch trued up to its actual cost');
      })
      .catch(() => this.batches.set(batchId!, charged)); // unreadable now: the next read trues it up
    return response;
  }
}
