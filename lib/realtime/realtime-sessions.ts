/**
 * The Realtime sessions of one guard: `guard.realtime(rt)` opens one within the scope current at
 * the call (its budgets apply), counted against `realtime.maxSessions`; each is a RealtimeSession.
 */
import { randomUUID } from 'node:crypto';
import type { ResolvedConfig } from '../config/options';
import { RateLimitExceededError, UnpricedModelError, type GuardError } from '../errors';
import type { GuardEmitter } from '../events';
import type { Logger } from '../logger';
import { budgetLines, tierOf } from '../money/budget-lines';
import type { Ledger } from '../money/ledger';
import type { GuardScope } from '../scope-kinds';
import type { Usage } from '../providers/adapter';
import { realtimePriceSource, type RealtimeCharge } from './realtime-price';
import { RealtimeSession, type RealtimeClientLike, type SessionEnd } from './realtime-session';

export type { RealtimeClientLike } from './realtime-session';

export interface RealtimeSessionsDeps {
  config: () => ResolvedConfig;
  ledger: Ledger;
  emitter: GuardEmitter;
  logger: () => Logger;
  /** A new call id (sessions' responses are numbered with the guard's calls). */
  nextCallId: () => number;
  /** Adds a charge to the guard's totals. */
  /** Adds a response's charge to the guard's totals and tallies. */
  addCost: (usd: number, model: string | undefined, usage: Usage) => void;
}

/** Per-session caps for one guard.realtime() call (the config's `realtime` otherwise). */
export interface RealtimeSessionOptions {
  maxSessionUsd?: number;
  maxDurationMs?: number;
}

export class RealtimeSessions {
  private readonly open = new Map<string, RealtimeSession>();

  constructor(private readonly deps: RealtimeSessionsDeps) {}

  get count(): number {
    return this.open.size;
  }

  /** Guards `rt` (the same object, its send() wrapped) for a session opened in `scope`. */
  guard<T extends RealtimeClientLike>(rt: T, scope: Readonly<GuardScope>, options: RealtimeSessionOptions = {}): T {
    const config = this.deps.config();
    if (!rt || typeof rt.send !== 'function' || typeof rt.on !== 'function' || typeof rt.close !== 'function') {
      throw new TypeError(`guard.realtime() takes the openai SDK's realtime client (OpenAIRealtimeWS or OpenAIRealtimeWebSocket), got ${rt === null ? 'null' : typeof rt}`);
    }
    if ((rt as { [GUARDED]?: true })[GUARDED]) throw new TypeError('guard.realtime(): this realtime client is already guarded');
    const { maxSessions } = config.realtime;
    if (this.open.size >= maxSessions) {
      throw new RateLimitExceededError(`Refused: ${this.open.size} Realtime sessions are open, realtime.maxSessions = ${maxSessions}; the session was left as it was.`, {
        reason: 'max_sessions',
        limit: 'realtime.maxSessions',
      });
    }
    const maxSessionUsd = positive(options.maxSessionUsd, 'maxSessionUsd') ?? config.realtime.maxSessionUsd;
    const maxDurationMs = positive(options.maxDurationMs, 'maxDurationMs') ?? config.realtime.maxDurationMs;
    const model = modelOf(rt);
    const price = realtimePriceSource(model, config.cost.prices, config.cost.unpricedModel);
    if (price.kind === 'unpriced') {
      if (config.cost.unpricedModel === 'reject') throw new UnpricedModelError(model ?? '(none)', 'openai');
      this.deps.logger().warn({ model }, 'Realtime model is not priced: its sessions are counted at $0 (cost.unpricedModel = "allow")');
    }
    const id = randomUUID();
    const startedAt = Date.now();
    const session = new RealtimeSession(rt, {
      id,
      model,
      price,
      lines: budgetLines(config, scope, tierOf(config, scope)),
      ledger: this.deps.ledger,
      maxSessionUsd,
      maxDurationMs,
      minOutputTokens: config.cost.minOutputTokens,
      budgetWaitMs: config.cost.budgetWaitMs,
      onCharge: (charge) => this.charged(charge, model, scope),
      onEnd: (reason, costUsd, durationMs) => this.ended(id, model, scope, reason, costUsd, durationMs),
      onUnheard: (error: GuardError) => this.deps.logger().warn({ sessionId: id, code: error.code, error: error.message }, 'Realtime session stopped; the client has no error listener'),
      onLedgerError: (error) => this.deps.logger().error({ sessionId: id, error: error instanceof Error ? error.message : String(error) }, 'Realtime session: the budget ledger failed'),
    });
    Object.defineProperty(rt, GUARDED, { value: true });
    this.open.set(id, session);
    if (this.deps.emitter.has('realtime:open')) this.deps.emitter.emit('realtime:open', { sessionId: id, model, scope, startedAt });
    return rt;
  }

  private charged(charge: RealtimeCharge, model: string | undefined, scope: Readonly<GuardScope>): void {
    this.deps.addCost(charge.usd, model, charge.usage);
    if (this.deps.emitter.has('cost')) {
      this.deps.emitter.emit('cost', { callId: this.deps.nextCallId(), provider: 'openai', model, endpoint: 'realtime', scope, usd: charge.usd, usage: charge.usage, estimated: charge.usage.estimated === true });
    }
  }

  private ended(id: string, model: string | undefined, scope: Readonly<GuardScope>, reason: SessionEnd, costUsd: number, durationMs: number): void {
    this.open.delete(id);
    if (this.deps.emitter.has('realtime:close')) this.deps.emitter.emit('realtime:close', { sessionId: id, model, scope, reason, costUsd, durationMs });
  }

  /**
   * guard.close(): every open session is stopped (an unguarded session could pass its caps) and
   * settled; waits for their sockets to close, at most SHUTDOWN_WAIT_MS.
   */
  async close(): Promise<void> {
    if (this.open.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all([...this.open.values()].map((session) => session.shutdown())), bound]);
    clearTimeout(timer);
  }
}

const GUARDED = Symbol.for('guarded-llm.realtime');
/** A cancelled response gets 1 s to report its usage before its socket is closed anyway; then a little for the close. */
const SHUTDOWN_WAIT_MS = 2000;

function modelOf(rt: RealtimeClientLike): string | undefined {
  try {
    const url = typeof rt.url === 'string' ? new URL(rt.url) : rt.url;
    return url?.searchParams.get('model') ?? undefined;
  } catch {
    return undefined;
  }
}

function positive(value: number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new TypeError(`guard.realtime(): ${name} must be a positive number, got ${String(value)}`);
  return value;
}
