import { Bucket, configuredPlan } from '../../lib/limiter/bucket';

// What adaptive sync asks a bucket on every read header: how much went out since a moment. The
// history is a fixed ring, so the answers must stay exact after it wraps.
describe('a bucket’s dispatch history', () => {
  const buckets: Bucket[] = [];
  afterAll(() => Promise.all(buckets.map((b) => b.close())));

  test('counts what went out since a moment, exactly, after thousands of dispatches', () => {
    const bucket = new Bucket('tokens', configuredPlan(1_000_000));
    buckets.push(bucket);
    expect(bucket.dispatchedSince(0)).toBe(0);
    // 5,000 dispatches 1 ms apart, weighing 1, 2, 3, 1, 2, 3, …
    const weightAt = (i: number) => (i % 3) + 1;
    for (let i = 0; i < 5000; i++) bucket.countDispatch(weightAt(i), 1000 + i);
    const sumFrom = (first: number) => {
      let sum = 0;
      for (let i = first; i < 5000; i++) sum += weightAt(i);
      return sum;
    };
    expect(bucket.dispatched).toBe(sumFrom(0));
    // Inside what the history holds: exact, at a dispatch and between two.
    expect(bucket.dispatchedSince(1000 + 4990)).toBe(sumFrom(4990));
    expect(bucket.dispatchedSince(1000 + 4500.5)).toBe(sumFrom(4501));
    expect(bucket.dispatchedSince(1000 + 4000)).toBe(sumFrom(4000));
    // After the last one: nothing.
    expect(bucket.dispatchedSince(1000 + 5000)).toBe(0);
    // Before what it holds: everything it still holds (the newest 1,024), never more.
    expect(bucket.dispatchedSince(0)).toBe(sumFrom(5000 - 1024));
  });
});
