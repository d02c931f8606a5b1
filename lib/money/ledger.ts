/**
 * The budget ledger: what was spent and what is reserved, per budget key, over sliding windows.
 * Reservations are atomic across every budget a call is charged to, so that settled + reserved
 * never passes a hard limit, whatever the concurrency. Pluggable: the in-memory ledger here, a
 * Redis one for several processes.
 */

export type MaybePromise<T> = T | Promise<T>;

/** One budget a call is charged to. */
export interface BudgetLine {
  /** e.g. 'global', 'user:alice'. */
  key: string;
  limitUsd: number;
  windowMs: number;
  hard: boolean;
}

export interface BudgetState {
  key: string;
  spentUsd: number;
  reservedUsd: number;
  /** When the oldest charge still counted leaves the window (undefined: nothing to release). */
  nextReleaseAt: number | undefined;
}

export type ReserveResult =
  | { ok: true; states: BudgetState[] }
  | { ok: false; refusedBy: BudgetLine; state: BudgetState; states: BudgetState[] };

export interface Ledger {
  /** Reserves `usd` on every line, or on none if a hard line has no room for it. */
  reserve(id: string, lines: BudgetLine[], usd: number): MaybePromise<ReserveResult>;
  /** Raises a reservation by `usd` (a stream that costs more than estimated), on the same terms. */
  extend(id: string, usd: number): MaybePromise<ReserveResult>;
  /** Replaces the reservation with the actual charge, counted from now. */
  settle(id: string, usd: number): MaybePromise<BudgetState[]>;
  /** Drops the reservation: nothing was spent. */
  release(id: string): MaybePromise<void>;
  /**
   * Gives back part of an earlier charge made at `chargedAt` (a batch charged at its worst case,
   * trued up when its results are read). Nothing is given back once that charge left its window.
   */
  refund(lines: BudgetLine[], usd: number, chargedAt: number): MaybePromise<void>;
  /** The state of budget keys (all live ones when `keys` is omitted, most spent first, up to `limit`). */
  states(keys?: string[], limit?: number): MaybePromise<BudgetState[]>;
  close?(): MaybePromise<void>;
}

/** Charges are kept in 60 slices of the window: a charge leaves at most 1/60 of it late, never early. */
const SLICES = 60;
const SWEEP_EVERY = 1024;

interface KeyState {
  windowMs: number;
  /** [slice start, usd] pairs, oldest first. */
  charges: Array<[number, number]>;
  spent: number;
  reserved: number;
}

/** The in-process ledger. Keys with nothing spent in their window and nothing reserved are dropped. */
export class MemoryLedger implements Ledger {
  private readonly keys = new Map<string, KeyState>();
  private readonly reservations = new Map<string, { usd: number; lines: BudgetLine[] }>();
  private ops = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private key(line: BudgetLine): KeyState {
    let state = this.keys.get(line.key);
    if (!state) {
      state = { windowMs: line.windowMs, charges: [], spent: 0, reserved: 0 };
      this.keys.set(line.key, state);
    }
    return state;
  }

  /** Forgets charges that left the window. */
  private expire(state: KeyState, now: number): void {
    if (state.windowMs === Infinity) return;
    const slice = state.windowMs / SLICES;
    while (state.charges.length && state.charges[0]![0] + slice + state.windowMs <= now) {
      state.spent -= state.charges.shift()![1];
    }
    if (state.charges.length === 0) state.spent = 0; // no float dust
  }

  private view(key: string, state: KeyState): BudgetState {
    const first = state.charges[0];
    return {
      key,
      spentUsd: Math.max(0, state.spent),
      reservedUsd: Math.max(0, state.reserved),
      nextReleaseAt: first && state.windowMs !== Infinity ? first[0] + state.windowMs / SLICES + state.windowMs : undefined,
    };
  }

  private admit(lines: BudgetLine[], usd: number): ReserveResult {
    const now = this.now();
    const states: BudgetState[] = [];
    for (const line of lines) {
      const state = this.key(line);
      this.expire(state, now);
      const view = this.view(line.key, state);
      states.push(view);
      // A hair of tolerance: float sums of many small charges must not refuse an exact fit.
      if (line.hard && view.spentUsd + view.reservedUsd + usd > line.limitUsd * (1 + 1e-12)) {
        return { ok: false, refusedBy: line, state: view, states };
      }
    }
    return { ok: true, states };
  }

  reserve(id: string, lines: BudgetLine[], usd: number): ReserveResult {
    this.maybeSweep();
    const result = this.admit(lines, usd);
    if (!result.ok) return result;
    for (const line of lines) this.key(line).reserved += usd;
    this.reservations.set(id, { usd, lines });
    return { ok: true, states: lines.map((l) => this.view(l.key, this.key(l))) };
  }

  extend(id: string, usd: number): ReserveResult {
    const r = this.reservations.get(id);
    if (!r) return { ok: true, states: [] };
    const result = this.admit(r.lines, usd);
    if (!result.ok) return result;
    for (const line of r.lines) this.key(line).reserved += usd;
    r.usd += usd;
    return { ok: true, states: r.lines.map((l) => this.view(l.key, this.key(l))) };
  }

  settle(id: string, usd: number): BudgetState[] {
    const r = this.reservations.get(id);
    if (!r) return [];
    this.reservations.delete(id);
    const now = this.now();
    const out: BudgetState[] = [];
    for (const line of r.lines) {
      const state = this.key(line);
      state.reserved -= r.usd;
      if (usd > 0) {
        const sliceStart = state.windowMs === Infinity ? 0 : Math.floor(now / (state.windowMs / SLICES)) * (state.windowMs / SLICES);
        const last = state.charges[state.charges.length - 1];
        if (last && last[0] === sliceStart) last[1] += usd;
        else state.charges.push([sliceStart, usd]);
        state.spent += usd;
      }
      this.expire(state, now);
      out.push(this.view(line.key, state));
    }
    return out;
  }

  refund(lines: BudgetLine[], usd: number, chargedAt: number): void {
    for (const line of lines) {
      const state = this.keys.get(line.key);
      if (!state || usd <= 0) continue;
      const sliceStart = state.windowMs === Infinity ? 0 : Math.floor(chargedAt / (state.windowMs / SLICES)) * (state.windowMs / SLICES);
      const entry = state.charges.find((c) => c[0] === sliceStart);
      if (!entry) continue;
      const back = Math.min(entry[1], usd);
      entry[1] -= back;
      state.spent -= back;
    }
  }

  release(id: string): void {
    const r = this.reservations.get(id);
    if (!r) return;
    this.reservations.delete(id);
    for (const line of r.lines) this.key(line).reserved -= r.usd;
  }

  states(keys?: string[], limit = 100): BudgetState[] {
    const now = this.now();
    const out: BudgetState[] = [];
    for (const [key, state] of keys ? keys.map((k) => [k, this.keys.get(k)] as const) : this.keys) {
      if (!state) continue;
      this.expire(state, now);
      out.push(this.view(key, state));
    }
    return keys ? out : out.sort((a, b) => b.spentUsd + b.reservedUsd - (a.spentUsd + a.reservedUsd)).slice(0, limit);
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
