import { RateLimitExceededError } from '../../lib';
import { GuardEmitter, type GuardEventMap } from '../../lib/events';
import { RetryStage } from '../../lib/stages/retry';
import { callContext } from '../support/calls';

const FAST = { retry: { retries: 3, minDelayMs: 1, maxDelayMs: 5 } };
const body = { model: 'claude-haiku-4-5', max_tokens: 10, messages: [] };

function retryStage() {
  const emitter = new GuardEmitter(() => {});
  const retries: Array<GuardEventMap['retry']> = [];
  emitter.on('retry', (e) => retries.push(e));
  let counted = 0;
  return { stage: new RetryStage({ emitter, onRetry: () => void counted++ }), retries, counted: () => counted };
}

/** A stub for the inner stages that answers with `statuses` in turn. */
function answering(...statuses: Array<number | Error>) {
  let i = 0;
  return jest.fn(async () => {
    const s = statuses[Math.min(i++, statuses.length - 1)]!;
    if (s instanceof Error) throw s;
    return new Response(s === 200 ? '{}' : '{"error":{}}', { status: s, headers: s === 429 ? { 'retry-after': '0' } : {} });
  });
}

describe('RetryStage alone', () => {
  it('retries a 429 and a 503, then returns the success', async () => {
    const { stage, retries, counted } = retryStage();
    const next = answering(429, 503, 200);
    const response = await stage.run(callContext(body, FAST), next);
    expect(response.status).toBe(200);
    expect(next).toHaveBeenCalledTimes(3);
    expect(retries.map((r) => r.reason)).toEqual(['rate_limit', 'server_error']);
    expect(counted()).toBe(2);
  });

  it('returns a 400 at once, marked so the SDK never retries it either', async () => {
    const { stage } = retryStage();
    const next = answering(400);
    const response = await stage.run(callContext(body, FAST), next);
    expect(response.status).toBe(400);
    expect(response.headers.get('x-should-retry')).toBe('false');
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('gives the last error response back when retries run out', async () => {
    const { stage } = retryStage();
    const next = answering(503);
    const response = await stage.run(callContext(body, { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 2 } }), next);
    expect(response.status).toBe(503);
    expect(next).toHaveBeenCalledTimes(3);
  });

  it('never retries a guard refusal from inside (a full queue, an open breaker)', async () => {
    const { stage } = retryStage();
    const refusal = new RateLimitExceededError('queue full', { reason: 'queue_full' });
    const next = answering(refusal);
    await expect(stage.run(callContext(body, FAST), next)).rejects.toBe(refusal);
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('a Retry-After longer than maxRetryAfterMs fails at once with the provider’s answer', async () => {
    const { stage } = retryStage();
    const next = jest.fn(async () => new Response('{}', { status: 429, headers: { 'retry-after': '120' } }));
    const response = await stage.run(callContext(body, { retry: { retries: 3, maxRetryAfterMs: 1000 } }), next);
    expect(response.status).toBe(429);
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('retries a lost connection, and uses the config the call started under', async () => {
    const { stage } = retryStage();
    const next = answering(new TypeError('fetch failed'), 200);
    expect((await stage.run(callContext(body, FAST), next)).status).toBe(200);
    const none = answering(new TypeError('fetch failed'), 200);
    await expect(stage.run(callContext(body, { retry: 0 }), none)).rejects.toThrow('fetch failed');
  });
});
