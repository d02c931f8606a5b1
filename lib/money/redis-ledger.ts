import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RESERVED, amountFor, type Amounts, type BudgetLine, type BudgetState, type Ledger, type ReserveResult } from './ledger';
import { calendarPeriod } from './calendar';
import { REFUND, RELEASE, RESERVE, SETTLE, STATES, TOUCH } from './redis-scripts';
import { redisScript as script, runScript } from '../internal/redis-script';

/** A crashed process's reservations expire this long after it last renewed them. */
export const RESERVATION_TTL_MS = 60_000;
/** How long a settled call is remembered, so that a resent settle never charges twice. */
const SETTLED_MARKER_TTL_MS = 6 * 3_600_000;
/**
 * Settled calls whose ids end in a number (the guard's `c<n>`) are remembered as one bit each, in
 * bitmaps of this many ids (8 KiB): a key per settled call held ~150 B of Redis for 6 h, which
 * at 100 calls/s is ~310 MB (npm run bench -- distributed).
 */
const MARKER_SHARD_IDS = 65_536;
/** An id as its head and number: `c41` → `c`, 41 (no leading zero, so each number has one spelling). */
const NUMBERED_ID = /^(.*\D)?(0|[1-9]\d{0,14})$/;

/** A line's window as the scripts read it (a calendar one as its period at `at`: see redis-scripts.ts). */
function windowArg(line: Pick<BudgetLine, 'windowMs' | 'calendar'>, at = Date.now()): string {
  if (line.calendar) {
    const period = calendarPeriod(line.calendar, at);
    return `c:${period.start}:${period.end}`;
  }
  return line.windowMs === Infinity ? '0' : String(Math.round(line.windowMs));
}
const amountArg = (n: number) => String(n);

const SCRIPTS = { reserve: script(RESERVE), settle: script(SETTLE), release: script(RELEASE), touch: script(TOUCH), states: script(STATES), refund: script(REFUND) };

/**
 * The ledger shared by every process of one guard name: reserve, extend, settle and release run
 * as Lua scripts, atomic across all the budgets a call is charged to, so settled + reserved never
 * passes a hard limit however many processes reserve at once. Reservations carry a TTL that this
 * process renews while the call lives; a crashed process's holds expire on their own.
 */
export class RedisLedger implements Ledger {
  /** Reservations this process holds: the budgets they are on (settle and release need them). */
  private readonly held = new Map<string, readonly BudgetLine[]>();
  private readonly instance = randomUUID().slice(0, 12);
  private renewTimer: ReturnType<typeof setInterval> | undefined;
  /** The last state seen per budget key (for status() and for a fallback to start from). */
  readonly lastKnown = new Map<string, BudgetState & { line: BudgetLine }>();

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly ttlMs = RESERVATION_TTL_MS,
  ) {}

  private budgetKey(key: string): string {
    return `${this.prefix}budget:${key}`;
  }

  /** Reservation ids are unique across processes: this process's id, then the call's. */
  private rid(id: string): string {
    return `${this.instance}:${id}`;
  }

  /**
   * Where a settle marks its call as settled: a bit in this process's bitmap for the id's head
   * (ids ending in a number), else a key of its own (bit -1). Two namespaces, so no two ids share a mark.
   */
  private settledMarker(id: string): { key: string; bit: number } {
    const numbered = NUMBERED_ID.exec(id);
    if (!numbered) return { key: `${this.prefix}settled:${this.rid(id)}`, bit: -1 };
    const n = Number(numbered[2]);
    return { key: `${this.prefix}settled-bits:${this.instance}:${numbered[1] ?? ''}#${Math.floor(n / MARKER_SHARD_IDS)}`, bit: n % MARKER_SHARD_IDS };
  }

  private parseStates(lines: readonly BudgetLine[], flat: unknown[], offset: number): BudgetState[] {
    const states: BudgetState[] = [];
    for (let i = 0; offset + i * 3 + 2 < flat.length && i < lines.length; i++) {
      const release = Number(flat[offset + i * 3 + 2]);
      const state: BudgetState = {
        key: lines[i]!.key,
        spent: Math.max(0, Number(flat[offset + i * 3])),
        reserved: Math.max(0, Number(flat[offset + i * 3 + 1])),
        nextReleaseAt: release > 0 ? release : undefined,
      };
      states.push(state);
      this.remember(state, lines[i]!);
    }
    return states;
  }

  private remember(state: BudgetState, line: BudgetLine): void {
    if (this.lastKnown.size > 10_000 && !this.lastKnown.has(state.key)) this.lastKnown.clear();
    this.lastKnown.set(state.key, { ...state, line });
  }

  private async admit(id: string, lines: readonly BudgetLine[], amounts: Amounts, extend: boolean): Promise<ReserveResult> {
    const args = [this.rid(id), String(this.ttlMs), extend ? '1' : '0'];
    for (const line of lines) args.push(String(line.limit), windowArg(line), line.hard ? '1' : '0', amountArg(amountFor(line, amounts)));
    const reply = (await runScript(this.client, SCRIPTS.reserve, lines.map((l) => this.budgetKey(l.key)), args)) as unknown[];
    if (Number(reply[0]) === 1) {
      this.parseStates(lines, reply, 1); // what status() shows of these keys
      return RESERVED;
    }
    const index = Number(reply[1]) - 1;
    const states = this.parseStates(lines, reply, 2);
    return { ok: false, refusedBy: lines[index]!, state: states[index]!, states, amount: amountFor(lines[index]!, amounts) };
  }

  async reserve(id: string, lines: readonly BudgetLine[], amounts: Amounts): Promise<ReserveResult> {
    const result = await this.admit(id, lines, amounts, false);
    if (result.ok) {
      this.held.set(id, lines);
      this.startRenewing();
    }
    return result;
  }

  async extend(id: string, amounts: Amounts): Promise<ReserveResult> {
    const lines = this.held.get(id);
    if (!lines) return RESERVED;
    return this.admit(id, lines, amounts, true);
  }

  /** Settles a reservation of this process; with `lines`, charges a call reserved elsewhere (a replay). */
  async settle(id: string, amounts: Amounts, lines = this.held.get(id)): Promise<BudgetState[]> {
    if (!lines) return [];
    const marker = this.settledMarker(id);
    const keys = [...lines.map((l) => this.budgetKey(l.key)), marker.key];
    const args = [this.rid(id), String(SETTLED_MARKER_TTL_MS), String(marker.bit)];
    for (const line of lines) args.push(windowArg(line), amountArg(amountFor(line, amounts)));
    const reply = (await runScript(this.client, SCRIPTS.settle, keys, args)) as unknown[];
    this.forget(id);
    return this.parseStates(lines, reply, 0);
  }

  async release(id: string): Promise<void> {
    const lines = this.held.get(id);
    if (!lines) return;
    await runScript(this.client, SCRIPTS.release, lines.map((l) => this.budgetKey(l.key)), [this.rid(id)]);
    this.forget(id);
  }

  async refund(lines: readonly BudgetLine[], amounts: Amounts, chargedAt: number): Promise<void> {
    if (!lines.length) return;
    const args = [String(chargedAt)];
    for (const line of lines) args.push(windowArg(line, chargedAt), amountArg(amountFor(line, amounts)));
    await runScript(this.client, SCRIPTS.refund, lines.map((l) => this.budgetKey(l.key)), args);
  }

  /** Drops a reservation from this process's books only (Redis lets it expire). */
  forget(id: string): void {
    this.held.delete(id);
    if (this.held.size === 0 && this.renewTimer) {
      clearInterval(this.renewTimer);
      this.renewTimer = undefined;
    }
  }

  /** States of the given keys read from Redis (windows as in `lines`). */
  async read(lines: readonly BudgetLine[]): Promise<BudgetState[]> {
    if (!lines.length) return [];
    const reply = (await runScript(this.client, SCRIPTS.states, lines.map((l) => this.budgetKey(l.key)), lines.map((l) => windowArg(l)))) as unknown[];
    return this.parseStates(lines, reply, 0);
  }

  /** What this process last saw of each budget key (most spent first): status() cannot wait on Redis. */
  states(keys?: string[], limit = 100): BudgetState[] {
    const all = keys ? keys.map((k) => this.lastKnown.get(k)).filter((s) => s !== undefined) : [...this.lastKnown.values()];
    return all
      .map(({ line, ...state }) => ({ ...state, limit: line.limit }))
      .sort((a, b) => b.spent + b.reserved - (a.spent + a.reserved))
      .slice(0, limit);
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Renews this process's live reservations a few times per TTL, while there are any. */
  private startRenewing(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => {
      for (const [id, lines] of this.held) {
        runScript(this.client, SCRIPTS.touch, lines.map((l) => this.budgetKey(l.key)), [this.rid(id), String(this.ttlMs)]).catch(() => {});
      }
    }, Math.max(1000, Math.floor(this.ttlMs / 3)));
    this.renewTimer.unref();
  }

  close(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
  }
}
