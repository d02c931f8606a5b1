/**
 * The budget ledger: what was spent and what is reserved, per budget key, over sliding or
 * calendar windows, in US dollars (budgets) or tokens (quotas). Reservations are atomic across
 * every line a call is charged to, so that settled + reserved never passes a hard limit,
 * whatever the concurrency. Pluggable: the in-memory ledger here, a Redis one for several processes.
 */
import { calendarPeriod, type CalendarKind } from './calendar';

export type MaybePromise<T> = T | Promise<T>;

/** What a line counts: dollars (a budget) or tokens (a quota). */
export type Unit = 'usd' | 'tokens';

/** One budget or quota a call is charged to. */
export interface BudgetLine {
  /** e.g. 'global', 'user:alice'; a quota's key differs from a budget's (see budgetLines). */
  key: string;
  /** Default 'usd'. */
  unit?: Unit;
  /** In the line's unit. */
  limit: number;
  /** A sliding window's length (Infinity: never resets); for a calendar window, its nominal length. */
  windowMs: number;
  /** Set for a calendar window: everything resets at each UTC boundary. */
  calendar?: CalendarKind;
  hard: boolean;
  /** The fraction of the limit at which spending warns (`budget:warning`), when the rule sets one. */
  warnAt?: number;
}

export interface BudgetState {
  key: string;
  /** In the line's unit. */
  spent: number;
  reserved: number;
  /** When the oldest charge still counted leaves the window, or the period ends (undefined: nothing to release). */
  nextReleaseAt: number | undefined;
  /** The limit it was last charged against (a tier's may differ from the top-level rule's). */
  limit?: number;
}

/** What a call weighs on each kind of line; a number is dollars (every line a budget). */
export type Amounts = number | { usd: number; tokens: number };

/** The amount `amounts` puts on `line`. */
export function amountFor(line: BudgetLine, amounts: Amounts): number {
  return typeof amounts === 'number' ? amounts : amounts[line.unit ?? 'usd'];
}

export type ReserveResult =
  | { ok: true }
  /** `states`: every line up to the one that refused (`state`), as they stood. */
  | { ok: false; refusedBy: BudgetLine; state: BudgetState; states: BudgetState[]; amount: number };

/** The answer of every reservation that fit: one object, nothing per call (most calls fit). */
export const RESERVED: ReserveResult = Object.freeze({ ok: true });

export interface Ledger {
  /** Reserves `amounts` on every line, or on none if a hard line has no room for its share. */
  reserve(id: string, lines: readonly BudgetLine[], amounts: Amounts): MaybePromise<ReserveResult>;
  /** Raises a reservation by `amounts` (a stream that costs more than estimated), on the same terms. */
  extend(id: string, amounts: Amounts): MaybePromise<ReserveResult>;
  /** Replaces the reservation with the actual charge, counted from now. */
  settle(id: string, amounts: Amounts): MaybePromise<BudgetState[]>;
  /** Drops the reservation: nothing was spent. */
  release(id: string): MaybePromise<void>;
  /**
   * Gives back part of an earlier charge made at `chargedAt` (a batch charged at its worst case,
   * trued up when its results are read). Nothing is given back once that charge left its window.
   */
  refund(lines: readonly BudgetLine[], amounts: Amounts, chargedAt: number): MaybePromise<void>;
  /** The state of budget keys (all live ones when `keys` is omitted, most spent first, up to `limit`). */
  states(keys?: string[], limit?: number): MaybePromise<BudgetState[]>;
  close?(): MaybePromise<void>;
}

/** Charges are kept in 60 slices of a sliding window: a charge leaves at most 1/60 of it late, never early. */
const SLICES = 60;
const SWEEP_EVERY = 1024;

interface KeyState {
  limit: number;
  windowMs: number;
  calendar: CalendarKind | undefined;
  /** [slice start (a calendar window: its period start), amount] pairs, oldest first. */
  charges: Array<[number, number]>;
  spent: number;
  reserved: number;
}

/** Where a charge made at `at` is kept: its slice (sliding) or its period (calendar). */
function sliceOf(state: Pick<KeyState, 'windowMs' | 'calendar'>, at: number): number {
  if (state.calendar) return calendarPeriod(state.calendar, at).start;
  if (state.windowMs === Infinity) return 0;
  const slice = state.windowMs / SLICES;
  return Math.floor(at / slice) * slice;
}

/** The in-process ledger. Keys with nothing spent in their window and nothing reserved are dropped. */
export class MemoryLedger implements Ledger {
  private readonly keys = new Map<string, KeyState>();
  private readonly reservations = new Map<string, { amounts: Amounts; lines: readonly BudgetLine[] }>();
  private ops = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private key(line: BudgetLine): KeyState {
    let state = this.keys.get(line.key);
    if (!state) {
      state = { limit: line.limit, windowMs: line.windowMs, calendar: line.calendar, charges: [], spent: 0, reserved: 0 };
      this.keys.set(line.key, state);
    }
    state.limit = line.limit;
    return state;
  }

  /** Forgets charges that left the window (or belong to an earlier period). */
  private expire(state: KeyState, now: number): void {
    if (state.calendar) {
      const start = calendarPeriod(state.calendar, now).start;
      while (state.charges.length && state.charges[0]![0] < start) state.spent -= state.charges.shift()![1];
    } else if (state.windowMs !== Infinity) {
      const slice = state.windowMs / SLICES;
      while (state.charges.length && state.charges[0]![0] + slice + state.windowMs <= now) state.spent -= state.charges.shift()![1];
    }
    if (state.charges.length === 0) state.spent = 0; // no float dust
  }

  private view(key: string, state: KeyState, now: number): BudgetState {
    const first = state.charges[0];
    let nextReleaseAt: number | undefined;
    if (first && state.calendar) nextReleaseAt = calendarPeriod(state.calendar, now).end;
    else if (first && state.windowMs !== Infinity) nextReleaseAt = first[0] + state.windowMs / SLICES + state.windowMs;
    return { key, spent: Math.max(0, state.spent), reserved: Math.max(0, state.reserved), nextReleaseAt, limit: state.limit };
  }

  /**
   * Whether `amounts` fits on every line (old charges expired first); the states are built only
   * for a refusal: a call that fits allocates nothing here.
   */
  private admit(lines: readonly BudgetLine[], amounts: Amounts): ReserveResult {
    const now = this.now();
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const state = this.key(line);
      this.expire(state, now);
      const amount = amountFor(line, amounts);
      // A hair of tolerance: float sums of many small charges must not refuse an exact fit.
      if (line.hard && Math.max(0, state.spent) + Math.max(0, state.reserved) + amount > line.limit * (1 + 1e-12)) {
        const states = lines.slice(0, i + 1).map((l) => this.view(l.key, this.key(l), now));
        return { ok: false, refusedBy: line, state: states[i]!, states, amount };
      }
    }
    return RESERVED;
  }

  reserve(id: string, lines: readonly BudgetLine[], amounts: Amounts): ReserveResult {
    this.maybeSweep();
    const result = this.admit(lines, amounts);
    if (!result.ok) return result;
    this.hold(lines, amounts);
    this.reservations.set(id, { amounts, lines });
    return result;
  }

  /** Adds `amounts` to what `lines` hold reserved. */
  private hold(lines: readonly BudgetLine[], amounts: Amounts): void {
    for (const line of lines) this.key(line).reserved += amountFor(line, amounts);
  }

  extend(id: string, amounts: Amounts): ReserveResult {
    const r = this.reservations.get(id);
    if (!r) return RESERVED;
    const result = this.admit(r.lines, amounts);
    if (!result.ok) return result;
    this.hold(r.lines, amounts);
    r.amounts = add(r.amounts, amounts);
    return result;
  }

  settle(id: string, amounts: Amounts): BudgetState[] {
    const r = this.reservations.get(id);
    if (!r) return [];
    this.reservations.delete(id);
    const now = this.now();
    const out: BudgetState[] = [];
    for (const line of r.lines) {
      const state = this.key(line);
      state.reserved -= amountFor(line, r.amounts);
      const amount = amountFor(line, amounts);
      if (amount > 0) {
        const sliceStart = sliceOf(state, now);
        const last = state.charges[state.charges.length - 1];
        if (last && last[0] === sliceStart) last[1] += amount;
        else state.charges.push([sliceStart, amount]);
        state.spent += amount;
      }
      this.expire(state, now);
      out.push(this.view(line.key, state, now));
    }
    return out;
  }

  refund(lines: readonly BudgetLine[], amounts: Amounts, chargedAt: number): void {
    for (const line of lines) {
      const state = this.keys.get(line.key);
      const amount = amountFor(line, amounts);
      if (!state || amount <= 0) continue;
      const entry = state.charges.find((c) => c[0] === sliceOf(state, chargedAt));
      if (!entry) continue;
      const back = Math.min(entry[1], amount);
      entry[1] -= back;
      state.spent -= back;
    }
  }

  release(id: string): void {
    const r = this.reservations.get(id);
    if (!r) return;
    this.reservations.delete(id);
    for (const line of r.lines) this.key(line).reserved -= amountFor(line, r.amounts);
  }

  states(keys?: string[], limit = 100): BudgetState[] {
    const now = this.now();
    const out: BudgetState[] = [];
    for (const [key, state] of keys ? keys.map((k) => [k, this.keys.get(k)] as const) : this.keys) {
      if (!state) continue;
      this.expire(state, now);
      out.push(this.view(key, state, now));
    }
    return keys ? out : out.sort((a, b) => b.spent + b.reserved - (a.spent + a.reserved)).slice(0, limit);
  }

  /** How many budget keys are held (for memory checks). */
  get size(): number {
    return this.keys.size;
  }

  private maybeSweep(): void {
    if (++this.ops % SWEEP_EVERY !== 0) return;
    const now = this.now();
    for (const [key, state] of this.keys) {
      this.expire(state, now);
      if (state.charges.length === 0 && state.reserved <= 1e-12) this.keys.delete(key);
    }
  }
}

function add(a: Amounts, b: Amounts): Amounts {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  const x = typeof a === 'number' ? { usd: a, tokens: 0 } : a;
  const y = typeof b === 'number' ? { usd: b, tokens: 0 } : b;
  return { usd: x.usd + y.usd, tokens: x.tokens + y.tokens };
}
