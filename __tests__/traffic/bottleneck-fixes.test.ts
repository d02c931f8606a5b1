import Bottleneck from 'bottleneck';
import { fastLimiter, localReservoir, makeFast, refillFromNow, setHeartbeat, setLocalSettings } from '../../lib/internal/bottleneck';

// These tests fail if the fixes in lib/internal/bottleneck.ts stop applying (a Bottleneck
// upgrade, a refactor): they check behaviour, not how long anything took.

describe('Bottleneck scheduling needs no timers', () => {
  afterEach(() => jest.useRealTimers());

  test('a job runs with setTimeout frozen (stock Bottleneck would wait on two setTimeout(0)s)', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    const limiter = fastLimiter({ maxConcurrent: 2 });
    const results = await Promise.all([1, 2, 3].map((n) => limiter.schedule(async () => n * 2)));
    expect(results).toEqual([2, 4, 6]);
  });

  test('stock Bottleneck does need them (the reason for the fix)', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    const stock = new Bottleneck({ maxConcurrent: 2 });
    let ran = false;
    void stock.schedule(async () => (ran = true));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(ran).toBe(false);
    await jest.runAllTimersAsync();
    expect(ran).toBe(true);
  });
});

describe('the refill heartbeat survives updateSettings()', () => {
  test('a reservoir keeps refilling after its settings change', async () => {
    const limiter = fastLimiter({ reservoir: 0, reservoirIncreaseAmount: 1, reservoirIncreaseInterval: 20, reservoirIncreaseMaximum: 100, heartbeatInterval: 20 } as Bottleneck.ConstructorOptions);
    await new Promise((r) => setTimeout(r, 70));
    await limiter.updateSettings({ reservoirIncreaseMaximum: 99 });
    const before = (await limiter.currentReservoir())!;
    await new Promise((r) => setTimeout(r, 120));
    expect((await limiter.currentReservoir())!).toBeGreaterThan(before + 2);
    await limiter.disconnect();
  });

  test('stock Bottleneck stops refilling (the reason for the fix)', async () => {
    const stock = new Bottleneck({ reservoir: 0, reservoirIncreaseAmount: 1, reservoirIncreaseInterval: 20, reservoirIncreaseMaximum: 100, heartbeatInterval: 20 } as Bottleneck.ConstructorOptions);
    await new Promise((r) => setTimeout(r, 70));
    await stock.updateSettings({ reservoirIncreaseMaximum: 99 });
    const before = (await stock.currentReservoir())!;
    await new Promise((r) => setTimeout(r, 120));
    expect(await stock.currentReservoir()).toBe(before);
    await stock.disconnect();
  });

  test('a refill switched on late credits nothing for the time before it ran', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    try {
      // No refill at first (adaptive mode before it learned a rate), for a while.
      const limiter = fastLimiter({ reservoir: 0 });
      await jest.advanceTimersByTimeAsync(1000);
      setHeartbeat(limiter, 100);
      await limiter.updateSettings({ reservoirIncreaseAmount: 1, reservoirIncreaseInterval: 90, reservoirIncreaseMaximum: 10 });
      await jest.advanceTimersByTimeAsync(100);
      // One period's worth, not four (the stock clock ran from the limiter's creation).
      expect(localReservoir(limiter)).toBeCloseTo(1, 5);
      await limiter.disconnect();
    } finally {
      jest.useRealTimers();
    }
  });

  test('after the reservoir is set from a count, the next tick adds only for the time since', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'queueMicrotask', 'nextTick'] });
    try {
      const limiter = fastLimiter({ reservoir: 0, reservoirIncreaseAmount: 1, reservoirIncreaseInterval: 90, reservoirIncreaseMaximum: 10, heartbeatInterval: 100 } as Bottleneck.ConstructorOptions);
      await jest.advanceTimersByTimeAsync(100);
      expect(localReservoir(limiter)).toBeCloseTo(1, 5);
      await jest.advanceTimersByTimeAsync(70);
      // A provider's count, which includes its refill so far, sets the reservoir 30 ms before the next tick.
      setLocalSettings(limiter, { reservoir: 0 });
      refillFromNow(limiter);
      await jest.advanceTimersByTimeAsync(30);
      expect(localReservoir(limiter)).toBeCloseTo(0.3, 5);
      await jest.advanceTimersByTimeAsync(100);
      expect(localReservoir(limiter)).toBeCloseTo(1.3, 5);
      await limiter.disconnect();
    } finally {
      jest.useRealTimers();
    }
  });

  test('makeFast is idempotent and leaves other limiters alone', () => {
    const a = new Bottleneck();
    const b = new Bottleneck();
    makeFast(a);
    makeFast(a);
    expect((a as unknown as { _run: unknown })._run).not.toBe((b as unknown as { _run: unknown })._run);
    expect((b as unknown as { _run: unknown })._run).toBe(Bottleneck.prototype['_run' as keyof Bottleneck]);
  });
});
