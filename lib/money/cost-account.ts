import type { CallContext } from '../pipeline';
import type { GuardEmitter } from '../events';
import type { Usage } from '../providers/adapter';
import { BudgetExceededError, type BudgetExceededDetails, type BudgetStage } from '../errors';
import type { ReserveResult } from './ledger';
import { budgetRefusal } from './refusals';

/**
 * Where the money stages record what happened: a call's charge (the guard's totals, the call's
 * report, the `cost` event) and a budget refusal (the `budget:exceeded` event and the error).
 */
export class CostAccount {
  constructor(
    private readonly deps: {
      emitter: GuardEmitter;
      /** Adds what a call cost (or gives back, negative) to the guard's totals. */
      charge: (usd: number) => void;
    },
  ) {}

  /** A call was charged `usd` for `usage`. */
  charged(ctx: CallContext, usage: Usage, usd: number): void {
    this.deps.charge(usd);
    ctx.report.costUsd = usd;
    if (this.deps.emitter.has('cost')) this.deps.emitter.emit('cost', { ...ctx.eventBase(), usd, usage, estimated: usage.estimated === true });
  }

  /** An earlier charge was trued up by `usd` (a batch whose results cost less than its worst case). */
  refunded(usd: number): void {
    this.deps.charge(-usd);
  }

  /** A budget or the per-call cap refused or cut a call: the event, and the error to throw. */
  exceeded(ctx: CallContext, stage: BudgetStage, details: Omit<BudgetExceededDetails, 'stage'>, message: string, retryAfterMs?: number): BudgetExceededError {
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

  /** A budget had no room for `amountUsd` (a call's worst case, or a stream's cost so far). */
  refused(ctx: CallContext, stage: 'pre-call' | 'stream', result: Extract<ReserveResult, { ok: false }>, amountUsd: number, extra: { partial?: Usage; waitedMs?: number } = {}): BudgetExceededError {
    const { refusedBy, state } = result;
    const scope = refusedBy.key === 'global' ? 'global' : (refusedBy.key.slice(0, refusedBy.key.indexOf(':')) as BudgetExceededDetails['scope']);
    return this.exceeded(
      ctx,
      stage,
      { scope, key: refusedBy.key, limitUsd: refusedBy.limitUsd, spentUsd: state.spentUsd, estimatedUsd: amountUsd, ...(extra.partial ? { partial: extra.partial, costUsd: amountUsd } : {}) },
      budgetRefusal({ stage, amountUsd, key: refusedBy.key, limitUsd: refusedBy.limitUsd, windowMs: refusedBy.windowMs, spentUsd: state.spentUsd, reservedUsd: state.reservedUsd, nextReleaseAt: state.nextReleaseAt, ...(extra.waitedMs ? { waitedMs: extra.waitedMs } : {}) }),
      state.nextReleaseAt ? state.nextReleaseAt - Date.now() : undefined,
    );
  }
}
