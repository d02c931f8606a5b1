import { createGuardedClient } from '../../lib';
import { CLAUDE, anthropicFor, hello, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();

/** Calls are told apart at the provider by their max tokens. */
const call = (client: ReturnType<typeof createGuardedClient>, maxTokens: number) =>
  (client as unknown as { messages: { create(body: object): Promise<unknown> } }).messages.create({ model: CLAUDE, max_tokens: maxTokens, messages: hello });

describe('priority: scope.priority', () => {
  it('with the limiter saturated by 300 low-priority calls, 10 high-priority ones each start within two slot releases', async () => {
    fake().configure({ latencyMs: 15 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 2 }, logLevel: 'silent' });
    const low = client.guard.withScope({ priority: 'low' });
    const high = client.guard.withScope({ priority: 'high' });
    const lows = Array.from({ length: 300 }, () => call(low, 10));
    await new Promise((r) => setTimeout(r, 50)); // the queue is full of low calls
    const madeAt = fake().now();
    const highs = Array.from({ length: 10 }, () => call(high, 11));
    await Promise.all(highs);
    const after = fake().records.filter((r) => r.at >= madeAt);
    const lastHigh = after.map((r) => r.maxTokens).lastIndexOf(11);
    // Between the moment the high calls were made and the last of them reaching the provider,
    // at most two low calls got a slot (those already on their way to one).
    expect(after.slice(0, lastHigh + 1).filter((r) => r.maxTokens === 10).length).toBeLessThanOrEqual(2);
    await Promise.all(lows);
    expect(fake().stats.requests).toBe(310);
  });

  it('a priority that is not high, normal or low is refused', () => {
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent' });
    expect(() => client.guard.withScope({ priority: 'urgent' as never })).toThrow(/"high", "normal" or "low"/);
  });
});

describe('fair share: limits.fairShare (default tenant)', () => {
  it("tenant A fires 600 calls, tenant B then 20: B's finish long before A's last 100, A gets the rest, nothing starves", async () => {
    fake().configure({ latencyMs: 5 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 4 }, logLevel: 'silent' });
    const a = client.guard.withScope({ tenant: 'a' });
    const b = client.guard.withScope({ tenant: 'b' });
    const fromA = Array.from({ length: 600 }, () => call(a, 10));
    await new Promise((r) => setTimeout(r, 30));
    const fromB = Array.from({ length: 20 }, () => call(b, 12));
    await Promise.all([...fromA, ...fromB]);
    const order = fake().records.map((r) => (r.maxTokens === 12 ? 'B' : 'A'));
    expect(order).toHaveLength(620);
    const lastB = order.lastIndexOf('B');
    const aBeforeLastB = order.slice(0, lastB).filter((x) => x === 'A').length;
    // Round-robin: B's 20 went out alongside about as many of A's, not after A's 600.
    expect(aBeforeLastB).toBeLessThan(500);
    expect(lastB).toBeLessThan(150);
  });

  it("fairShare 'none': first come, first served (B waits behind A's flood)", async () => {
    fake().configure({ latencyMs: 2 });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 4, fairShare: 'none' }, logLevel: 'silent' });
    const fromA = Array.from({ length: 200 }, () => call(client.guard.withScope({ tenant: 'a' }), 10));
    await new Promise((r) => setTimeout(r, 20));
    const fromB = Array.from({ length: 10 }, () => call(client.guard.withScope({ tenant: 'b' }), 12));
    await Promise.all([...fromA, ...fromB]);
    const order = fake().records.map((r) => (r.maxTokens === 12 ? 'B' : 'A'));
    expect(order.indexOf('B')).toBeGreaterThan(150);
  });
});
