import { anthropicAdapter as adapter } from '../../lib/providers/anthropic';
import { fixture, jsonFixture, readStream, type RecordedResponse } from '../support/fixtures';

const URL = 'https://api.anthropic.com/v1/messages';

describe('anthropic adapter: requests', () => {
  test('messages: model, max_tokens, stream', () => {
    const r = adapter.parseRequest(URL, 'POST', JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 1024, stream: true, messages: [] }));
    expect(r).toMatchObject({ endpoint: 'messages', model: 'claude-sonnet-4-6', maxOutputTokens: 1024, maxOutputTokensField: 'max_tokens', stream: true, billable: true, streamReportsUsage: true });
  });

  test('beta messages (query string), count_tokens, batches, GET', () => {
    expect(adapter.parseRequest(`${URL}?beta=true`, 'post', '{"model":"m","max_tokens":5}').endpoint).toBe('messages');
    expect(adapter.parseRequest(`${URL}/count_tokens`, 'POST', '{"model":"m"}')).toMatchObject({ endpoint: 'count_tokens', billable: false });
    // Batches are guarded by the cost stage on their own terms, not as one billable call.
    expect(adapter.parseRequest(`${URL}/batches`, 'POST', '{"requests":[]}')).toMatchObject({ endpoint: 'batches', billable: false });
    expect(adapter.parseRequest(`${URL}/batches/msgbatch_1/results`, 'GET', undefined)).toMatchObject({ endpoint: 'batch_results', billable: false });
    expect(adapter.parseRequest(`${URL}/batches/msgbatch_1`, 'GET', undefined)).toMatchObject({ endpoint: 'other' });
    expect(adapter.parseRequest('https://api.anthropic.com/v1/models', 'GET', undefined)).toMatchObject({ endpoint: 'other', body: undefined });
  });

  test('a body that is not JSON is tolerated', () => {
    expect(adapter.parseRequest(URL, 'POST', '{not json')).toMatchObject({ endpoint: 'messages', model: undefined, body: undefined });
  });

  test('clamp rewrites max_tokens only', () => {
    const r = adapter.parseRequest(URL, 'POST', JSON.stringify({ model: 'm', max_tokens: 4096, messages: [{ role: 'user', content: 'x' }] }));
    expect(adapter.withMaxOutputTokens(r, 100)).toEqual({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: 'x' }] });
  });
});

describe('anthropic adapter: usage', () => {
  test('JSON: input includes cache reads and both cache-write durations', () => {
    const usage = adapter.usageFromJson(adapter.parseRequest(URL, 'POST', '{}'), jsonFixture('anthropic/message.json'));
    expect(usage).toEqual({ inputTokens: 12 + 2048 + 4096, outputTokens: 10, cacheReadTokens: 4096, cacheWriteTokens: 1024, cacheWrite1hTokens: 1024 });
  });

  test.each([1, 7, 64, 100_000])('SSE in %i-byte pieces: final usage from message_delta (cumulative)', (size) => {
    const request = adapter.parseRequest(URL, 'POST', '{"model":"claude-sonnet-4-6","max_tokens":500,"stream":true}');
    expect(readStream(adapter, request, fixture('anthropic/stream.sse'), size)).toEqual({ inputTokens: 472 + 1200, outputTokens: 89, cacheReadTokens: 1200 });
  });

  test('mid-stream, output is estimated from the deltas (thinking, text, tool JSON) and marked so', () => {
    const request = adapter.parseRequest(URL, 'POST', '{"stream":true}');
    const sse = fixture('anthropic/stream.sse');
    const cut = sse.indexOf('event: message_delta');
    const usage = readStream(adapter, request, sse.slice(0, cut), 50);
    expect(usage!.estimated).toBe(true);
    expect(usage!.inputTokens).toBe(1672);
    // ~150 characters of deltas: somewhere near 40 tokens, never the 2 reported at message_start.
    expect(usage!.outputTokens).toBeGreaterThan(25);
    expect(usage!.outputTokens).toBeLessThan(89);
  });
});

describe('anthropic adapter: errors and limits', () => {
  const recorded = jsonFixture<RecordedResponse>('anthropic/headers-429.json');
  const headers = new Headers(recorded.headers);
  const now = Date.parse(recorded.now!);

  test.each([
    [429, {}, { retryable: true, fault: false, reason: 'rate_limit' }],
    [529, {}, { retryable: true, fault: true, reason: 'overloaded' }],
    [500, {}, { retryable: true, fault: true, reason: 'server_error' }],
    [408, {}, { retryable: true, fault: false, reason: 'request_timeout' }],
    [409, {}, { retryable: true, fault: false, reason: 'conflict' }],
    [400, {}, { retryable: false, fault: false, reason: 'client_error' }],
    [401, {}, { retryable: false, fault: false, reason: 'client_error' }],
    [400, { 'x-should-retry': 'true' }, { retryable: true, fault: false, reason: 'client_error' }],
    [503, { 'x-should-retry': 'false' }, { retryable: false, fault: true, reason: 'server_error' }],
  ])('status %i %p → %p', (status, h, expected) => {
    expect(adapter.classifyError(status, new Headers(h as Record<string, string>), undefined)).toEqual(expected);
  });

  test('retry-after in seconds', () => {
    expect(adapter.retryAfterMs(headers, now)).toBe(17_000);
  });

  test('rate-limit headers with RFC 3339 reset times', () => {
    expect(adapter.rateLimits(headers, now)).toEqual({
      requests: { limit: 4000, remaining: 0, resetMs: 17_000 },
      tokens: { limit: 2_800_000, remaining: 2_799_100, resetMs: 1000 },
      inputTokens: { limit: 2_000_000, remaining: 1_999_500, resetMs: 1000 },
      outputTokens: { limit: 800_000, remaining: 799_600, resetMs: 500 },
    });
    expect(adapter.rateLimits(new Headers({ 'content-type': 'application/json' }), now)).toBeUndefined();
  });
});
