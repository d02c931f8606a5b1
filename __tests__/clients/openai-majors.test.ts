// The openai majors beside the one the other tests use (6): 7, the major `npm install openai`
// gives today, which stops reading a stream at `[DONE]` and cancels its body (6 read on to the
// body's close), and 5, the oldest the peer range takes. A stream that reached its end marker is
// a finished call, not one its reader abandoned: charged once, checked after the call, warned
// about, its slot freed.
import OpenAI from 'openai-v7';
import OpenAI5 from 'openai-v5';
import { VERSION as DEFAULT_OPENAI_VERSION } from 'openai/version';
import { BudgetExceededError, createGuardedClient, type GuardEventMap, type Logger } from '../../lib';
import { GPT, OPENAI_KEY, breakAfter, hello, useFakeProvider } from '../support/clients';

const fake = useFakeProvider();

/** Each major's client, typed as openai 7's (the surface these tests use is the same in both). */
const MAJORS: Array<[string, (options: { apiKey: string; baseURL: string }) => OpenAI]> = [
  ['openai 7', (options) => new OpenAI(options)],
  ['openai 5', (options) => new OpenAI5(options) as unknown as OpenAI],
];

function client(make: (typeof MAJORS)[number][1], options: Parameters<typeof createGuardedClient>[1] = {}) {
  const warnings: string[] = [];
  const noop = () => {};
  const logger: Logger = { debug: noop, info: noop, error: noop, warn: (_fields: object, message: string) => void warnings.push(message) };
  const guarded = createGuardedClient(make({ apiKey: OPENAI_KEY, baseURL: fake().openaiBaseURL }), { logger, ...options });
  const costs: Array<GuardEventMap['cost']> = [];
  const exceeded: Array<GuardEventMap['budget:exceeded']> = [];
  guarded.guard.on('cost', (e) => costs.push(e));
  guarded.guard.on('budget:exceeded', (e) => exceeded.push(e));
  return { guarded, warnings, costs, exceeded };
}

/** Reads a stream to its end the way users do; the text it carried. */
async function readAll(stream: AsyncIterable<OpenAI.ChatCompletionChunk>): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

test('every test imports the peer majors of its pass (npm test: openai 6, ioredis 5, gpt-tokenizer 3, @langchain/openai 1.5; test:compat: 7, 6, 4, 1.6)', () => {
  const newest = process.env.GUARDED_LLM_NEWEST === '1';
  const version = (name: string) => (require(`${name}/package.json`) as { version: string }).version;
  const major = (name: string) => version(name).split('.')[0];
  expect(DEFAULT_OPENAI_VERSION.split('.')[0]).toBe(newest ? '7' : '6');
  expect(major('ioredis')).toBe(newest ? '6' : '5');
  expect(major('gpt-tokenizer')).toBe(newest ? '4' : '3');
  // Its package.json is not exported: the version of the module the tests import, found through its entry.
  const langchain = require.resolve('@langchain/openai');
  expect(langchain).toContain(newest ? 'langchain-openai-v1-6' : '@langchain/openai');
});

describe.each(MAJORS)('%s', (_major, make) => {
  test('with include_usage: charged exactly what the provider billed, once, and the slot is free when the loop ends', async () => {
    fake().configure({ outputTokens: 40 });
    const { guarded, warnings, costs } = client(make);
    const stream = await guarded.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100, stream: true, stream_options: { include_usage: true } });
    const text = await readAll(stream);
    expect(text.length).toBeGreaterThan(0);
    expect(costs).toHaveLength(1);
    expect(costs[0]).toMatchObject({ estimated: false, usage: { outputTokens: 40 } });
    expect(costs[0]!.usd).toBeCloseTo(fake().records[0]!.costUsd, 12);
    expect(guarded.guard.status().limiter.running).toBe(0);
    expect(warnings).toEqual([]);
  });

  test('without include_usage: charged an estimate near the bill, and the warning says how to get exact counts', async () => {
    fake().configure({ outputTokens: 40 });
    const { guarded, warnings, costs } = client(make);
    await readAll(await guarded.chat.completions.create({ model: GPT, messages: hello, max_tokens: 100, stream: true }));
    expect(costs).toHaveLength(1);
    expect(costs[0]!.estimated).toBe(true);
    const billed = fake().records[0]!.costUsd;
    expect(costs[0]!.usd).toBeGreaterThan(billed * 0.5);
    expect(costs[0]!.usd).toBeLessThan(billed * 2);
    expect(warnings.join('\n')).toContain('include_usage');
  });

  test('a stream that cost more than the per-call cap is reported after the call (postCallOverrun "warn")', async () => {
    fake().configure({ outputTokens: 20, extraInputTokens: 100_000 });
    const { guarded, warnings, exceeded } = client(make, { cost: { maxCostPerCallUsd: 0.1 } });
    const text = await readAll(await guarded.chat.completions.create({ model: GPT, messages: hello, max_tokens: 20, stream: true, stream_options: { include_usage: true } }));
    expect(text.length).toBeGreaterThan(0);
    expect(exceeded).toMatchObject([{ stage: 'post-call', key: 'call' }]);
    expect(warnings.join('\n')).toMatch(/more than the per-call cap/);
    expect(guarded.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  test('postCallOverrun "throw": the loop throws after every chunk, though openai 7 reads no further than [DONE]', async () => {
    fake().configure({ outputTokens: 20, extraInputTokens: 100_000 });
    const { guarded, warnings, exceeded } = client(make, { cost: { maxCostPerCallUsd: 0.1, postCallOverrun: 'throw' } });
    const stream = await guarded.chat.completions.create({ model: GPT, messages: hello, max_tokens: 20, stream: true, stream_options: { include_usage: true } });
    const thrown = await readAll(stream).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(exceeded).toMatchObject([{ stage: 'post-call', key: 'call' }]);
    expect(thrown).toBeInstanceOf(BudgetExceededError);
    expect(thrown).toMatchObject({ stage: 'post-call', scope: 'call' });
    expect(warnings).toEqual([]);
    expect(guarded.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  test("the stream helpers: finalChatCompletion() and finalResponse() reject with the post-call error; charged exactly what was billed", async () => {
    fake().configure({ outputTokens: 20, extraInputTokens: 100_000 });
    const { guarded, exceeded } = client(make, { cost: { maxCostPerCallUsd: 0.1, postCallOverrun: 'throw' } });
    const chat = guarded.chat.completions.stream({ model: GPT, messages: hello, max_tokens: 20, stream_options: { include_usage: true } });
    await expect(chat.finalChatCompletion()).rejects.toMatchObject({ name: 'BudgetExceededError', stage: 'post-call' });
    const responses = guarded.responses.stream({ model: GPT, input: 'Hello there', max_output_tokens: 20 });
    await expect(responses.finalResponse()).rejects.toMatchObject({ name: 'BudgetExceededError', stage: 'post-call' });
    expect(exceeded).toHaveLength(2);
    expect(guarded.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
    expect(guarded.guard.status().limiter.running).toBe(0);
  });

  test('breaking out before the end still stops the provider: only what it sent is billed and charged', async () => {
    fake().configure({ outputTokens: 200, tokenDelayMs: 5 });
    const { guarded, costs } = client(make);
    const stream = await guarded.chat.completions.create({ model: GPT, messages: hello, stream: true, stream_options: { include_usage: true } });
    await breakAfter(stream, 3);
    await fake().idle();
    expect(fake().records[0]!.clientClosed).toBe(true);
    expect(fake().records[0]!.outputTokens).toBeLessThan(50);
    expect(costs).toHaveLength(1);
    expect(costs[0]!.usd).toBeGreaterThan(0);
    expect(guarded.guard.status().limiter.running).toBe(0);
  });

  test('a JSON call: charged exactly what the provider billed', async () => {
    const { guarded, costs } = client(make);
    const completion = await guarded.chat.completions.create({ model: GPT, messages: hello, max_tokens: 16 });
    expect(completion.choices[0]!.message.content).toBeTruthy();
    expect(costs).toHaveLength(1);
    expect(costs[0]!.usd).toBeCloseTo(fake().records[0]!.costUsd, 12);
  });
});
