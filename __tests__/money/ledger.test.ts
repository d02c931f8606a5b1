import { MemoryLedger, type BudgetLine } from '../../lib/money/ledger';

const hour = 3_600_000;
const line = (key: string, limitUsd: number, windowMs = hour, hard = true): BudgetLine => ({ key, limit: limitUsd, windowMs, hard });

describe('MemoryLedger', () => {
  test('settled + reserved never passes a hard limit; a refusal changes nothing', () => {
    const ledger = new MemoryLedger();
    const lines = [line('global', 1), line('user:a', 0.5)];
    expect(ledger.reserve('1', lines, 0.3).ok).toBe(true);
    expect(ledger.reserve('2', lines, 0.3)).toMatchObject({ ok: false, refusedBy: { key: 'user:a' } });
    expect(ledger.states(['global', 'user:a']).map((s) => s.reserved)).toEqual([0.3, 0.3]);
    ledger.settle('1', 0.1);
    expect(ledger.states(['global', 'user:a']).map((s) => [s.spent, s.reserved])).toEqual([[0.1, 0], [0.1, 0]]);
    expect(ledger.reserve('3', lines, 0.4).ok).toBe(true);
    ledger.release('3');
    expect(ledger.states(['user:a'])[0]).toMatchObject({ spent: 0.1, reserved: 0 });
  });

  test('soft lines never refuse', () => {
    const ledger = new MemoryLedger();
    expect(ledger.reserve('1', [line('global', 0.01, hour, false)], 5).ok).toBe(true);
  });

  test('a sliding window: a charge counts for the whole window (at most 1/60 of it longer), never less', () => {
    let now = 1_000_000_000;
    const ledger = new MemoryLedger(() => now);
    const budget = [line('global', 1)];
    ledger.reserve('a', budget, 1);
    ledger.settle('a', 1);
    now += hour - 1;
    expect(ledger.reserve('b', budget, 0.01).ok).toBe(false); // still inside the hour
    now += hour / 60 + 2;
    expect(ledger.reserve('c', budget, 1).ok).toBe(true); // gone after the window (+ one slice)
    expect(ledger.states(['global'])[0]!.spent).toBe(0);
  });

  test('nextReleaseAt says when room comes back', () => {
    const now = 0;
    const ledger = new MemoryLedger(() => now);
    ledger.reserve('a', [line('global', 1)], 0.5);
    ledger.settle('a', 0.5);
    const at = ledger.states(['global'])[0]!.nextReleaseAt!;
    expect(at).toBeGreaterThan(hour);
    expect(at).toBeLessThanOrEqual(hour + hour / 60);
  });

  test("'none' windows never release", () => {
    let now = 0;
    const ledger = new MemoryLedger(() => now);
    ledger.reserve('a', [line('global', 1, Infinity)], 1);
    ledger.settle('a', 1);
    now += 365 * 24 * hour;
    expect(ledger.reserve('b', [line('global', 1, Infinity)], 0.01).ok).toBe(false);
  });

  test('extend on the same terms', () => {
    const ledger = new MemoryLedger();
    ledger.reserve('a', [line('global', 1)], 0.5);
    expect(ledger.extend('a', 0.4).ok).toBe(true);
    expect(ledger.extend('a', 0.2).ok).toBe(false);
    ledger.settle('a', 0.95);
    expect(ledger.states(['global'])[0]).toMatchObject({ spent: 0.95, reserved: 0 });
  });

  test('memory stays bounded: 100,000 idle scope keys are dropped once their window has passed', () => {
    let now = 0;
    const ledger = new MemoryLedger(() => now);
    for (let i = 0; i < 100_000; i++) {
      const lines = [line('global', 1e9), line(`user:${i}`, 1, 60_000)];
      ledger.reserve(`r${i}`, lines, 0.001);
      ledger.settle(`r${i}`, 0.001);
    }
    expect(ledger.size).toBe(100_001);
    now += 62_000;
    for (let i = 0; i < 2048; i++) {
      ledger.reserve(`s${i}`, [line('global', 1e9)], 0);
      ledger.release(`s${i}`);
    }
    expect(ledger.size).toBe(1);
  });
});
