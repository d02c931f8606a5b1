import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { CircuitOpenError, createGuardedClient, type GuardEventMap } from '../../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';
import { sleep } from '../support/arrivals';

const fake = useFakeProvider();
const noRetry = { retry: 0 };

describe('circuit breaker', () => {
  test('opens on provider faults, fails fast with the server seeing nothing, half-opens one probe, closes', async () => {
    const client = createGuardedClient(openaiFor(fake()), { ...noRetry, breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 300 } });
    const states: Array<GuardEventMap['breaker']['state']> = [];
    client.guard.on('breaker', (e) => states.push(e.state));
    fake().fault({ status: 503 }, { times: 4 });
    for (let i = 0; i < 4; i++) await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    expect(states).toEqual(['open']);

    const refused = await client.chat.completions.create({ model: GPT, messages: hello }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect((refused as CircuitOpenError).retryAfterMs).toBeGreaterThan(0);
    expect((refused as CircuitOpenError).retryAfterMs).toBeLessThanOrEqual(300);
    expect(fake().stats.requests).toBe(4);
    expect(client.guard.status().breaker).toMatchObject({ state: 'open' });

    await sleep(350);
    expect(client.guard.status().breaker.state).toBe('half-open');
    // One probe goes; calls made meanwhile are still refused.
    fake().configure({ latencyMs: 50 });
    const probe = client.chat.completions.create({ model: GPT, messages: hello });
    await sleep(10);
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(CircuitOpenError);
    await probe;
    expect(states).toEqual(['open', 'half-open', 'closed']);
    expect(fake().stats.requests).toBe(5);
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(fake().stats.requests).toBe(6);
  });

  test('a failed probe opens it again', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { ...noRetry, breaker: { volumeThreshold: 1, resetTimeoutMs: 100 } });
    fake().fault({ status: 529 }, { times: 2 });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello })).rejects.toBeInstanceOf(Anthropic.APIError);
    await sleep(150);
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello })).rejects.toBeInstanceOf(Anthropic.APIError);
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 5, messages: hello })).rejects.toBeInstanceOf(CircuitOpenError);
    expect(fake().stats.requests).toBe(2);
  });

  test('4xx and 429 are not counted: they never open it', async () => {
    const client = createGuardedClient(openaiFor(fake()), { ...noRetry, breaker: { volumeThreshold: 2, errorThresholdPercentage: 10 } });
    fake().fault({ status: 400 }, { times: 5 }).fault({ status: 429 }, { times: 5 });
    for (let i = 0; i < 10; i++) await client.chat.completions.create({ model: GPT, messages: hello }).catch(() => undefined);
    expect(client.guard.status().breaker.state).toBe('closed');
    // Nor do they dilute faults: two faults in a row now open it.
    fake().fault({ status: 500 }, { times: 2 });
    for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: GPT, messages: hello }).catch(() => undefined);
    expect(client.guard.status().breaker.state).toBe('open');
  });

  test('connection errors and per-attempt timeouts count as faults', async () => {
    const client = createGuardedClient(openaiFor(fake()), { ...noRetry, timeoutMs: 50, breaker: { volumeThreshold: 2 } });
    fake().fault({ kind: 'reset' }).fault({ kind: 'hang' });
    await client.chat.completions.create({ model: GPT, messages: hello }).catch(() => undefined);
    await client.chat.completions.create({ model: GPT, messages: hello }).catch(() => undefined);
    expect(client.guard.status().breaker.state).toBe('open');
  });

  test('perModel: one model failing leaves the others served', async () => {
    const client = createGuardedClient(openaiFor(fake()), { ...noRetry, breaker: { perModel: true, volumeThreshold: 2 } });
    fake().fault({ status: 500 }, { times: 2 });
    for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: hello }).catch(() => undefined);
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: hello })).rejects.toBeInstanceOf(CircuitOpenError);
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(client.guard.status().breaker).toMatchObject({ state: 'open', breakers: { 'default:gpt-4o-mini': 'open', 'default:gpt-4o': 'closed' } });
  });

  test('breaker: false lets every call through', async () => {
    const client = createGuardedClient(openaiFor(fake()), { ...noRetry, breaker: false });
    fake().fault({ status: 500 }, { times: 20 });
    for (let i = 0; i < 20; i++) await client.chat.completions.create({ model: GPT, messages: hello }).catch(() => undefined);
    expect(fake().stats.requests).toBe(20);
  });
});
