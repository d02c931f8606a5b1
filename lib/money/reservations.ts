/**
 * Reserving a call's worst case against every budget it is charged to: at once when there is
 * room; when a hard budget refuses, clamped to what is left (onOverBudget 'clamp'), or — when
 * only what calls in flight reserved stands in the way — waiting its turn for them to settle
 * (cost.budgetWaitMs); else refused. Settled + reserved never passes a hard budget.
 */
import type { CallContext } from '../pipeline';
import { BudgetQueue } from './budget-queue';
import type { Amounts, BudgetLine, Ledger, MaybePromise, ReserveResult } from './ledger';

export type Refusal = Extract<ReserveResult, { ok: false }>;

/**
 * A call with its max tokens clamped to fit what `refusal` says is left of the line that refused
 * it, and its new worst case; undefined when it cannot be.
 */
export type ClampTo = (ctx: CallContext, refusal: Refusal) => { ctx: CallContext; worst: Amounts } | undefined;

/** The error for a call refused with `worst` (its worst case as asked), after waiting `waitedMs`. */
export type Refuse = (ctx: CallContext, worst: Amounts, result: Refusal, waitedMs: number) => Error;

/** What was reserved, and the call as it goes on (clamped or not). */
export interface Reserved {
  ctx: CallContext;
  amounts: Amounts;
}

const resolved = <T>(value: MaybePromise<T>): Promise<T> => (value instanceof Promise ? value : Promise.resolve(value));

/** Whether a refusal is only what calls in flight reserved: spent plus this call would fit. */
export function reservedInTheWay(result: Refusal): boolean {
  return result.state.reserved > 0 && result.state.spent + result.amount <= result.refusedBy.limit * (1 + 1e-12);
}

export class Reservations {
  /** Calls waiting for in-flight reservations to settle, per budget key. */
  private readonly queue: BudgetQueue;

  constructor(
    private readonly ledger: Ledger,
    pollMs = 100,
  ) {
    this.queue = new BudgetQueue(pollMs);
  }

  /**
   * Reserves `worst` on every line — at once when the ledger answers at once (the in-memory one
   * does) and nobody waits on these budgets: then it returns undefined (the call goes on as it
   * is, nothing allocated). Else the promise of what was reserved; it rejects with what `refuse`
   * makes of the last refusal.
   */
  reserve(ctx: CallContext, id: string, lines: readonly BudgetLine[], worst: Amounts, clampTo: ClampTo, refuse: Refuse): Promise<Reserved> | undefined {
    if (this.queue.busy(lines)) return this.reserveSlow(ctx, id, lines, worst, clampTo, refuse, undefined);
    const first = this.ledger.reserve(id, lines, worst);
    if (!(first instanceof Promise) && first.ok) return undefined;
    return this.reserveSlow(ctx, id, lines, worst, clampTo, refuse, first);
  }

  /** `first` is undefined when others already wait on these budgets: this call queues behind them. */
  private async reserveSlow(ctx: CallContext, id: string, lines: readonly BudgetLine[], worst: Amounts, clampTo: ClampTo, refuse: Refuse, first: MaybePromise<ReserveResult> | undefined): Promise<Reserved> {
    let result = first === undefined ? undefined : await resolved(first);
    let call = ctx;
    let amount = worst;
    const started = Date.now();
    const deadline = started + ctx.config.cost.budgetWaitMs;
    let ticket: ReturnType<BudgetQueue['enter']> | undefined;
    let queuedOn: string | undefined;
    try {
      for (;;) {
        if (result?.ok) return { ctx: call, amounts: amount };
        if (result) {
          const clamped = clampTo(call, result);
          if (clamped) {
            call = clamped.ctx;
            amount = clamped.worst;
            result = await resolved(this.ledger.reserve(id, lines, amount));
            continue;
          }
          // Settled spend alone is in the way (no wait can help), or the wait is over.
          if (!reservedInTheWay(result) || Date.now() >= deadline) break;
        }
        const key = result?.refusedBy.key ?? this.queue.busy(lines)!;
        if (key !== queuedOn || !ticket) {
          ticket?.leave();
          ticket = this.queue.enter(key);
          queuedOn = key;
        }
        const current = ticket;
        if (!(await current.turn(deadline, ctx.signal))) {
          result ??= await resolved(this.ledger.reserve(id, lines, amount));
          if (result.ok) return { ctx: call, amounts: amount };
          break;
        }
        result = await resolved(this.ledger.reserve(id, lines, amount));
      }
    } finally {
      ticket?.leave();
    }
    throw refuse(ctx, worst, result as Refusal, queuedOn === undefined ? 0 : Date.now() - started);
  }

  /** A settle or a release: room may have appeared, the first call waiting on each budget tries again. */
  freed<T>(value: MaybePromise<T>): MaybePromise<T> {
    if (value instanceof Promise) return value.then((v) => (this.queue.wake(), v));
    this.queue.wake();
    return value;
  }

  close(): void {
    this.queue.close();
  }
}
