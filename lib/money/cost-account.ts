import type { CallContext } from '../pipeline';
import type { GuardEmitter } from '../events';
import type { Usage } from '../providers/adapter';
import { BudgetExceededError, type BudgetExceededDetails, type BudgetStage } from '../errors';
import type { ReserveResult } from './ledger';
import { budgetRefusal } from './refusals';
import { scopeOfKey, shownKey } from './budget-lines';
import { windowText } from '../internal/windows';

/**
 * Where the money stages record what happened: a call's charge (the guard's totals, the call's
 * report, the `cost` event) and a budget refusal (the `budget:exceeded` event and the error).
 */
export class CostAccount {
  constructor(
    private readonly deps: {
      emitter: GuardEmitter;
      /** Adds what a call cost (or gives back, negative) to the guard's totals; with `usage` to its tallies too. */
      charge: (usd: number, model?: string, usage?: Usage) => void;
    },
  ) {}

  /** A call was charged `usd` for `usage`. */
  charged(ctx: CallContext, usage: Usage, usd: number): void {
    this.deps.charge(usd, ctx.request.model, usage);
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
        unit: details.unit ?? 'usd',
        limitUsd: details.limitUsd,
        spentUsd: details.spentUsd,
        estimatedUsd: details.estimatedUsd,
        ...(details.limitTokens !== undefined ? { limitTokens: details.limitTokens, spentTokens: details.spentTokens } : {}),
      });
    }
    return new BudgetExceededError(message, { ...details, stage }, retryAfterMs !== undefined ? { retryAfterMs } : {});
  }

  /**
   * A budget or quota had no room: for the call's worst case `worst` (pre-call), or a stream's
   * cost so far (stage 'stream').
   */
  refused(ctx: CallContext, stage: 'pre-call' | 'stream', result: Extract<ReserveResult, { ok: false }>, worst: { usd: number; tokens: number }, extra: { partial?: Usage; waitedMs?: number } = {}): BudgetExceededError {
    const { refusedBy, state } = result;
    const { key, unit } = shownKey(refusedBy.key);
    const scope = scopeOfKey(key);
    const tokens = unit === 'tokens';
    return this.exceeded(
      ctx,
      stage,
      {
        scope,
        key,
        unit,
        limitUsd: tokens ? NaN : refusedBy.limit,
        spentUsd: tokens ? NaN : state.spent,
        estimatedUsd: worst.usd,
        ...(tokens ? { limitTokens: refusedBy.limit, spentTokens: state.spent, estimatedTokens: worst.tokens } : {}),
        ...(extra.partial ? { partial: extra.partial, costUsd: worst.usd } : {}),
      },
      budgetRefusal({
        stage,
        unit,
        amount: tokens ? worst.tokens : worst.usd,
        key,
        limit: refusedBy.limit,
        window: refusedBy.calendar ? `calendar-${refusedBy.calendar}` : windowText(refusedBy.windowMs),
        spent: state.spent,
        reserved: state.reserved,
        nextReleaseAt: state.nextReleaseAt,
        ...(extra.waitedMs ? { waitedMs: extra.waitedMs } : {}),
      }),
      state.nextReleaseAt ? state.nextReleaseAt - Date.now() : undefined,
    );
  }
}
