import { openaiAdapter as adapter } from '../../lib/providers/openai';
import { fixture, jsonFixture, readStream, type RecordedResponse } from '../support/fixtures';

const BASE = 'https://api.openai.com/v1';
const parse = (path: string, body: unknown) => adapter.parseRequest(BASE + path, 'POST', JSON.stringify(body));

describe('openai adapter: requests', () => {
  test('chat: max_completion_tokens over max_tokens, include_usage', () => {
    expect(parse('/chat/completions', { model: 'gpt-4o', max_completion_tokens: 50, max_tokens: 10, stream: true, stream_options: { include_usage: true } })).toMatchObject({
      endpoint: 'chat',
      maxOutputTokens: 50,
      maxOutputTokensField: 'max_completion_tokens',
      stream: true,
      streamReportsUsage: true,
    });
    expect(parse('/chat/completions', { model: 'gpt-4o', max_tokens: 10, stream: true })).toMatchObject({ maxOutputTokens: 10, maxOutputTokensField: 'max_tokens', streamReportsUsage: false });
    expect(parse('/chat/completions', { model: 'gpt-4o' })).toMatchObject({ maxOutputTokens: undefined, maxOutputTokensField: 'max_completion_tokens' });
  });

  test('responses, embeddings, legacy completions, other', () => {
    expect(parse('/responses', { model: 'o3', max_output_tokens: 300 })).toMatchObject({ endpoint: 'responses', maxOutputTokens: 300, streamReportsUsage: true });
    expect(parse('/embeddings', { model: 'text-embedding-3-small', input: 'x' })).toMatchObject({ endpoint: 'embeddings', billable: true, maxOutputTokens: undefined });
    expect(parse('/completions', { model: 'gpt-3.5-turbo-instruct', max_tokens: 16 })).toMatchObject({ endpoint: 'completions', maxOutputTokens: 16 });
    expect(adapter.parseRequest(`${BASE}/responses/resp_1`, 'GET', undefined)).toMatchObject({ endpoint: 'other', billable: false });
    expect(parse('/files', {})).toMatchObject({ endpoint: 'other', billable: false });
  });

  test('Azure OpenAI: the deployment in the path is the model', () => {
    const r = adapter.parseRequest('https://x.openai.azure.com/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21', 'POST', '{"messages":[]}');
    expect(r).toMatchObject({ endpoint: 'chat', model: 'my-gpt4o' });
  });
});

describe('openai adapter: usage', () => {
  test('chat JSON: cached input and reasoning', () => {
    expect(adapter.usageFromJson(parse('/chat/completions', {}), jsonFixture('openai/chat.json'))).toEqual({ inputTokens: 1117, outputTokens: 46, cacheReadTokens: 1024 });
  });

  test('responses JSON: reasoning tokens are part of output', () => {
    expect(adapter.usageFromJson(parse('/responses', {}), jsonFixture('openai/responses.json'))).toEqual({ inputTokens: 328, outputTokens: 1052, reasoningTokens: 960 });
  });

  test('embeddings JSON', () => {
    expect(adapter.usageFromJson(parse('/embeddings', {}), jsonFixture('openai/embeddings.json'))).toEqual({ inputTokens: 8, outputTokens: 0 });
  });

  test.each([1, 13, 100_000])('chat stream with include_usage in %i-byte pieces: usage from the last chunk', (size) => {
    const usage = readStream(adapter, parse('/chat/completions', { stream: true, stream_options: { include_usage: true } }), fixture('openai/chat-stream-usage.sse'), size);
    expect(usage).toEqual({ inputTokens: 9, outputTokens: 9 });
  });

  test('chat stream without usage: output estimated from content and tool-call arguments', () => {
    const usage = readStream(adapter, parse('/chat/completions', { stream: true }), fixture('openai/chat-stream-tools.sse'), 40);
    expect(usage).toMatchObject({ estimated: true, inputTokens: 0 });
    expect(usage!.outputTokens).toBeGreaterThanOrEqual(6);
  });

  test('chat stream from a host that counts on every chunk (vLLM continuous_usage_stats): the last count, complete only at [DONE]', () => {
    const reader = adapter.createStreamUsageReader(parse('/chat/completions', { stream: true, stream_options: { include_usage: true } }), () => 1);
    const chunk = (content: string, completion: number) => JSON.stringify({ choices: [{ index: 0, delta: { content } }], usage: { prompt_tokens: 9, completion_tokens: completion, total_tokens: 9 + completion } });
    reader.onEvent(undefined, chunk('Hello', 1));
    expect(reader.complete!()).toBe(false);
    expect(reader.usage()).toEqual({ inputTokens: 9, outputTokens: 1, estimated: true });
    reader.onEvent(undefined, chunk(' there', 2));
    reader.onEvent(undefined, chunk(' friend', 3));
    expect(reader.complete!()).toBe(false);
    reader.onEvent(undefined, '[DONE]');
    expect(reader.complete!()).toBe(true);
    expect(reader.usage()).toEqual({ inputTokens: 9, outputTokens: 3 });
    // The chunk that finishes the choices carries the final count (vLLM, DeepSeek): complete there.
    const finishing = adapter.createStreamUsageReader(parse('/chat/completions', { stream: true }), () => 1);
    finishing.onEvent(undefined, chunk('Hello', 1));
    finishing.onEvent(undefined, JSON.stringify({ choices: [{ index: 0, delta: { content: '' }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } }));
    expect(finishing.complete!()).toBe(true);
    expect(finishing.usage()).toEqual({ inputTokens: 9, outputTokens: 2 });
  });

  test('chat stream with include_usage: complete at the usage chunk, before [DONE]', () => {
    const reader = adapter.createStreamUsageReader(parse('/chat/completions', { stream: true, stream_options: { include_usage: true } }), () => 1);
    reader.onEvent(undefined, JSON.stringify({ choices: [{ index: 0, delta: { content: 'Hi' } }] }));
    expect(reader.complete!()).toBe(false);
    reader.onEvent(undefined, JSON.stringify({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 } }));
    expect(reader.complete!()).toBe(true);
    expect(reader.usage()).toEqual({ inputTokens: 9, outputTokens: 1 });
  });

  test.each([3, 100_000])('responses stream in %i-byte pieces: usage from response.completed', (size) => {
    expect(readStream(adapter, parse('/responses', { stream: true }), fixture('openai/responses-stream.sse'), size)).toEqual({ inputTokens: 37, outputTokens: 11 });
  });
});

describe('openai adapter: errors and limits', () => {
  const rate = jsonFixture<RecordedResponse>('openai/headers-429-rate.json');
  const quota = jsonFixture<RecordedResponse>('openai/headers-429-quota.json');

  test('429 rate limit is retryable; 429 insufficient_quota is not (waiting will not help)', () => {
    expect(adapter.classifyError(429, new Headers(rate.headers), JSON.stringify(rate.body))).toEqual({ retryable: true, fault: false, reason: 'rate_limit' });
    expect(adapter.classifyError(429, new Headers(quota.headers), JSON.stringify(quota.body))).toEqual({ retryable: false, fault: false, reason: 'insufficient_quota' });
  });

  test('retry-after-ms wins over retry-after', () => {
    expect(adapter.retryAfterMs(new Headers(rate.headers))).toBe(742);
  });

  test.each([
    [{ 'retry-after': '3' }, 3000],
    [{ 'retry-after': '0.5' }, 500],
    [{ 'retry-after': 'Sun, 22 Nov 2026 20:00:30 GMT' }, 30_000],
    [{ 'retry-after': 'soon' }, undefined],
    [{ 'retry-after-ms': 'x', 'retry-after': '2' }, 2000],
    [{ 'retry-after': '-1' }, undefined],
    [{}, undefined],
  ])('retry headers %p → %p ms', (h, expected) => {
    expect(adapter.retryAfterMs(new Headers(h as Record<string, string>), Date.parse('2026-11-22T20:00:00Z'))).toBe(expected);
  });

  test('rate-limit headers with Go durations (6m0s, 6ms)', () => {
    expect(adapter.rateLimits(new Headers(rate.headers))).toEqual({
      requests: { limit: 10_000, remaining: 9999, resetMs: 6 },
      tokens: { limit: 2_000_000, remaining: 0, resetMs: 360_000 },
    });
  });
});
