import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { createGuardedClient, type GuardEventMap } from '../lib';
import { fakeTokens } from '../lib/testing';
import { CLAUDE, GPT, anthropicFor, hello, openaiFor, useFakeProvider } from './support/clients';

const fake = useFakeProvider();

/** Collects `response` events of a guard until the test reads them. */
function responses(client: { guard: { on: (e: 'response', l: (p: GuardEventMap['response']) => void) => () => void } }) {
  const seen: GuardEventMap['response'][] = [];
  client.guard.on('response', (e) => seen.push(e));
  return seen;
}

describe('Anthropic SDK through the guard', () => {
  test('messages.create (JSON): same result, one request, usage seen', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const events = responses(client);
    const message = await client.messages.create({ model: CLAUDE, max_tokens: 8, messages: hello });
    expect(message.content[0]).toMatchObject({ type: 'text' });
    expect(message.usage.output_tokens).toBe(8);
    expect(fake().records).toHaveLength(1);
    expect(fake().records[0]).toMatchObject({ endpoint: 'messages', model: CLAUDE, status: 200, outputTokens: 8 });
    expect(events).toHaveLength(1);
    expect(events[0]!.usage).toEqual({ inputTokens: fake().records[0]!.inputTokens, outputTokens: 8 });
  });

  test('messages.create with stream: true: events pass through unchanged, usage counted as they flow', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const raw = anthropicFor(fake());
    const events = responses(client);
    const collect = async (c: Anthropic) => {
      const out: string[] = [];
      const stream = await c.messages.create({ model: CLAUDE, max_tokens: 5, stream: true, messages: hello });
      for await (const event of stream) out.push(JSON.stringify(event));
      return out;
    };
    const guarded = await collect(client);
    const plain = await collect(raw);
    // The same event sequence as the plain SDK (ids differ by request).
    expect(guarded.map((e) => e.replace(/msg_\d+/, 'msg'))).toEqual(plain.map((e) => e.replace(/msg_\d+/, 'msg')));
    expect(events[0]!.usage).toMatchObject({ outputTokens: 5 });
    expect(events[0]!.usage!.estimated).toBeUndefined();
  });

  test('messages.stream() helper: finalMessage() and text events', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const events = responses(client);
    const stream = client.messages.stream({ model: CLAUDE, max_tokens: 6, messages: hello });
    let text = '';
    stream.on('text', (t) => (text += t));
    const final = await stream.finalMessage();
    expect(final.usage.output_tokens).toBe(6);
    expect(text).toBe((final.content[0] as { text: string }).text);
    expect(events[0]!.usage!.outputTokens).toBe(6);
  });

  test('messages.countTokens is passed through and not billed', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const count = await client.messages.countTokens({ model: CLAUDE, messages: hello });
    expect(count.input_tokens).toBe(fakeTokens(hello[0]!.content));
    expect(fake().records[0]).toMatchObject({ endpoint: 'count_tokens', inputTokens: 0, costUsd: 0 });
    expect(client.guard.status().totals.costUsd).toBe(0);
  });

  test('.withResponse() and .asResponse() keep headers and body', async () => {
    const client = createGuardedClient(anthropicFor(fake()));
    const { data, response, request_id } = await client.messages.create({ model: CLAUDE, max_tokens: 3, messages: hello }).withResponse();
    expect(response.status).toBe(200);
    expect(request_id).toBe(`req_${fake().records[0]!.id}`);
    expect(data.usage.output_tokens).toBe(3);
    const raw = await client.messages.create({ model: CLAUDE, max_tokens: 4, messages: hello }).asResponse();
    expect(raw.headers.get('request-id')).toBe(`req_${fake().records[1]!.id}`);
    expect(((await raw.json()) as { usage: { output_tokens: number } }).usage.output_tokens).toBe(4);
    expect(client.guard.status().totals.costUsd).toBeCloseTo(fake().stats.billed.usd, 12);
  });

  test("the user's own client is left as it was", async () => {
    const original = anthropicFor(fake(), { maxRetries: 4 });
    const fetchBefore = (original as unknown as { fetch: unknown }).fetch;
    const client = createGuardedClient(original);
    await client.messages.create({ model: CLAUDE, max_tokens: 3, messages: hello });
    expect(original.maxRetries).toBe(4);
    expect((original as unknown as { fetch: unknown }).fetch).toBe(fetchBefore);
    expect((original as unknown as { guard?: unknown }).guard).toBeUndefined();
    expect(client.maxRetries).toBe(0); // the guard's copy: one retry authority
    expect(client).toBeInstanceOf(Anthropic);
  });

  test('the SDK never retries on its own: a 500 with guard retries at 0 is seen once by the server', async () => {
    const client = createGuardedClient(anthropicFor(fake(), { maxRetries: 5 }), { retry: 0 });
    fake().fault({ status: 500 });
    await expect(client.messages.create({ model: CLAUDE, max_tokens: 3, messages: hello })).rejects.toBeInstanceOf(Anthropic.InternalServerError);
    expect(fake().stats.requests).toBe(1);
  });

  test('withOptions() on a guarded client keeps the guard and keeps SDK retries off', async () => {
    const client = createGuardedClient(anthropicFor(fake()), { retry: 0 });
    const copy = client.withOptions({ maxRetries: 7, timeout: 30_000 });
    expect(copy.guard).toBeDefined();
    expect(copy.maxRetries).toBe(0);
    fake().fault({ status: 503 });
    await expect(copy.messages.create({ model: CLAUDE, max_tokens: 3, messages: hello })).rejects.toBeInstanceOf(Anthropic.APIError);
    expect(fake().stats.requests).toBe(1);
    expect(client.guard.status().totals.calls).toBe(1);
  });
});

describe('OpenAI SDK through the guard', () => {
  test('chat.completions.create (JSON)', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const events = responses(client);
    const completion = await client.chat.completions.create({ model: GPT, max_completion_tokens: 7, messages: hello });
    expect(completion.usage!.completion_tokens).toBe(7);
    expect(fake().records[0]).toMatchObject({ endpoint: 'chat', model: GPT, maxTokens: 7 });
    expect(events[0]!.usage).toEqual({ inputTokens: completion.usage!.prompt_tokens, outputTokens: 7 });
  });

  test('chat stream with include_usage: exact usage from the last chunk', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const events = responses(client);
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, stream: true, stream_options: { include_usage: true } });
    let usage: OpenAI.CompletionUsage | undefined | null;
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text.trim().split(' ')).toHaveLength(16);
    expect(events[0]!.usage).toEqual({ inputTokens: usage!.prompt_tokens, outputTokens: 16 });
  });

  test('chat stream without include_usage: the user gets exactly the chunks, usage is estimated from the text', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const events = responses(client);
    const stream = await client.chat.completions.create({ model: GPT, messages: hello, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true); // no usage chunk was injected
    const usage = events[0]!.usage!;
    expect(usage.estimated).toBe(true);
    // Estimated, leaning high: at least what the server sent.
    expect(usage.outputTokens).toBeGreaterThanOrEqual(fake().records[0]!.outputTokens);
    expect(usage.inputTokens).toBeGreaterThanOrEqual(fake().records[0]!.inputTokens);
  });

  test('chat.completions.stream() helper: finalChatCompletion()', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const runner = client.chat.completions.stream({ model: GPT, messages: hello, stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    expect(final.usage!.completion_tokens).toBe(16);
  });

  test('responses.create (JSON and stream)', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const events = responses(client);
    const response = await client.responses.create({ model: GPT, input: 'Say hi', max_output_tokens: 5 });
    expect(response.output_text.trim().split(' ')).toHaveLength(5);
    expect(response.usage!.output_tokens).toBe(5);
    const stream = await client.responses.create({ model: GPT, input: 'Say hi', stream: true });
    let completed: OpenAI.Responses.Response | undefined;
    for await (const event of stream) if (event.type === 'response.completed') completed = event.response;
    expect(completed!.usage!.output_tokens).toBe(16);
    expect(events.map((e) => e.usage!.outputTokens)).toEqual([5, 16]);
  });

  test('embeddings.create (base64 decoding by the SDK still works)', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const events = responses(client);
    const result = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha beta', 'gamma'] });
    expect(result.data).toHaveLength(2);
    expect(result.data[0]!.embedding[0]).toBeCloseTo(0.01, 6);
    expect(events[0]!.usage).toEqual({ inputTokens: result.usage.prompt_tokens, outputTokens: 0 });
  });

  test('.withResponse() and .asResponse()', async () => {
    const client = createGuardedClient(openaiFor(fake()));
    const { data, response } = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 2 }).withResponse();
    expect(response.headers.get('x-request-id')).toBe(`req_${fake().records[0]!.id}`);
    expect(data.usage!.completion_tokens).toBe(2);
    const raw = await client.chat.completions.create({ model: GPT, messages: hello, max_tokens: 3 }).asResponse();
    expect(((await raw.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
  });

  test('provider errors stay the SDK classes', async () => {
    const client = createGuardedClient(openaiFor(fake()), { retry: 0 });
    fake().fault({ status: 400 });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    fake().fault({ status: 401 });
    await expect(client.chat.completions.create({ model: GPT, messages: hello })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe('createGuardedClient(provider name)', () => {
  test('builds the SDK client from its usual env vars', async () => {
    const saved = { ...process.env };
    process.env.ANTHROPIC_API_KEY = 'sk-ant-from-env';
    process.env.ANTHROPIC_BASE_URL = fake().anthropicBaseURL;
    process.env.OPENAI_API_KEY = 'sk-from-env';
    process.env.OPENAI_BASE_URL = fake().openaiBaseURL;
    try {
      const anthropic = createGuardedClient('anthropic');
      const openai = createGuardedClient('openai', { clientOptions: { organization: 'org-1' } });
      expect(anthropic).toBeInstanceOf(Anthropic);
      expect(openai).toBeInstanceOf(OpenAI);
      await anthropic.messages.create({ model: CLAUDE, max_tokens: 2, messages: hello });
      await openai.chat.completions.create({ model: GPT, messages: hello });
      expect(fake().records.map((r) => r.apiKey)).toEqual(['sk-ant-from-env', 'sk-from-env']);
      expect(fake().records[1]!.headers['openai-organization']).toBe('org-1');
    } finally {
      process.env = saved;
    }
  });

  test('a clear error when the SDK package is not installed', () => {
    jest.isolateModules(() => {
      // What Node throws for a missing package, in place of the installed SDK.
      jest.doMock('openai', () => {
        throw Object.assign(new Error("Cannot find module 'openai'"), { code: 'MODULE_NOT_FOUND' });
      });
      const fresh = require('../lib') as typeof import('../lib');
      let error: unknown;
      try {
        fresh.createGuardedClient('openai');
      } catch (e) {
        error = e;
      }
      expect(fresh.GuardConfigError.is(error)).toBe(true);
      expect((error as Error).message).toContain('npm install openai');
    });
  });
});
