import { RateLimitExceededError } from '../../lib';
import { GuardEmitter } from '../../lib/events';
import { RateLimitStage } from '../../lib/stages/rate-limit';
import { TrafficLimiter } from '../../lib/limiter/traffic-limiter';
import { resolveConfig } from '../../lib/config/resolve';
import type { GuardOptions } from '../../lib/config/options';
import { openaiAdapter } from '../../lib/providers/openai';
import { callContext, tappedJson } from '../support/calls';

const body = { model: 'gpt-4o', max_tokens: 10, messages: [] };
const url = 'http://provider.test/v1/chat/completions';

function rateLimit(options: GuardOptions) {
  const { config } = resolveConfig(options, {}, 'openai');
  const limiter = new TrafficLimiter({ config, emitter: new GuardEmitter(() => {}), provider: 'openai' });
  return { stage: new RateLimitStage(limiter), limiter, call: () => callContext(body, { ...options, adapter: openaiAdapter, url }) };
}

const answerAfter = (ms: number) => async () => {
  await new Promise((r) => setTimeout(r, ms));
  return new Response('{}', { status: 400 });
};

describe('RateLimitStage alone', () => {
  it('maxConcurrent 1: the second call waits for the first answer, and its wait is reported', async () => {
    const { stage, limiter, call } = rateLimit({ limits: { maxConcurrent: 1, adaptive: false } });
    const starts: number[] = [];
    const next = jest.fn(async () => {
      starts.push(performance.now());
      return answerAfter(60)();
    });
    const [a, b] = [call(), call()];
    await Promise.all([stage.run(a, next), stage.run(b, next)]);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(55);
    expect(b.report.queuedMs).toBeGreaterThanOrEqual(50);
    expect(a.report.queuedMs).toBeLessThan(20);
    await limiter.close();
  });

  it('a JSON answer frees the slot at its headers; the body is read later', async () => {
    const { stage, limiter, call } = rateLimit({ limits: { maxConcurrent: 1, adaptive: false } });
    const first = call();
    const response = await stage.run(first, async (c) => tappedJson(c, { choices: [], usage: { prompt_tokens: 3, completion_tokens: 2 } }));
    expect(limiter.status().running).toBe(0);
    await response.json();
    await limiter.close();
  });

  it('a full queue is refused before anything inner runs', async () => {
    const { stage, limiter, call } = rateLimit({ limits: { maxConcurrent: 1, maxQueue: 0, adaptive: false } });
    const next = jest.fn(answerAfter(50));
    const held = stage.run(call(), next);
    await expect(stage.run(call(), next)).rejects.toBeInstanceOf(RateLimitExceededError);
    await held;
    expect(next).toHaveBeenCalledTimes(1);
    await limiter.close();
  });

  it("a provider 429 pauses every call until its Retry-After (adaptive mode)", async () => {
    const { stage, limiter, call } = rateLimit({ limits: { maxConcurrent: 10 } });
    await stage.run(call(), async () => new Response('{}', { status: 429, headers: { 'retry-after-ms': '200' } }));
    expect(limiter.status().paused).toBe(true);
    const started = performance.now();
    await stage.run(call(), async () => new Response('{}', { status: 400 }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(180);
    await limiter.close();
  });
});
