import type { CallContext, Next, Stage } from '../pipeline';
import type { Logger } from '../logger';
import type { GuardEmitter } from '../events';
import type { Usage } from '../providers/adapter';
import type { BudgetExceededError } from '../errors';
import type { Amounts, BudgetLine, BudgetState, Ledger, MaybePromise } from '../money/ledger';
import { tapOf, type ResponseTap, type TapEnd } from '../internal/response-tap';
import { budgetLines, scopeOfKey, shownKey } from '../money/budget-lines';
import { callCapRefusal, postCallOverrun, streamCapCut, usd } from '../money/refusals';
import type { CostAccount } from '../money/cost-account';
import type { UnpricedModels } from '../money/unpriced';
import { Reservations, type Refusal } from '../money/reservations';

/** A call's weight on budgets (dollars) and quotas (tokens). */
type Weights = { usd: number; tokens: number };
const NOTHING: Weights = Object.freeze({ usd: 0, tokens: 0 });

export interface CostGuardDeps {
  ledger: Ledger;
  account: CostAccount;
  unpriced: UnpricedModels;
  logger: () => Logger;
  emitter: GuardEmitter;
  /** How often calls waiting for budget room look again without a local settle (default 100 ms). */
  pollMs?: number;
}

const resolved = <T>(value: MaybePromise<T>): Promise<T> => (value instanceof Promise ? value : Promise.resolve(value));

/**
 * Outermost stage, the money promise: before anything is sent, the worst case (input estimate +
 * max output) is checked against the per-call cap and reserved against every budget that applies
 * (refused, clamped, or waiting for calls in flight); while a stream flows its running cost is
 * watched and the stream cut when it would cross the cap or a budget; after, the actual cost is
 * charged — always, and exactly once: settled on success, the partial usage on a cut, released
 * when the provider billed nothing.
 */
export class CostGuardStage implements Stage {
  readonly name = 'costGuard';
  /** Budget keys above their warnAt fraction, so each crossing warns once. */
  private readonly warned = new Set<string>();
  /** Model and host pairs already warned about for answering without usage. */
  private readonly warnedEstimated = new Set<string>();
  private readonly warnedUnbounded = new Set<string>();
  private readonly reservations: Reservations;

  constructor(private readonly deps: CostGuardDeps) {
    this.reservations = new Reservations(deps.ledger, deps.pollMs);
  }

  close(): void {
    this.reservations.close();
  }

  async run(ctx: CallContext, next: Next): Promise<Response> {
    if (!ctx.request.billable) return next(ctx);
    this.deps.unpriced.check(ctx.request.model, ctx.prices, ctx.adapter.name);
    let call = ctx;
    let worst = this.worst(ctx);
    if (worst.usd > ctx.config.cost.maxCostPerCallUsd) {
      call = this.enforceCallCap(ctx, worst.usd);
      worst = this.worst(call);
    }
    const lines = budgetLines(ctx.config, ctx.scope, ctx.tier);
    const id = `c${ctx.callId}`;
    let reserved = NOTHING;
    if (lines.length) {
      const waited = this.reservations.reserve(call, id, lines, worst, this.clampTo, this.refusePreCall);
      if (waited) {
        const done = await waited;
        call = done.ctx;
        reserved = done.amounts as Weights;
      } else reserved = worst;
    }

    const ledger = this.deps.ledger;
    let response: Response;
    try {
      response = await next(call);
    } catch (error) {
      if (lines.length) await resolved(this.reservations.freed(ledger.release(id)));
      throw error;
    }
    const tap = tapOf(response);
    if (!tap) {
      // An error answer: the provider billed nothing.
      if (lines.length) await resolved(this.reservations.freed(ledger.release(id)));
      return response;
    }
    const cut = call.request.stream ? this.watchStream(call, tap, id, lines, worst.usd, reserved) : () => undefined;
    this.settleAtEnd(call, tap, id, lines, cut);
    return response;
  }

  /**
   * While a stream flows: cut it when its running cost passes the per-call cap, and ask the
   * budgets for more room when it costs more than was reserved (cut when they have none).
   * Returns the cut, once there is one.
   */
  private watchStream(ctx: CallContext, tap: ResponseTap, id: string, lines: readonly BudgetLine[], worstUsd: number, reservedAtStart: Weights): () => BudgetExceededError | undefined {
    const cap = ctx.config.cost.maxCostPerCallUsd;
    let reserved = reservedAtStart;
    let cut: BudgetExceededError | undefined;
    let extending = false;
    tap.onProgress((usage) => {
      // The provider's final count means the generation is over: nothing left to stop (an
      // overrun then is a post-call one, and what was generated is delivered).
      if (usage.estimated !== true) return;
      const running: Weights = { usd: this.price(ctx, usage), tokens: usage.inputTokens + usage.outputTokens };
      if (running.usd > cap) {
        cut = this.deps.account.exceeded(ctx, 'stream', { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worstUsd, partial: usage, costUsd: running.usd }, streamCapCut({ costUsd: running.usd, capUsd: cap }));
        tap.abort(cut);
      } else if (lines.length && (running.usd > reserved.usd || running.tokens > reserved.tokens) && !extending) {
        // More than estimated (e.g. the provider counted more input than we did): ask for room.
        extending = true;
        const extra: Weights = { usd: Math.max(0, running.usd - reserved.usd) * 1.1, tokens: Math.max(0, running.tokens - reserved.tokens) * 1.1 };
        void resolved(this.deps.ledger.extend(id, extra)).then((result) => {
          extending = false;
          if (result.ok) {
            reserved = { usd: reserved.usd + extra.usd, tokens: reserved.tokens + extra.tokens };
            return;
          }
          if (tap.done) return;
          cut = this.deps.account.refused(ctx, 'stream', result, running, { partial: usage });
          tap.abort(cut);
        });
      }
    });
    return () => cut;
  }

  /** When the body ends (read, cut or abandoned): charge what it cost, once; then the post-call check. */
  private settleAtEnd(ctx: CallContext, tap: ResponseTap, id: string, lines: readonly BudgetLine[], cutOf: () => BudgetExceededError | undefined): void {
    const cap = ctx.config.cost.maxCostPerCallUsd;
    let overrun: BudgetExceededError | undefined;
    // Decided now, while the lines are at hand: most have no warnAt, and the settle need not look.
    const warns = lines.some((l) => l.warnAt !== undefined);
    tap.onEnd((end) => {
      const cut = cutOf();
      // A body with nothing to count (no usage, no text) is charged its worst case, never $0.
      const usage = end.usage ?? this.worstUsage(ctx);
      const cost = this.price(ctx, usage);
      if (usage.estimated && !cut && !end.error && !end.cancelled) this.warnEstimatedOnce(ctx, end.usage === undefined);
      if (lines.length) {
        const states = this.reservations.freed(this.deps.ledger.settle(id, { usd: cost, tokens: usage.inputTokens + usage.outputTokens }));
        if (states instanceof Promise) void states.then((s) => warns && this.warnings(lines, s), () => {});
        else if (warns) this.warnings(lines, states);
      }
      this.deps.account.charged(ctx, usage, cost);
      if (cut && this.deps.emitter.has('stream:aborted')) {
        this.deps.emitter.emit('stream:aborted', { ...ctx.eventBase(), reason: cut.message, usage, costUsd: cost });
      }
      if (!cut && cost > cap && !end.error && !end.cancelled) overrun = this.postCallOverrun(ctx, cost, usage);
    });
    tap.setFinalCheck(
      (_end: TapEnd, value?: unknown) => {
        if (!overrun) return undefined;
        // The paid-for result travels with the error: nothing is thrown away.
        if (value !== undefined) overrun.response = value;
        return overrun;
      },
      // A stream's client that stopped reading before the error never meets it: never silent.
      () => this.deps.logger().warn({ model: ctx.request.model, costUsd: overrun?.costUsd, capUsd: cap }, 'a call cost more than the per-call cap; its stream stopped being read before the error, so it could not be thrown (cost.postCallOverrun = "throw")'),
    );
  }

  private maxOutput(ctx: CallContext): number {
    if (ctx.request.endpoint === 'embeddings') return 0;
    if (ctx.request.maxOutputTokens !== undefined) return ctx.request.maxOutputTokens;
    const bound = ctx.prices.outputBound(ctx.request.model);
    if (!bound.known) this.warnUnboundedOnce(ctx, bound.tokens);
    return bound.tokens;
  }

  /** Once per model: a request without max tokens to a model whose largest output nothing says. */
  private warnUnboundedOnce(ctx: CallContext, tokens: number): void {
    const model = ctx.request.model ?? '(none)';
    if (this.warnedUnbounded.has(model)) return;
    if (this.warnedUnbounded.size > 1000) this.warnedUnbounded.clear();
    this.warnedUnbounded.add(model);
    this.deps.logger().warn(
      { model, reservedOutputTokens: tokens },
      `model ${model} has no known largest output: a request without max tokens is reserved at ${tokens} output tokens; set cost.prices["${model}"].maxOutputTokens (or max tokens on the request)`,
    );
  }

  private worstUsage(ctx: CallContext): Usage {
    return { inputTokens: ctx.inputTokens, outputTokens: this.maxOutput(ctx), estimated: true };
  }

  /** The call's worst case on budgets (dollars) and quotas (tokens). */
  private worst(ctx: CallContext): Weights {
    const usage = this.worstUsage(ctx);
    return { usd: this.price(ctx, usage), tokens: usage.inputTokens + usage.outputTokens };
  }

  /** How many output tokens fit in `room` dollars, given this call's input. */
  private outputThatFits(ctx: CallContext, room: number): number {
    const maxOut = this.maxOutput(ctx);
    const inputOnly = this.price(ctx, { inputTokens: ctx.inputTokens, outputTokens: 0 });
    const full = this.price(ctx, { inputTokens: ctx.inputTokens, outputTokens: Math.max(1, maxOut) });
    const perToken = (full - inputOnly) / Math.max(1, maxOut);
    return perToken > 0 ? Math.floor((room - inputOnly) / perToken) : 0;
  }

  /** The call with its output cap lowered on the wire to `tokens`, with an event saying so. */
  private clamped(ctx: CallContext, tokens: number, reason: string): CallContext {
    if (this.deps.emitter.has('adjusted')) {
      this.deps.emitter.emit('adjusted', { ...ctx.eventBase(), field: ctx.request.maxOutputTokensField!, from: ctx.request.maxOutputTokens, to: tokens, reason });
    }
    return ctx.withMaxOutputTokens(tokens);
  }

  /** A call the budgets refused before it was sent (one function for every call: the common path allocates none). */
  private readonly refusePreCall = (ctx: CallContext, worst: Amounts, result: Refusal, waitedMs: number) => this.deps.account.refused(ctx, 'pre-call', result, worst as Weights, { waitedMs });

  /** onOverBudget 'clamp': the call lowered to what is left of the line that refused it, if that is at least minOutputTokens. */
  private readonly clampTo = (ctx: CallContext, refusal: Refusal): { ctx: CallContext; worst: Weights } | undefined => {
    const cost = ctx.config.cost;
    if (cost.onOverBudget !== 'clamp' || !ctx.request.maxOutputTokensField) return undefined;
    const room = refusal.refusedBy.limit - refusal.state.spent - refusal.state.reserved;
    const byUnit = refusal.refusedBy.unit === 'tokens' ? Math.floor(room - ctx.inputTokens) : this.outputThatFits(ctx, room);
    const fits = Math.min(byUnit, this.maxOutput(ctx));
    if (fits < cost.minOutputTokens) return undefined;
    const what = refusal.refusedBy.unit === 'tokens' ? `${Math.floor(room)} tokens` : usd(room);
    const clamped = this.clamped(ctx, fits, `worst case is over what is left of ${refusal.refusedBy.unit === 'tokens' ? 'token quota' : 'budget'} ${shownKey(refusal.refusedBy.key).key} (${what})`);
    return { ctx: clamped, worst: this.worst(clamped) };
  };

  /** The worst case `worst` of one call is over the per-call cap: refuses, or clamps max tokens. */
  private enforceCallCap(ctx: CallContext, worst: number): CallContext {
    const { cost } = ctx.config;
    const cap = cost.maxCostPerCallUsd;
    const fits = this.outputThatFits(ctx, cap);
    if (cost.onOverBudget === 'clamp' && fits >= cost.minOutputTokens && ctx.request.maxOutputTokensField) {
      return this.clamped(ctx, fits, `worst case ${usd(worst)} is over the per-call cap ${usd(cap)}`);
    }
    throw this.deps.account.exceeded(
      ctx,
      'pre-call',
      { scope: 'call', key: 'call', limitUsd: cap, spentUsd: 0, estimatedUsd: worst },
      callCapRefusal({
        inputTokens: ctx.inputTokens,
        maxOutputTokens: this.maxOutput(ctx),
        model: ctx.request.model,
        worstUsd: worst,
        capUsd: cap,
        ...(cost.onOverBudget === 'clamp' ? { clamp: { fits, minOutputTokens: cost.minOutputTokens } } : {}),
      }),
    );
  }

  /** The actual cost was over the per-call cap (a surprise input count): warn, or throw with the response. */
  private postCallOverrun(ctx: CallContext, cost: number, usage: Usage): BudgetExceededError | undefined {
    const cap = ctx.config.cost.maxCostPerCallUsd;
    const error = this.deps.account.exceeded(ctx, 'post-call', { scope: 'call', key: 'call', limitUsd: cap, spentUsd: cost, estimatedUsd: cost, costUsd: cost }, postCallOverrun({ costUsd: cost, capUsd: cap }));
    if (ctx.config.cost.postCallOverrun === 'throw') return error;
    this.deps.logger().warn({ model: ctx.request.model, costUsd: cost, capUsd: cap, inputTokens: usage.inputTokens, outputTokens: usage.outputTokens }, 'a call cost more than the per-call cap (cost.postCallOverrun = "warn")');
    return undefined;
  }

  private warnings(lines: readonly BudgetLine[], states: BudgetState[]): void {
    for (const state of states) {
      const line = lines.find((l) => l.key === state.key);
      if (line?.warnAt === undefined) continue;
      // What was spent, not what is reserved: a reservation passing warnAt and its settlement
      // falling back under it would warn on every call.
      const fraction = state.spent / line.limit;
      if (fraction < line.warnAt) {
        this.warned.delete(state.key);
        continue;
      }
      if (this.warned.has(state.key)) continue;
      if (this.warned.size > 10_000) this.warned.clear();
      this.warned.add(state.key);
      if (this.deps.emitter.has('budget:warning')) {
        const { key, unit } = shownKey(state.key);
        const tokens = unit === 'tokens';
        this.deps.emitter.emit('budget:warning', {
          key,
          scope: scopeOfKey(key),
          unit,
          limitUsd: tokens ? NaN : line.limit,
          spentUsd: tokens ? NaN : state.spent,
          ...(tokens ? { limitTokens: line.limit, spentTokens: state.spent } : {}),
          fraction,
        });
      }
    }
  }

  private price(ctx: CallContext, usage: Usage): number {
    return ctx.prices.cost(ctx.request.model, usage, { batch: ctx.request.batch });
  }

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
}

/** The host of a request URL, for messages (never its path or query, which may hold a key). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unknown host)';
  }
}
