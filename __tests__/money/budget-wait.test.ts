import { calcPrice } from '@pydantic/genai-prices';
import { APIUserAbortError } from '@anthropic-ai/sdk';
import { BudgetExceededError, createGuardedClient } from '../../lib';
import { GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();
const HAIKU = 'claude-haiku-4-5';

describe('cost.budgetWaitMs: a refusal that only calls in flight cause becomes a wait', () => {
  it('default settings: 50 concurrent gpt-4o calls that set no max tokens all succeed', async () => {
    fake().configure({ latencyMs: 50 });
    const client = createGuardedClient(openaiFor(fake()), { logLevel: 'silent', limits: { maxConcurrent: 50 } });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => client.chat.completions.create({ model: GPT, messages: [{ role: 'user', content: 'Hi' }] })));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(fake().stats.requests).toBe(50);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  it('a budget that fits 5 worst cases serves 30 calls that cost a tenth of it: some wait, none refused, billed within it', async () => {
    fake().configure({ latencyMs: 80, outputTokens: 16 });
    const maxTokens = 160; // the calls use a tenth of it
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', limits: { maxConcurrent: 30 } });
    const requests: number[] = [];
    client.guard.on('request', (e) => requests.push(e.inputTokensEstimate));
    // Learn the input estimate of one call, then size the budget to five worst cases of it.
    await client.messages.create({ model: HAIKU, max_tokens: maxTokens, messages: hello });
    const worst = calcPrice({ input_tokens: requests[0]!, output_tokens: maxTokens }, HAIKU, { providerId: 'anthropic' })!.total_price;
    const spentBefore = fake().stats.billed.usd;
    const budget = spentBefore + 5 * worst + 1e-9;
    client.guard.updateConfig({ cost: { budgets: [{ scope: 'global', limitUsd: budget, window: '1h' }] } });

    const started = performance.now();
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => client.messages.create({ model: HAIKU, max_tokens: maxTokens, messages: hello })));
    const elapsed = performance.now() - started;
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(fake().stats.requests).toBe(31);
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(budget);
    // At most 5 in flight at once: 30 calls took at least 6 rounds of 80 ms.
    expect(fake().stats.maxInFlight).toBeLessThanOrEqual(5);
    expect(elapsed).toBeGreaterThanOrEqual(6 * 80 * 0.9);
    expect(client.guard.status().budgets[0]!.reservedUsd).toBeCloseTo(0, 12);
  });

  it('waits first come, first served: the calls reach the provider in the order they were made', async () => {
    fake().configure({ latencyMs: 30 });
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent' });
    const requests: number[] = [];
    client.guard.on('request', (e) => requests.push(e.inputTokensEstimate));
    await client.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello });
    const worst = calcPrice({ input_tokens: requests[0]!, output_tokens: 1000 }, HAIKU, { providerId: 'anthropic' })!.total_price;
    // Room for one worst case in flight at a time, and for what the six really cost.
    const real = fake().records[0]!.costUsd;
    client.guard.updateConfig({ cost: { budgets: [{ scope: 'global', limitUsd: fake().stats.billed.usd + worst * 1.5 + 6 * real }] } });
    fake().reset();
    // Made in this order (each with its own max tokens, to tell them apart at the provider).
    const calls = Array.from({ length: 6 }, (_, i) => client.messages.create({ model: HAIKU, max_tokens: 1000 - i, messages: hello }));
    await Promise.all(calls);
    expect(fake().stats.maxInFlight).toBe(1);
    expect(fake().records.map((r) => r.maxTokens)).toEqual([1000, 999, 998, 997, 996, 995]);
  });

  it('settled spend alone is refused at once, without waiting', async () => {
    const client = createGuardedClient(openaiFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'global', limitUsd: 0.0003 }] } });
    let error: unknown;
    for (let i = 0; i < 50 && !error; i++) error = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 20 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    const started = performance.now();
    await expect(client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 20 })).rejects.toBeInstanceOf(BudgetExceededError);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('budgetWaitMs 0 refuses at once; a wait that ends without room is refused and says it waited', async () => {
    fake().configure({ latencyMs: 400 });
    const base = { logLevel: 'silent' as const, limits: { maxConcurrent: 10 } };
    const worst = calcPrice({ input_tokens: 20, output_tokens: 1000 }, HAIKU, { providerId: 'anthropic' })!.total_price;
    const budgets = [{ scope: 'global' as const, limitUsd: worst * 1.2 }];
    const refuseNow = createGuardedClient(anthropicFor(fake()), { ...base, cost: { budgets, budgetWaitMs: 0 } });
    const first = refuseNow.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello });
    const started = performance.now();
    await expect(refuseNow.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello })).rejects.toBeInstanceOf(BudgetExceededError);
    expect(performance.now() - started).toBeLessThan(200);
    await first;

    const shortWait = createGuardedClient(anthropicFor(fake()), { ...base, cost: { budgets, budgetWaitMs: 150 } });
    const held = shortWait.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello });
    const error = await shortWait.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect((error as Error).message).toMatch(/It waited \d+ ms for calls in flight to settle/);
    await held;
  });

  it("a waiting call the caller aborts ends with the SDK's abort error, and nothing is sent", async () => {
    fake().configure({ latencyMs: 300 });
    const worst = calcPrice({ input_tokens: 20, output_tokens: 1000 }, HAIKU, { providerId: 'anthropic' })!.total_price;
    const client = createGuardedClient(anthropicFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'global', limitUsd: worst * 1.2 }] } });
    const held = client.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello });
    const controller = new AbortController();
    const waiting = client.messages.create({ model: HAIKU, max_tokens: 1000, messages: hello }, { signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 50);
    expect(await waiting).toBeInstanceOf(APIUserAbortError);
    await held;
    expect(fake().stats.requests).toBe(1);
  });
});
