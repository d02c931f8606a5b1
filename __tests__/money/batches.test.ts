import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, createGuardedClient } from '../../lib';
import { anthropicFor, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();
const HAIKU = 'claude-haiku-4-5';
const request = (i: number, maxTokens = 200) => ({
  custom_id: `r${i}`,
  params: { model: HAIKU, max_tokens: maxTokens, messages: [{ role: 'user' as const, content: `Question number ${i}, please answer briefly.` }] },
});
const spent = (client: { guard: { status(): { budgets: Array<{ key: string; spentUsd: number; reservedUsd: number }> } } }) => client.guard.status().budgets.find((b) => b.key === 'global')!;

describe('Anthropic Message Batches', () => {
  it('charges a batch its worst case at batch prices when accepted, and trues it up to what was billed when its results are read', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { cost: { budgets: [{ scope: 'global', limitUsd: 1, window: '1d' }] } });
    const batch = await client.messages.batches.create({ requests: Array.from({ length: 5 }, (_, i) => request(i)) });
    const worst = spent(client).spentUsd;
    // 5 × 200 output tokens at half price, at least.
    const floor = 5 * calcPrice({ input_tokens: 0, output_tokens: 200 }, HAIKU, { providerId: 'anthropic' })!.total_price * 0.5;
    expect(worst).toBeGreaterThanOrEqual(floor);
    expect(spent(client).reservedUsd).toBe(0);

    const results = [];
    for await (const result of await client.messages.batches.results(batch.id)) results.push(result);
    expect(results).toHaveLength(5);
    await new Promise((r) => setTimeout(r, 20));
    // What the provider billed (16 output tokens each, at half price): no more, no less.
    expect(spent(client).spentUsd).toBeCloseTo(fake().stats.billed.usd, 12);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
    await client.guard.close();
  });

  it('refuses a batch whose worst case does not fit the budget, sending nothing', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { cost: { budgets: [{ scope: 'global', limitUsd: 0.001, window: '1d' }] } });
    const error = await client.messages.batches.create({ requests: Array.from({ length: 5 }, (_, i) => request(i)) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect((error as BudgetExceededError).stage).toBe('pre-call');
    expect(fake().stats.requests).toBe(0);
    await client.guard.close();
  });

  it('refuses a batch with one request over the per-call cap, naming it', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { cost: { maxCostPerCallUsd: 0.01 } });
    const error = await client.messages.batches.create({ requests: [request(0), request(1, 64_000)] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect((error as Error).message).toContain('batch request "r1"');
    expect(fake().stats.requests).toBe(0);
    await client.guard.close();
  });
});
