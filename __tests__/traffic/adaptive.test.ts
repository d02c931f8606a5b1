import OpenAI from 'openai';
import { createGuardedClient, type GuardEventMap } from '../../lib';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from '../support/clients';
import { bucketExcess, arrivalsOf, sleep } from '../support/arrivals';
import { PROBE_PATIENCE_MS, QUIET_SYNC_MS } from '../../lib/limiter/adaptive';

const fake = useFakeProvider();

describe('adaptive mode', () => {
  test('with no limits set: one probe first, then the provider’s advertised rate, without 429s', async () => {
    fake().configure({ limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 50 } });
    expect(client.guard.status().limiter.mode).toBe('probing');
    const started = performance.now();
    await Promise.all(Array.from({ length: 30 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    const elapsed = performance.now() - started;
    const arrivals = arrivalsOf(fake().records);
    // The probe went alone: the second request left only after the first answer came back.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThan(0.5);
    expect(fake().stats.byStatus[429] ?? 0).toBeLessThanOrEqual(1);
    expect(client.guard.status().limiter).toMatchObject({ mode: 'learned', learned: { requests: { limitPerMinute: 600 } } });
    // Ideal: 10 at once, then 10/s → 2.0 s for 30 (the probe's round trip and the 2% margin aside).
    expect(elapsed).toBeLessThan(2000 * 1.35);
  });

  test('a client made well before its first calls (a server at boot) sends no 429 either', async () => {
    fake().configure({ limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 50 } });
    // Its refill once counted from here: the first tick after it learned the rate added up to four
    // periods at once, and the calls it let through met the provider's empty bucket.
    await sleep(500);
    await Promise.all(Array.from({ length: 30 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(fake().stats.byStatus[429] ?? 0).toBe(0);
    expect(fake().stats.byStatus[200]).toBe(30);
  });

  test('a first call that answers late (a long non-streaming generation) holds the others back for about a second, not until it ends', async () => {
    fake().configure({ limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 50 } });
    const started = performance.now();
    let longEnded = Infinity;
    // The first call is the probe; its answer (and the limits in its headers) comes after 5 s.
    const long = client.chat.completions.create({ model: GPT, messages: hello }, { headers: { 'x-fake-latency-ms': '5000' } }).then(() => (longEnded = performance.now() - started));
    const ended = await Promise.all(Array.from({ length: 20 }, () => client.chat.completions.create({ model: GPT, messages: hello }).then(() => performance.now() - started)));
    await long;
    // Every short call was answered while the long one still ran: after one more probe
    // (PROBE_PATIENCE_MS) answered, the rest went at the learned rate.
    expect(Math.max(...ended)).toBeLessThan(longEnded);
    expect(Math.max(...ended)).toBeLessThan(PROBE_PATIENCE_MS + 2500);
    expect(fake().stats.byStatus[429] ?? 0).toBe(0);
    expect(client.guard.status().limiter).toMatchObject({ mode: 'learned', learned: { requests: { limitPerMinute: 600 } } });
  });

  test('long calls (answered a second after the provider counted them) keep to the learned rate, no 429', async () => {
    fake().configure({ latencyMs: 1000, limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 100 } });
    const started = performance.now();
    await Promise.all(Array.from({ length: 40 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    const elapsed = performance.now() - started;
    expect(fake().stats.byStatus[429] ?? 0).toBe(0);
    // Ideal: the probe's second, 10 at once, then 10/s, plus one call's second: 5 s (6.4 s before).
    expect(elapsed).toBeLessThan(5000 * 1.25);
  });

  test('Anthropic token limits are learned from the headers and followed', async () => {
    fake().configure({ limits: { inputTokensPerMinute: 30_000 } });
    const client = createGuardedClient(anthropicFor(fake()), { limits: { maxConcurrent: 50 } });
    const prompt = [{ role: 'user' as const, content: 'word '.repeat(160) }];
    await Promise.all(Array.from({ length: 8 }, () => client.messages.create({ model: CLAUDE, max_tokens: 10, messages: prompt })));
    expect(fake().stats.byStatus[429] ?? 0).toBeLessThanOrEqual(1);
    expect(client.guard.status().limiter.learned).toMatchObject({ inputTokens: { limitPerMinute: 30_000 } });
    const records = fake().records.filter((r) => r.status === 200);
    expect(bucketExcess(arrivalsOf(records), 500, 500, records.map((r) => r.inputTokens))).toBeLessThanOrEqual(207);
  });

  test('a 429 pauses the whole limiter until Retry-After: nothing is sent in between', async () => {
    fake().configure({ latencyMs: 20 });
    const sent: number[] = []; // when the guard handed each request to the network, on the fake's clock
    const countingFetch: typeof fetch = (input, init) => {
      sent.push(fake().now());
      return fetch(input, init);
    };
    const client = createGuardedClient(openaiFor(fake(), { fetch: countingFetch }), { limits: { requestsPerMinute: 6000, maxConcurrent: 4 }, retry: { retries: 3 } });
    const events: Array<GuardEventMap['rate-limited']> = [];
    let seenAt = 0; // when the guard saw the 429, on the fake's clock
    client.guard.on('rate-limited', (e) => {
      events.push(e);
      if (e.source === 'provider') seenAt = fake().now();
    });
    fake().fault({ status: 429, headers: { 'retry-after-ms': '400' } }, { times: 1 });
    await Promise.all(Array.from({ length: 12 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(seenAt).toBeGreaterThan(0);
    // The guard sends nothing until the Retry-After is over (a call already past the limiter when
    // the 429 came back may still leave in the same turn of the event loop).
    expect(sent.filter((at) => at > seenAt + 5 && at < seenAt + 395).map((at) => at - seenAt)).toEqual([]);
    // The server sees the same: calls already on their way land soon after (how soon depends on a
    // loaded machine's sockets: 24 ms seen in CI), then nothing until the pause is over.
    const during = fake().records.filter((r) => r.at > seenAt + 100 && r.at < seenAt + 395);
    expect(during.map((r) => r.at - seenAt)).toEqual([]);
    expect(fake().records.filter((r) => r.at > seenAt + 395).length).toBeGreaterThanOrEqual(7);
    expect(events.some((e) => e.source === 'provider' && e.waitMs === 400)).toBe(true);
    // One 429, not a storm: everything else went through.
    expect(fake().stats.byStatus).toEqual({ 200: 12, 429: 1 });
  });

  describe('a 429 from the request rate, with that rate known', () => {
    // Anthropic's Retry-After is whole seconds; the request bucket refills one in 1/20 s here.
    const exhausted = { 'retry-after': '1', 'anthropic-ratelimit-requests-limit': '1200', 'anthropic-ratelimit-requests-remaining': '0' };

    /** `faults` 429s in a row: the first on the first call, each next one on the first call sent after the previous. */
    async function run(faults: number) {
      fake().configure({ latencyMs: 10 });
      const client = createGuardedClient(anthropicFor(fake()), { limits: { requestsPerMinute: 1200, maxConcurrent: 1 }, retry: { retries: 3 } });
      const seen: number[] = []; // when the guard met each 429, on the fake's clock
      client.guard.on('rate-limited', (e) => {
        if (e.source !== 'provider') return;
        seen.push(fake().now());
        if (seen.length < faults) fake().fault({ status: 429, headers: exhausted });
      });
      fake().fault({ status: 429, headers: exhausted });
      await Promise.all(Array.from({ length: 10 }, () => client.messages.create({ model: CLAUDE, max_tokens: 10, messages: hello })));
      expect(fake().stats.byStatus).toEqual({ 200: 10, 429: faults });
      return seen;
    }

    test('pauses the others only as long as the bucket needs to refill one request, not the whole Retry-After', async () => {
      const [at] = await run(1);
      const next = fake().records.find((r) => r.at > at! + 15);
      expect(next!.at - at!).toBeLessThan(400);
    });

    test('a second 429 right after such a short pause: the next pause is the whole Retry-After', async () => {
      const seen = await run(2);
      expect(seen).toHaveLength(2);
      const afterSecond = fake().records.filter((r) => r.at > seen[1]! + 15 && r.at < seen[1]! + 950);
      expect(afterSecond).toEqual([]);
    });
  });

  test('a Retry-After longer than maxRetryAfterMs fails that call at once, and still pauses the limiter', async () => {
    const client = createGuardedClient(openaiFor(fake()), { limits: { requestsPerMinute: 6000, maxWaitMs: 500 }, retry: { maxRetryAfterMs: 100 } });
    fake().fault({ status: 429, headers: { 'retry-after': '2' } });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(client.guard.status().limiter.paused).toBe(true);
    // The next call would wait 2 s, more than maxWaitMs: refused locally, nothing sent.
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toMatchObject({ code: 'rate_limited', reason: 'max_wait' });
    expect(fake().stats.requests).toBe(1);
  });

  test('far from its limits the guard still reads the headers at least every 100 ms: another client of the key draining it is seen', async () => {
    fake().configure({ limits: { requestsPerMinute: 6000 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 50 } });
    const remaining = () => client.guard.status().limiter.learned?.requests?.remaining;
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(remaining()).toBeGreaterThanOrEqual(98);
    // Another client of the same key takes 60 of the provider's 100; the guard's own bucket stays full.
    const other = openaiFor(fake(), { maxRetries: 0 });
    await Promise.all(Array.from({ length: 60 }, () => other.chat.completions.create({ model: GPT, messages: hello })));
    await sleep(QUIET_SYNC_MS);
    await client.chat.completions.create({ model: GPT, messages: hello });
    // About 40 left, plus what refilled meanwhile (100/s): far below the 98 of the last read.
    expect(remaining()).toBeLessThan(80);
    expect(fake().stats.byStatus[429] ?? 0).toBe(0);
  });

  test('a host that sends no limit headers at first and then does: its limits are learned within 100 ms', async () => {
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 20 } });
    await Promise.all(Array.from({ length: 5 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(client.guard.status().limiter.mode).toBe('unlimited');
    fake().configure({ limits: { requestsPerMinute: 600 } });
    await sleep(QUIET_SYNC_MS);
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(client.guard.status().limiter).toMatchObject({ mode: 'learned', learned: { requests: { limitPerMinute: 600 } } });
  });

  test('adaptive: false ignores the headers', async () => {
    fake().configure({ limits: { requestsPerMinute: 600 } });
    const client = createGuardedClient(openaiFor(fake()), { limits: { adaptive: false } });
    await client.chat.completions.create({ model: GPT, messages: hello });
    expect(client.guard.status().limiter).toMatchObject({ mode: 'unlimited' });
    expect(client.guard.status().limiter.learned).toBeUndefined();
  });

  test('a provider that sends no limit headers: after the probe, nothing holds calls back', async () => {
    const client = createGuardedClient(openaiFor(fake()), { limits: { maxConcurrent: 20 } });
    // Long enough that the nine calls after the probe overlap at the server even on a busy host.
    fake().configure({ latencyMs: 200 });
    await Promise.all(Array.from({ length: 10 }, () => client.chat.completions.create({ model: GPT, messages: hello })));
    expect(client.guard.status().limiter.mode).toBe('unlimited');
    expect(fake().stats.maxInFlight).toBeGreaterThanOrEqual(8);
  });
});
