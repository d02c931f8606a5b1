import { SharedStateUnavailableError } from '../errors';
import type { ResolvedConfig } from '../config/options';
import { MemoryLedger, RESERVED, amountFor, type Amounts, type BudgetLine, type BudgetState, type Ledger, type ReserveResult } from '../money/ledger';
import { RedisLedger } from '../money/redis-ledger';
import type { SharedStore } from './shared-store';

interface Held {
  where: 'redis' | 'local';
  lines: readonly BudgetLine[];
}

/** A charge Redis has not recorded yet. */
interface Pending {
  id: string;
  amounts: { usd: number; tokens: number };
  lines: readonly BudgetLine[];
  /** Calls it carries. */
  calls: number;
}

/** The budgets a charge lands on, as the settle script reads them. */
const linesKey = (lines: readonly BudgetLine[]) => lines.map((l) => `${l.key}\u0000${l.unit ?? 'usd'}\u0000${l.windowMs}\u0000${l.calendar ?? ''}`).join('\u0001');

/**
 * The ledger of a guard in Distributed mode: the Redis ledger while Redis answers; when it does
 * not, `redisFailure: 'local'` carries on in process (each budget starting from what was last
 * seen in Redis) and 'reject' refuses. Every charge Redis has not seen is replayed when it is
 * back; a replay or a resent settle is recorded once (settled markers), so a call is never
 * charged twice across a reconnect, and never lost.
 */
export class SharedLedger implements Ledger {
  readonly redis: RedisLedger;
  private local = new MemoryLedger();
  private readonly held = new Map<string, Held>();
  /**
   * Charges Redis has not recorded yet, replayed in order when it is back. A settle that failed on
   * its way to Redis stays a charge of its own (Redis may have recorded it: its id dedupes the
   * replay); the charges made in process during an outage add up into one per set of budgets,
   * so a long outage replays in a few commands, not one per call.
   */
  private readonly pending: Pending[] = [];
  /** Per set of budgets, the charge that later ones add to: never sent yet, so nothing of it can be in Redis. */
  private readonly openByLines = new Map<string, Pending>();
  private outageCharges = 0;
  /** Keys the local ledger was started for (from their last state in Redis) in this outage. */
  private seeded = new Set<string>();
  private flushing: Promise<void> | undefined;
  private readonly offUp: () => void;

  constructor(
    private readonly store: SharedStore,
    /** redisFailure: carry on in process, or refuse, while Redis is unreachable. */
    private failure: 'local' | 'reject',
  ) {
    this.redis = new RedisLedger(store.client, store.prefix);
    this.offUp = store.onUp(() => void this.flush());
  }

  reconfigure(next: ResolvedConfig): void {
    this.failure = next.redisFailure;
  }

  /** Calls whose charges are not yet in Redis (for status and tests). */
  get unsynced(): number {
    let calls = 0;
    for (const charge of this.pending) calls += charge.calls;
    return calls;
  }

  async reserve(id: string, lines: readonly BudgetLine[], amounts: Amounts): Promise<ReserveResult> {
    // A call made while the first connection is still coming up waits for it: start is not an outage.
    if (await this.store.ready()) {
      try {
        const result = await this.redis.reserve(id, lines, amounts);
        if (result.ok) this.held.set(id, { where: 'redis', lines });
        return result;
      } catch (error) {
        this.store.commandFailed(error);
      }
    }
    if (this.failure === 'reject') throw new SharedStateUnavailableError('the budgets');
    this.seed(lines);
    const result = this.local.reserve(id, lines, amounts);
    if (result.ok) this.held.set(id, { where: 'local', lines });
    return result;
  }

  async extend(id: string, amounts: Amounts): Promise<ReserveResult> {
    const held = this.held.get(id);
    if (!held) return RESERVED;
    if (held.where === 'local') return this.local.extend(id, amounts);
    try {
      return await this.redis.extend(id, amounts);
    } catch (error) {
      // Redis went away mid-stream: the stream goes on; its charge is kept and replayed.
      this.store.commandFailed(error);
      return RESERVED;
    }
  }

  async settle(id: string, amounts: Amounts): Promise<BudgetState[]> {
    const held = this.held.get(id);
    if (!held) return [];
    this.held.delete(id);
    let sent = false;
    if (held.where === 'redis') {
      try {
        return await this.redis.settle(id, amounts, held.lines);
      } catch (error) {
        this.store.commandFailed(error);
        this.redis.forget(id);
        this.chargeLocally(held.lines, amounts);
        sent = true;
      }
    } else {
      this.local.settle(id, amounts);
    }
    if (held.lines.some((l) => amountFor(l, amounts) > 0)) this.keep(id, amounts, held.lines, sent);
    if (this.store.healthy) void this.flush();
    return this.local.states(held.lines.map((l) => l.key));
  }

  async release(id: string): Promise<void> {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    if (held.where === 'local') return this.local.release(id);
    try {
      await this.redis.release(id);
    } catch (error) {
      // Its hold in Redis expires with the reservation TTL.
      this.store.commandFailed(error);
      this.redis.forget(id);
    }
  }

  async refund(lines: readonly BudgetLine[], amounts: Amounts, chargedAt: number): Promise<void> {
    // Given back where it is now counted; lost (never over-given) when Redis is unreachable.
    if (!this.store.healthy) return this.local.refund(lines, amounts, chargedAt);
    try {
      await this.redis.refund(lines, amounts, chargedAt);
    } catch (error) {
      this.store.commandFailed(error);
    }
  }

  states(keys?: string[], limit?: number): BudgetState[] {
    return this.store.healthy ? this.redis.states(keys, limit) : this.local.states(keys, limit);
  }

  /** Starts a budget key in the local ledger at what Redis last said was spent and reserved. */
  private seed(lines: readonly BudgetLine[]): void {
    for (const line of lines) {
      if (this.seeded.has(line.key)) continue;
      this.seeded.add(line.key);
      const known = this.redis.lastKnown.get(line.key);
      // One line: the same amount whatever its unit.
      if (known) this.chargeLocally([line], { usd: known.spent + known.reserved, tokens: known.spent + known.reserved });
    }
  }

  private chargeLocally(lines: readonly BudgetLine[], amounts: Amounts): void {
    if (!lines.some((l) => amountFor(l, amounts) > 0)) return;
    const id = `seed:${Math.random()}`;
    this.local.reserve(id, lines.map((l) => ({ ...l, hard: false })), 0);
    this.local.settle(id, amounts);
  }

  /** Keeps a charge for the replay: on its own when it may have reached Redis, else added to the open one on the same budgets. */
  private keep(id: string, amounts: Amounts, lines: readonly BudgetLine[], sent: boolean): void {
    const both = typeof amounts === 'number' ? { usd: amounts, tokens: amounts } : { usd: amounts.usd, tokens: amounts.tokens };
    if (sent) {
      this.pending.push({ id, amounts: both, lines, calls: 1 });
      return;
    }
    const key = linesKey(lines);
    const open = this.openByLines.get(key);
    if (open) {
      open.amounts.usd += both.usd;
      open.amounts.tokens += both.tokens;
      open.calls++;
      return;
    }
    // Ends in a number: its settled marker is a bit (see RedisLedger).
    const charge: Pending = { id: `outage:${++this.outageCharges}`, amounts: both, lines, calls: 1 };
    this.openByLines.set(key, charge);
    this.pending.push(charge);
  }

  /** Replays what Redis missed; once all is in, the outage's local books are dropped. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      while (this.pending.length && this.store.healthy) {
        const charge = this.pending[0]!;
        // Sent from now on: what comes later goes to a charge of its own.
        const key = linesKey(charge.lines);
        if (this.openByLines.get(key) === charge) this.openByLines.delete(key);
        try {
          await this.redis.settle(charge.id, charge.amounts, charge.lines);
          this.pending.shift();
        } catch (error) {
          this.store.commandFailed(error);
          return;
        }
      }
      if (!this.pending.length && this.store.healthy) {
        const stillLocal = [...this.held.values()].some((h) => h.where === 'local');
        if (!stillLocal) {
          this.local = new MemoryLedger();
          this.seeded = new Set();
        }
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  close(): void {
    this.offUp();
    this.redis.close();
  }
}
