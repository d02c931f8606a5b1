/**
 * One guarded Realtime session: every response reserved before it starts (at least a minimal
 * one must fit the session cap and the scope's budgets), its output followed as it streams,
 * charged from its `response.done` usage, and the session stopped past a cap — refuse the send,
 * cancel the response in progress, close the socket, and emit the guard error on the client.
 */
import { BudgetExceededError, RealtimeDurationExceededError, type GuardError } from '../errors';
import type { Ledger, BudgetLine, ReserveResult, MaybePromise } from '../money/ledger';
import { reservedInTheWay } from '../money/reservations';
import { priceRealtime, type RealtimeCharge, type RealtimePriceSource, type RealtimeUsageEvent } from './realtime-price';
import { estimateAudioDeltaTokens, estimateDeltaTokens } from './realtime-deltas';
import { Conversation } from './conversation';

type RealtimeEvent = { type: string };

/** The openai SDK's realtime clients (OpenAIRealtimeWS, OpenAIRealtimeWebSocket), as far as the guard uses them. */
export interface RealtimeClientLike {
  send(event: RealtimeEvent): void;
  close(props?: { code: number; reason: string }): void;
  on(event: string, listener: (event: never) => void): unknown;
  url?: URL | string;
  socket?: unknown;
}

export type SessionEnd = 'closed' | 'session-cap' | 'budget' | 'duration' | 'dropped' | 'guard-closed';

export interface SessionDeps {
  id: string;
  model: string | undefined;
  price: RealtimePriceSource;
  lines: readonly BudgetLine[];
  ledger: Ledger;
  maxSessionUsd: number;
  maxDurationMs: number;
  /** Output tokens a response must have room for before it starts (cost.minOutputTokens). */
  minOutputTokens: number;
  /** How long a response that only other calls' reservations keep out waits for them (cost.budgetWaitMs). */
  budgetWaitMs: number;
  /** A response was charged (the guard's totals, the cost event). */
  onCharge: (charge: RealtimeCharge) => void;
  /** The session ended (metrics, tracing, the session count). */
  onEnd: (reason: SessionEnd, costUsd: number, durationMs: number) => void;
  /** A guard error the client has no `error` listener for: logged instead of thrown at nobody. */
  onUnheard: (error: GuardError) => void;
  /** A ledger answer that failed (Redis with redisFailure 'reject'): the session stops. */
  onLedgerError: (error: unknown) => void;
}

/** How long a cancelled response may take to report its usage before the socket is closed anyway. */
const CANCEL_GRACE_MS = 1000;
/** While other calls' reservations keep a response out, how often it tries again. */
const RESERVE_POLL_MS = 50;

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class RealtimeSession {
  private readonly send: (event: RealtimeEvent) => void;
  private readonly startedAt = performance.now();
  private spentUsd = 0;
  /** The conversation as the next response will read it (see Conversation). */
  private readonly conversation = new Conversation();
  private responseSeq = 0;
  /** The response in progress: its ledger id, what it reserved, and its output so far (estimated). */
  private current: { id: string; reservedUsd: number; outputTokens: number; audioTokens: number; serverId?: string } | undefined;
  /** Events held while a reservation is answered (Redis), sent in order after it. */
  private outbox: RealtimeEvent[] | undefined;
  private stopped: SessionEnd | undefined;
  private ended = false;
  private readonly durationTimer: ReturnType<typeof setTimeout>;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private endWaiters: Array<() => void> = [];

  constructor(
    private readonly rt: RealtimeClientLike,
    private readonly deps: SessionDeps,
  ) {
    this.send = rt.send.bind(rt);
    rt.send = (event) => this.onSend(event);
    rt.on('response.created', (e: { response?: { id?: string } }) => this.onCreated(e.response?.id));
    rt.on('response.done', (e: { response?: { id?: string; usage?: RealtimeUsageEvent } }) => this.onDone(e.response?.usage));
    for (const type of ['response.output_text.delta', 'response.text.delta', 'response.output_audio_transcript.delta', 'response.audio_transcript.delta'] as const) {
      rt.on(type, (e: { delta?: string }) => this.onOutput(estimateDeltaTokens(e.delta), 0));
    }
    for (const type of ['response.output_audio.delta', 'response.audio.delta'] as const) {
      rt.on(type, (e: { delta?: string }) => this.onOutput(0, estimateAudioDeltaTokens(e.delta)));
    }
    onSocketClose(rt.socket, () => this.onClosed());
    this.durationTimer = setTimeout(() => this.stop('duration', new RealtimeDurationExceededError(deps.maxDurationMs, deps.id)), deps.maxDurationMs);
    this.durationTimer.unref();
  }

  get costUsd(): number {
    return this.spentUsd;
  }

  /** Ends the session from outside (guard.close()): cancel, close, settle; resolves once it has ended. */
  shutdown(): Promise<void> {
    if (this.ended) return Promise.resolve();
    const ended = new Promise<void>((resolve) => this.endWaiters.push(resolve));
    this.stop('guard-closed', undefined);
    return ended;
  }

  private onSend(event: RealtimeEvent): void {
    if (this.stopped) return; // refused: the session was stopped and its error emitted
    if (this.outbox) {
      this.outbox.push(event);
      return;
    }
    this.conversation.sent(event);
    if (event.type === 'response.create') {
      if (this.current) return this.send(event); // the server refuses a second one itself
      const reserved = this.reserve();
      if (reserved instanceof Promise) {
        this.outbox = [event];
        reserved.then(
          (ok) => this.flush(ok),
          (error: unknown) => {
            this.outbox = undefined;
            this.deps.onLedgerError(error);
            this.stop('budget', undefined);
          },
        );
        return;
      }
      if (!reserved) return;
    }
    this.send(event);
  }

  /** Sends what waited for a reservation, in order (or drops it: the session stopped). */
  private flush(ok: boolean): void {
    const queued = this.outbox ?? [];
    this.outbox = undefined;
    if (!ok || this.stopped) return;
    for (const event of queued) this.onSend(event);
  }

  /** What the next response costs at least: the conversation so far as input, and minOutputTokens out. */
  private minimalUsd(): number {
    return priceRealtime(this.deps.price, this.conversation.nextResponse(this.deps.minOutputTokens, 0)).usd;
  }

  /** Reserves a minimal response against the session cap and the budgets; false: the session was stopped. */
  private reserve(): boolean | Promise<boolean> {
    const minimal = this.minimalUsd();
    if (this.spentUsd + minimal > this.deps.maxSessionUsd) {
      this.stop('session-cap', this.sessionCapError(minimal));
      return false;
    }
    const id = `realtime:${this.deps.id}:${++this.responseSeq}`;
    const tokens = this.conversation.inputTokens + this.deps.minOutputTokens;
    this.current = { id, reservedUsd: minimal, outputTokens: 0, audioTokens: 0 };
    const amounts = { usd: minimal, tokens };
    const deadline = Date.now() + this.deps.budgetWaitMs;
    const answer = (result: ReserveResult): boolean | Promise<boolean> => {
      if (result.ok) return true;
      // Only what calls in flight reserved is in the way (their worst cases): wait for them to settle, as a call would.
      if (reservedInTheWay(result) && Date.now() < deadline && !this.stopped) return pause(RESERVE_POLL_MS).then(() => this.deps.ledger.reserve(id, this.deps.lines, amounts)).then(answer);
      this.current = undefined;
      this.stop('budget', budgetError(result, minimal, this.spentUsd));
      return false;
    };
    const result = this.deps.ledger.reserve(id, this.deps.lines, amounts);
    return result instanceof Promise ? result.then(answer) : answer(result);
  }

  /** A response the server started without our response.create (server VAD): reserved now, or cancelled. */
  private onCreated(serverId: string | undefined): void {
    if (this.stopped) return;
    if (!this.current) {
      const reserved = this.reserve();
      if (reserved instanceof Promise) void reserved.catch((error: unknown) => this.deps.onLedgerError(error));
    }
    if (this.current && serverId) this.current.serverId = serverId;
  }

  /** Output streams in: past the session cap, the response is cut; past a budget, likewise (the reservation grows with it). */
  private onOutput(textTokens: number, audioTokens: number): void {
    const current = this.current;
    if (!current || this.stopped) return;
    current.outputTokens += textTokens;
    current.audioTokens += audioTokens;
    const runningUsd = this.runningUsd(current);
    if (this.spentUsd + runningUsd > this.deps.maxSessionUsd) return this.stop('session-cap', this.sessionCapError(runningUsd));
    // The reservation follows the output in steps (a Redis round trip per delta would be too many).
    if (runningUsd > current.reservedUsd * 1.25 + 1e-9) {
      const step = runningUsd * 1.25 - current.reservedUsd;
      current.reservedUsd += step;
      const answer = (result: ReserveResult) => {
        if (!result.ok && this.current === current) this.stop('budget', budgetError(result, runningUsd, this.spentUsd));
      };
      const result: MaybePromise<ReserveResult> = this.deps.ledger.extend(current.id, { usd: step, tokens: 0 });
      if (result instanceof Promise) result.then(answer, (error: unknown) => this.deps.onLedgerError(error));
      else answer(result);
    }
  }

  /** The response in progress as far as its deltas tell: its input (the conversation) and output so far. */
  private runningUsd(current: NonNullable<RealtimeSession['current']>): number {
    return priceRealtime(this.deps.price, this.conversation.nextResponse(current.outputTokens, current.audioTokens)).usd;
  }

  /** The server's usage: charged to the session and the budgets, exactly. */
  private onDone(usage: RealtimeUsageEvent | undefined): void {
    const current = this.current;
    this.current = undefined;
    const charge = usage ? priceRealtime(this.deps.price, usage) : current ? this.estimatedCharge(current) : undefined;
    if (charge) this.charge(current?.id ?? `realtime:${this.deps.id}:${++this.responseSeq}`, charge, current !== undefined);
    if (usage) this.conversation.answered(usage);
    if (this.stopped) this.closeSoon(0);
    else if (this.spentUsd >= this.deps.maxSessionUsd) this.stop('session-cap', this.sessionCapError(0));
  }

  private estimatedCharge(current: NonNullable<RealtimeSession['current']>): RealtimeCharge {
    return priceRealtime(this.deps.price, this.conversation.nextResponse(current.outputTokens, current.audioTokens), true);
  }

  private charge(id: string, charge: RealtimeCharge, reserved: boolean): void {
    this.spentUsd += charge.usd;
    const amounts = { usd: charge.usd, tokens: charge.usage.inputTokens + charge.usage.outputTokens };
    // A response nothing reserved (a done without a created) is still charged: soft lines always admit.
    const done = reserved ? this.deps.ledger.settle(id, amounts) : chain(this.deps.ledger.reserve(id, this.deps.lines.map((l) => ({ ...l, hard: false })), { usd: 0, tokens: 0 }), () => this.deps.ledger.settle(id, amounts));
    if (done instanceof Promise) done.catch((error: unknown) => this.deps.onLedgerError(error));
    this.deps.onCharge(charge);
  }

  private sessionCapError(estimatedUsd: number): BudgetExceededError {
    return new BudgetExceededError(
      `Realtime session ${this.deps.id} stopped: it has cost $${this.spentUsd.toFixed(4)}, and another $${estimatedUsd.toFixed(4)} would pass its cap of $${this.deps.maxSessionUsd} (realtime.maxSessionUsd).`,
      { stage: 'realtime', scope: 'realtime', key: `realtime:${this.deps.id}`, limitUsd: this.deps.maxSessionUsd, spentUsd: this.spentUsd, estimatedUsd, costUsd: this.spentUsd },
    );
  }

  /** Stops the session: no more sends, the response in progress cancelled, the socket closed once it reported. */
  private stop(reason: SessionEnd, error: GuardError | undefined): void {
    if (this.stopped) return;
    this.stopped = reason;
    clearTimeout(this.durationTimer);
    if (error) this.emitError(error);
    if (this.current) {
      this.send({ type: 'response.cancel' });
      // Its response.done (status cancelled, with usage) settles it; a server that never answers is closed on anyway.
      this.closeSoon(CANCEL_GRACE_MS);
    } else this.closeSoon(0);
  }

  private closeSoon(ms: number): void {
    clearTimeout(this.closeTimer);
    const close = () => {
      try {
        this.rt.close({ code: 1000, reason: `guarded-llm: ${this.stopped ?? 'closed'}` });
      } catch {
        // already closed
      }
    };
    if (ms === 0) return close();
    this.closeTimer = setTimeout(close, ms);
    this.closeTimer.unref();
  }

  private emitError(error: GuardError): void {
    const rt = this.rt as unknown as { _emit?: (event: string, e: unknown) => void; _hasListener?: (event: string) => boolean };
    if (typeof rt._emit === 'function' && rt._hasListener?.('error') !== false) rt._emit('error', error);
    else this.deps.onUnheard(error);
  }

  /** The socket is gone: a response that never reported is charged from what arrived of it. */
  private onClosed(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.durationTimer);
    clearTimeout(this.closeTimer);
    const current = this.current;
    this.current = undefined;
    if (current) {
      if (current.outputTokens + current.audioTokens > 0) this.charge(current.id, this.estimatedCharge(current), true);
      else void chain(this.deps.ledger.release(current.id), () => undefined);
    }
    this.deps.onEnd(this.stopped ?? (current ? 'dropped' : 'closed'), this.spentUsd, performance.now() - this.startedAt);
    for (const resolve of this.endWaiters.splice(0)) resolve();
  }
}

function budgetError(result: Extract<ReserveResult, { ok: false }>, estimatedUsd: number, sessionUsd: number): BudgetExceededError {
  const line = result.refusedBy;
  const tokens = line.unit === 'tokens';
  const scope = (line.key.split(':')[0] ?? 'global') as 'global';
  return new BudgetExceededError(
    `Realtime session stopped: ${tokens ? 'token quota' : 'budget'} ${line.key} has ${tokens ? `${result.state.spent} of ${line.limit} tokens` : `$${result.state.spent.toFixed(4)} of $${line.limit}`} spent (+ ${tokens ? result.state.reserved : `$${result.state.reserved.toFixed(4)}`} reserved); a response needs at least ${tokens ? `${result.amount} tokens` : `$${estimatedUsd.toFixed(4)}`}.`,
    {
      stage: 'realtime',
      scope,
      key: line.key,
      unit: tokens ? 'tokens' : 'usd',
      limitUsd: tokens ? NaN : line.limit,
      spentUsd: tokens ? NaN : result.state.spent,
      estimatedUsd,
      ...(tokens ? { limitTokens: line.limit, spentTokens: result.state.spent, estimatedTokens: result.amount } : {}),
      costUsd: sessionUsd,
    },
  );
}

/** Runs `then` after a value that may be a promise, keeping it synchronous when it is not. */
function chain<T, R>(value: MaybePromise<T>, then: (v: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(then) : then(value);
}

/** Calls `listener` when the SDK's socket closes (ws: 'close' event; a browser-style WebSocket: addEventListener). */
function onSocketClose(socket: unknown, listener: () => void): void {
  const s = socket as { on?: (e: string, f: () => void) => void; addEventListener?: (e: string, f: () => void) => void } | undefined;
  if (typeof s?.on === 'function') s.on('close', listener);
  else if (typeof s?.addEventListener === 'function') s.addEventListener('close', listener);
}
