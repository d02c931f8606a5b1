import Anthropic from '@anthropic-ai/sdk';
import {
  BudgetExceededError,
  CircuitOpenError,
  createGuardedClient,
  guardErrorToHttp,
  RateLimitExceededError,
  SharedStateUnavailableError,
  UnpricedModelError,
} from '../lib';
import { createApp, guardFor } from '../examples/express-server';
import { ANTHROPIC_KEY, CLAUDE, anthropicFor, hello, useFakeProvider } from './support/clients';
import { listenLocally } from './support/local-server';

const fake = useFakeProvider();

describe('examples/express-server.ts over real HTTP', () => {
  let server: Awaited<ReturnType<typeof listenLocally>>;
  let base: string;
  let anthropic: ReturnType<typeof guardFor>;
  beforeEach(async () => {
    anthropic = guardFor({ apiKey: ANTHROPIC_KEY, baseURL: fake().anthropicBaseURL });
    server = await listenLocally(createApp(anthropic));
    base = server.base;
  });
  afterEach(async () => {
    await server.close();
    await anthropic.guard.close();
  });
  const chat = (user: string) =>
    fetch(`${base}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': user }, body: JSON.stringify({ prompt: 'Hello' }) });

  it('the 11th request in a minute at 10/min gets 429 with Retry-After and X-RateLimit-*, and nothing reaches the provider', async () => {
    for (let i = 0; i < 10; i++) expect((await chat('alice')).status).toBe(200);
    const refused = await chat('alice');
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(5);
    expect(retryAfter).toBeLessThanOrEqual(6);
    expect(refused.headers.get('x-ratelimit-limit')).toBe('10');
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(refused.headers.get('x-ratelimit-reset'))).toBe(retryAfter);
    expect(await refused.json()).toMatchObject({ error: { type: 'rate_limited', reason: 'max_wait', limit: 'perScope.user' } });
    expect(fake().stats.requests).toBe(10);
    // Another user is not held back.
    expect((await chat('bob')).status).toBe(200);
  });

  it('a user over budget gets 402 with a JSON body saying which budget', async () => {
    anthropic.guard.updateConfig({ cost: { budgets: [{ scope: 'user', limitUsd: 0.0001, window: '1d' }] } });
    const res = await chat('carol');
    expect(res.status).toBe(402);
    expect(await res.json()).toMatchObject({ error: { type: 'budget_exceeded', stage: 'pre-call', key: 'user:carol', limitUsd: 0.0001 } });
    expect(fake().stats.requests).toBe(0);
  });

  it('a request without a user is refused by the app before any call', async () => {
    const res = await fetch(`${base}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(401);
  });
});

describe('guardErrorToHttp', () => {
  it('maps each guard error to its status, with Retry-After where known', () => {
    const open = guardErrorToHttp(new CircuitOpenError('open', { breaker: 'default', retryAfterMs: 12_300 }));
    expect(open).toMatchObject({ status: 503, headers: { 'retry-after': '13' }, body: { error: { type: 'circuit_open', retryAfterMs: 12_300 } } });
    expect(guardErrorToHttp(new SharedStateUnavailableError('the budgets')).status).toBe(503);
    expect(guardErrorToHttp(new UnpricedModelError('x', 'openai')).status).toBe(400);
    const queue = guardErrorToHttp(new RateLimitExceededError('full', { reason: 'queue_full', retryAfterMs: 400 }));
    expect(queue.status).toBe(429);
    expect(queue.headers['retry-after']).toBe('1');
    expect(queue.headers['x-ratelimit-limit']).toBeUndefined();
  });

  it('leaves the paid-for response out of a post-call budget error body', () => {
    const error = new BudgetExceededError('over', { stage: 'post-call', scope: 'call', key: 'call', limitUsd: 1, spentUsd: 2, estimatedUsd: 2, costUsd: 2, response: { secret: 'model output' } });
    const answer = guardErrorToHttp(error);
    expect(answer.status).toBe(402);
    expect(JSON.stringify(answer.body)).not.toContain('model output');
  });

  it("passes a provider's 429 on with its Retry-After; other failures say nothing about internals", async () => {
    fake().fault({ status: 429, headers: { 'retry-after': '7' } }, { times: 5 });
    const client = createGuardedClient(anthropicFor(fake()), { retry: 0, limits: { adaptive: false } });
    const error = await client.messages.create({ model: CLAUDE, max_tokens: 16, messages: hello }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    expect(guardErrorToHttp(error)).toMatchObject({ status: 429, headers: { 'retry-after': '7' }, body: { error: { type: 'provider_rate_limited' } } });
    const internal = guardErrorToHttp(new Error('connection string postgres://u:p@db'));
    expect(internal.status).toBe(500);
    expect(JSON.stringify(internal.body)).not.toContain('postgres');
    await client.guard.close();
  });
});
