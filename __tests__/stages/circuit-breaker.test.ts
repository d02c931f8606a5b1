import { CircuitOpenError } from '../../lib';
import { GuardEmitter, type GuardEventMap } from '../../lib/events';
import { CircuitBreakerStage } from '../../lib/stages/circuit-breaker';
import { resolveConfig } from '../../lib/config/resolve';
import { callContext } from '../support/calls';

const body = { model: 'claude-haiku-4-5', max_tokens: 10, messages: [] };
const options = { breaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 } };

function breakerStage(opts = options) {
  const emitter = new GuardEmitter(() => {});
  const events: Array<GuardEventMap['breaker']> = [];
  emitter.on('breaker', (e) => events.push(e));
  const { config } = resolveConfig(opts, {}, 'anthropic');
  return { stage: new CircuitBreakerStage({ emitter, provider: 'anthropic', settings: config.breaker }), events, config };
}

describe('CircuitBreakerStage alone', () => {
  it('opens after provider faults: then refuses without calling inward', async () => {
    const { stage, events } = breakerStage();
    const failing = jest.fn(async () => new Response('{}', { status: 503 }));
    for (let i = 0; i < 3; i++) expect((await stage.run(callContext(body, options), failing)).status).toBe(503);
    await new Promise((r) => setImmediate(r));
    expect(events.map((e) => e.state)).toEqual(['open']);
    const next = jest.fn();
    const error = await stage.run(callContext(body, options), next).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect((error as CircuitOpenError).retryAfterMs).toBeGreaterThan(59_000);
    expect(next).not.toHaveBeenCalled();
    stage.close();
  });

  it('counts successes in the error rate: 3 good answers and 3 faults stay closed (50 %), a fourth fault opens it (57 % > 50 %)', async () => {
    const { stage, events, config } = breakerStage();
    const answer = (status: number) => async () => new Response('{}', { status });
    for (const status of [200, 200, 200, 503, 503, 503]) await stage.run(callContext(body, options), answer(status));
    await new Promise((r) => setImmediate(r));
    expect(stage.status(config).state).toBe('closed');
    await stage.run(callContext(body, options), answer(503));
    await new Promise((r) => setImmediate(r));
    expect(events.map((e) => e.state)).toEqual(['open']);
    stage.close();
  });

  it('successes spread over time still dilute faults (they reach opossum in batches)', async () => {
    const { stage, config } = breakerStage();
    const answer = (status: number) => async () => new Response('{}', { status });
    // Three successes 150 ms apart: each batch is handed over on a later success or before a fault.
    for (let i = 0; i < 3; i++) {
      await stage.run(callContext(body, options), answer(200));
      await new Promise((r) => setTimeout(r, 150));
    }
    for (let i = 0; i < 3; i++) await stage.run(callContext(body, options), answer(503));
    await new Promise((r) => setImmediate(r));
    expect(stage.status(config).state).toBe('closed');
    stage.close();
  });

  it('successes that left the rolling window no longer dilute faults', async () => {
    const windowed = { breaker: { ...options.breaker, rollingWindowMs: 200 } };
    const { stage, events } = breakerStage(windowed);
    const answer = (status: number) => async () => new Response('{}', { status });
    for (let i = 0; i < 5; i++) await stage.run(callContext(body, windowed), answer(200));
    await new Promise((r) => setTimeout(r, 300));
    // Counted, the five successes would hold 3 faults at 37 %; out of the window, the faults are 100 %.
    for (let i = 0; i < 3; i++) await stage.run(callContext(body, windowed), answer(503));
    await new Promise((r) => setImmediate(r));
    expect(events.map((e) => e.state)).toEqual(['open']);
    stage.close();
  });

  it('does not count 4xx and 429 answers as faults', async () => {
    const { stage, events } = breakerStage();
    for (const status of [400, 429, 404, 429, 401]) await stage.run(callContext(body, options), async () => new Response('{}', { status }));
    expect(events).toEqual([]);
    expect(stage.status(breakerStage().config).state).toBe('closed');
    stage.close();
  });

  it('a live change of its thresholds starts new breakers (closed)', async () => {
    const { stage, config } = breakerStage();
    for (let i = 0; i < 3; i++) await stage.run(callContext(body, options), async () => new Response('{}', { status: 500 }));
    await new Promise((r) => setImmediate(r));
    expect(stage.status(config).state).toBe('open');
    const next = resolveConfig({ breaker: { volumeThreshold: 10 } }, {}, 'anthropic').config;
    stage.reconfigure(next, config);
    expect(stage.status(next).state).toBe('closed');
    expect((await stage.run(callContext(body, { breaker: { volumeThreshold: 10 } }), async () => new Response('{}'))).status).toBe(200);
    stage.close();
  });

  it('breaker.enabled false: everything goes through', async () => {
    const { stage } = breakerStage({ breaker: { enabled: false } } as never);
    for (let i = 0; i < 6; i++) expect((await stage.run(callContext(body, { breaker: false }), async () => new Response('{}', { status: 500 }))).status).toBe(500);
    stage.close();
  });
});
