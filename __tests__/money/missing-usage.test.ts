import { calcPrice } from '@pydantic/genai-prices';
import { BudgetExceededError, createGuardedClient, type GuardEventMap, type Logger } from '../../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();

/** A logger that keeps its warnings. */
function collecting(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => {};
  return { warnings, debug: noop, info: noop, error: noop, warn: (_fields: object, message: string) => void warnings.push(message) };
}

/** The guard's cost events, and the client. */
function guarded<T extends object>(client: T) {
  const logger = collecting();
  const guardedClient = createGuardedClient(client, { logger });
  const costs: Array<GuardEventMap['cost']> = [];
  guardedClient.guard.on('cost', (e) => costs.push(e));
  return { client: guardedClient, costs, logger };
}

/** The cost is near what the provider billed: an estimate, not $0 and not the worst case. */
function expectNearBill(costs: Array<GuardEventMap['cost']>): void {
  expect(costs).toHaveLength(1);
  expect(costs[0]!.estimated).toBe(true);
  const billed = fake().records[0]!.costUsd;
  expect(billed).toBeGreaterThan(0);
  expect(costs[0]!.usd).toBeGreaterThan(billed * 0.5);
  expect(costs[0]!.usd).toBeLessThan(billed * 2);
}

describe('a response without usage is charged an estimate, never $0', () => {
  beforeEach(() => {
    fake().configure({ omitUsage: true, outputTokens: 40 });
  });

  it('OpenAI chat, JSON', async () => {
    const { client, costs, logger } = guarded(openaiFor(fake()));
    const reply = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100 });
    expect(reply.usage).toBeUndefined();
    expectNearBill(costs);
    expect(costs[0]!.usage.outputTokens).toBeGreaterThan(20);
    expect(logger.warnings.filter((w) => /reported no usage/.test(w))).toHaveLength(1);
    expect(logger.warnings[0]).toContain(`for model ${GPT}`);
    expect(logger.warnings[0]).toContain(new URL(fake().openaiBaseURL).host);
  });

  it('OpenAI Responses, JSON', async () => {
    const { client, costs } = guarded(openaiFor(fake()));
    await client.responses.create({ model: GPT, input: 'Hello there, how are you?', max_output_tokens: 100 });
    expectNearBill(costs);
  });

  it('Anthropic messages, JSON', async () => {
    const { client, costs } = guarded(anthropicFor(fake()));
    await client.messages.create({ model: CLAUDE, max_tokens: 100, messages: hello });
    expectNearBill(costs);
  });

  it('Anthropic messages, SSE', async () => {
    const { client, costs } = guarded(anthropicFor(fake()));
    const stream = await client.messages.create({ model: CLAUDE, max_tokens: 100, messages: hello, stream: true });
    for await (const _ of stream);
    expectNearBill(costs);
  });

  it('OpenAI chat, SSE with include_usage that the host ignores', async () => {
    const { client, costs } = guarded(openaiFor(fake()));
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100, stream: true, stream_options: { include_usage: true } });
    for await (const _ of stream);
    expectNearBill(costs);
  });

  it('OpenAI Responses, SSE', async () => {
    const { client, costs } = guarded(openaiFor(fake()));
    const stream = await client.responses.create({ model: GPT, input: 'Hello there, how are you?', max_output_tokens: 100, stream: true });
    for await (const _ of stream);
    expectNearBill(costs);
  });

  it('embeddings: the input estimate', async () => {
    const { client, costs } = guarded(openaiFor(fake()));
    await client.embeddings.create({ model: 'text-embedding-3-small', input: 'a sentence to embed, of some length' });
    expect(costs).toHaveLength(1);
    expect(costs[0]).toMatchObject({ estimated: true, usage: { outputTokens: 0 } });
    expect(costs[0]!.usd).toBeGreaterThan(0);
  });

  it('warns once per model and host, however many calls', async () => {
    const { client, logger } = guarded(openaiFor(fake()));
    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100 });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: hello, max_tokens: 100 });
    expect(logger.warnings.filter((w) => /reported no usage/.test(w))).toHaveLength(2);
  });

  it('a hard budget still holds behind such a host: its calls are refused once the estimates fill it', async () => {
    const client = createGuardedClient(openaiFor(fake()), { logLevel: 'silent', cost: { budgets: [{ scope: 'user', limitUsd: 0.005 }], budgetWaitMs: 0 } });
    const abuser = client.guard.withScope({ user: 'mallory' });
    let served = 0;
    let refused: unknown;
    for (let i = 0; i < 100 && !refused; i++) {
      await abuser.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100 }).then(
        () => served++,
        (e: unknown) => (refused = e),
      );
    }
    expect(refused).toBeInstanceOf(BudgetExceededError);
    expect(served).toBeGreaterThan(3);
    expect(fake().stats.billed.usd).toBeLessThanOrEqual(0.005 * 1.5);
  });
});

describe('an OpenAI stream without include_usage (the host never sends usage then)', () => {
  it('is charged the input estimate plus the output counted from its text, and says how to get exact counts', async () => {
    fake().configure({ outputTokens: 40 });
    const { client, costs, logger } = guarded(openaiFor(fake()));
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100, stream: true });
    for await (const _ of stream);
    expectNearBill(costs);
    expect(logger.warnings.join('\n')).toContain('include_usage');
  });
});

describe('a response with nothing to count', () => {
  it('no usage and no recognisable output: charged its worst case (input estimate + max tokens)', async () => {
    const { client, costs } = guarded(openaiFor(fake()));
    const requests: Array<GuardEventMap['request']> = [];
    client.guard.on('request', (e) => requests.push(e));
    fake().fault({ status: 200, body: { id: 'x', object: 'chat.completion', created: 0, model: GPT } });
    await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 300 });
    expect(costs).toHaveLength(1);
    expect(costs[0]!.estimated).toBe(true);
    const worst = calcPrice({ input_tokens: requests[0]!.inputTokensEstimate, output_tokens: 300 }, GPT, { providerId: 'openai' })!.total_price;
    expect(costs[0]!.usd).toBeCloseTo(worst, 12);
  });
});
