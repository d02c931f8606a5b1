import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import {
  BudgetExceededError,
  CircuitOpenError,
  GuardConfigError,
  GuardError,
  RateLimitExceededError,
  UnpricedModelError,
  createGuardedClient,
  isGuardError,
} from '../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from './support/clients';

const fake = useFakeProvider();

// A per-call cap of $0.001 refuses 1000 output tokens of either model before anything is sent.
const tight = { cost: { maxCostPerCallUsd: 0.001 } };
const bigAnthropic = { model: CLAUDE, max_tokens: 1000, messages: hello };
const bigOpenAI = { model: GPT, max_completion_tokens: 1000, messages: hello };

async function caught(promise: Promise<unknown> | (() => Promise<unknown>)): Promise<unknown> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function expectPreCallBudgetError(error: unknown) {
  expect(error).toBeInstanceOf(BudgetExceededError);
  expect(error).toMatchObject({ code: 'budget_exceeded', httpStatus: 402, stage: 'pre-call', scope: 'call', limitUsd: 0.001 });
  expect(fake().stats.requests).toBe(0); // a refused call sends nothing
}

describe('a guard error thrown inside fetch reaches the user as its own class', () => {
  test('Anthropic: await', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    expectPreCallBudgetError(await caught(client.messages.create(bigAnthropic)));
  });

  test('Anthropic: .then(onFulfilled, onRejected) and .catch()', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    const viaThen = await client.messages.create(bigAnthropic).then(
      () => undefined,
      (e: unknown) => e,
    );
    expectPreCallBudgetError(viaThen);
    expectPreCallBudgetError(await client.messages.create(bigAnthropic).catch((e: unknown) => e));
  });

  test('Anthropic: .withResponse() and .asResponse()', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    expectPreCallBudgetError(await caught(client.messages.create(bigAnthropic).withResponse()));
    expectPreCallBudgetError(await caught(client.messages.create(bigAnthropic).asResponse()));
  });

  test('Anthropic: stream: true', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    expectPreCallBudgetError(
      await caught(async () => {
        const stream = await client.messages.create({ ...bigAnthropic, stream: true });
        for await (const _ of stream) void _;
      }),
    );
  });

  test('Anthropic: messages.stream() helper: finalMessage(), the error event, iteration', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    const stream = client.messages.stream(bigAnthropic);
    const fromEvent = new Promise((resolve) => stream.on('error', resolve));
    expectPreCallBudgetError(await caught(stream.finalMessage()));
    expectPreCallBudgetError(await fromEvent);
    expectPreCallBudgetError(
      await caught(async () => {
        for await (const _ of client.messages.stream(bigAnthropic)) void _;
      }),
    );
  });

  test('OpenAI: await, .withResponse(), stream helpers', async () => {
    const client = createGuardedClient(openaiFor(fake()), tight);
    expectPreCallBudgetError(await caught(client.chat.completions.create(bigOpenAI)));
    expectPreCallBudgetError(await caught(client.chat.completions.create(bigOpenAI).withResponse()));
    const runner = client.chat.completions.stream(bigOpenAI);
    const fromEvent = new Promise((resolve) => runner.on('error', resolve));
    expectPreCallBudgetError(await caught(runner.finalChatCompletion()));
    expectPreCallBudgetError(await fromEvent);
    expectPreCallBudgetError(await caught(client.responses.create({ model: GPT, input: 'hi', max_output_tokens: 1000 })));
  });

  test('the plain SDK would have wrapped it: isGuardError looks through cause', async () => {
    const client = createGuardedClient(anthropicFor(fake()), tight);
    const wrapped = new Anthropic.APIConnectionError({ cause: (await caught(client.messages.create(bigAnthropic))) as Error });
    expect(isGuardError(wrapped)).toBe(true);
    expect(BudgetExceededError.is(wrapped)).toBe(true);
    expect(isGuardError(new Error('plain'))).toBe(false);
    expect(isGuardError(undefined)).toBe(false);
  });
});

describe('error classes', () => {
  test.each([
    [new RateLimitExceededError('queue full', { reason: 'queue_full', retryAfterMs: 1200.4 }), 'rate_limited', 429],
    [new BudgetExceededError('over', { stage: 'post-call', scope: 'user', key: 'user:a', limitUsd: 1, spentUsd: 1, estimatedUsd: 0.2 }), 'budget_exceeded', 402],
    [new CircuitOpenError('open', { breaker: 'default', retryAfterMs: 5000 }), 'circuit_open', 503],
    [new GuardConfigError('limits.maxConcurrent', '-1 (number)', 'an integer from 1'), 'invalid_config', 500],
    [new UnpricedModelError('my-model', 'openai'), 'unpriced_model', 400],
  ])('%p has its code and status, and is a GuardError', (error, code, status) => {
    expect(error).toBeInstanceOf(GuardError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.httpStatus).toBe(status);
    expect(isGuardError(error)).toBe(true);
    // Never a name or message the SDKs would turn into their own abort/timeout classes.
    expect(error.name).not.toBe('AbortError');
    expect(`${error.message}`).not.toMatch(/timed? ?out/i);
    expect(JSON.parse(JSON.stringify(error))).toMatchObject({ code, httpStatus: status, name: error.name });
  });

  test('retryAfterMs is a whole number of ms', () => {
    expect(new RateLimitExceededError('x', { reason: 'max_wait', retryAfterMs: 1200.4 }).retryAfterMs).toBe(1201);
  });

  test('a post-call error keeps the paid-for response off its JSON', () => {
    const error = new BudgetExceededError('over', { stage: 'post-call', scope: 'call', key: 'call', limitUsd: 1, spentUsd: 2, estimatedUsd: 1, response: { big: 'body' } });
    expect(error.response).toEqual({ big: 'body' });
    expect(JSON.stringify(error)).not.toContain('big');
  });
});

describe('unpriced models', () => {
  test("'reject' refuses before anything is sent", async () => {
    const client = createGuardedClient(openaiFor(fake()), { cost: { unpricedModel: 'reject' } });
    const error = await caught(client.chat.completions.create({ model: 'my-finetune-xyz', messages: hello }));
    expect(error).toBeInstanceOf(UnpricedModelError);
    expect(error).toMatchObject({ model: 'my-finetune-xyz', provider: 'openai', httpStatus: 400 });
    expect(fake().stats.requests).toBe(0);
  });

  test("'conservative' (default) lets it through and charges it as the dearest model", async () => {
    const client = createGuardedClient(openaiFor(fake()), { cost: { maxCostPerCallUsd: 1000 } });
    await client.chat.completions.create({ model: 'my-finetune-xyz', messages: hello, max_tokens: 10 });
    expect(client.guard.status().totals.costUsd).toBeGreaterThan(0);
  });
});

describe('provider errors are not touched', () => {
  test('429 after retries is the SDK RateLimitError, with its headers', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: 0 });
    fake().fault({ status: 429, headers: { 'retry-after': '2' } });
    const error = await caught(client.chat.completions.create({ model: GPT, messages: hello }));
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('2');
    expect(isGuardError(error)).toBe(false);
  });

  test('529 overloaded is the Anthropic OverloadedError', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { retry: 0 });
    fake().fault({ status: 529 });
    expect(await caught(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello }))).toBeInstanceOf(Anthropic.InternalServerError);
  });
});
