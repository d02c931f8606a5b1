/**
 * The two wire formats the fake provider speaks: response bodies, SSE events, errors and
 * rate-limit headers, shaped like the real Anthropic and OpenAI APIs (November 2026).
 */
import type { TokenBucket } from './token-bucket';

export type Dialect = 'anthropic' | 'openai';
export type FakeEndpoint = 'messages' | 'count_tokens' | 'chat' | 'responses' | 'embeddings' | 'batches';

/** One generation, as decided by the fake before it answers. */
export interface Generation {
  id: string;
  model: string;
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
  /** The output tokens' text pieces, one per token. */
  tokens: string[];
  /** The request's output cap was reached. */
  truncated: boolean;
  /** Leave every usage field out (as some OpenAI-compatible hosts and proxies do). */
  omitUsage?: boolean;
}

/** A stream as three parts: what comes before the tokens, one chunk per token, and the end. */
export interface StreamScript {
  head: string[];
  token(index: number, text: string): string;
  tail(outputTokens: number): string[];
}

const WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'consectetur', 'adipiscing', 'elit', 'sed', 'do'];
/** Deterministic output: token i is a short word with its leading space. */
export function outputTokens(count: number): string[] {
  return Array.from({ length: count }, (_, i) => ` ${WORDS[i % WORDS.length]}`);
}

const sse = (event: string | undefined, data: unknown) =>
  `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

const nowSeconds = () => Math.floor(Date.now() / 1000);

// ---------- Anthropic ----------

function anthropicUsage(g: Generation, output: number) {
  return {
    input_tokens: g.inputTokens - g.cacheReadTokens - g.cacheWriteTokens,
    cache_creation_input_tokens: g.cacheWriteTokens,
    cache_read_input_tokens: g.cacheReadTokens,
    output_tokens: output,
  };
}

export function anthropicMessage(g: Generation) {
  return {
    id: g.id,
    type: 'message',
    role: 'assistant',
    model: g.model,
    content: [{ type: 'text', text: g.tokens.join('') }],
    stop_reason: g.truncated ? 'max_tokens' : 'end_turn',
    stop_sequence: null,
    usage: g.omitUsage ? undefined : anthropicUsage(g, g.tokens.length),
  };
}

export function anthropicStream(g: Generation): StreamScript {
  return {
    head: [
      sse('message_start', {
        type: 'message_start',
        message: { ...anthropicMessage(g), content: [], stop_reason: null, usage: g.omitUsage ? undefined : anthropicUsage(g, 1) },
      }),
      sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      sse('ping', { type: 'ping' }),
    ],
    token: (_i, text) => sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }),
    tail: (output) => [
      sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
      sse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: g.truncated ? 'max_tokens' : 'end_turn', stop_sequence: null },
        usage: g.omitUsage ? undefined : { output_tokens: output },
      }),
      sse('message_stop', { type: 'message_stop' }),
    ],
  };
}

const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

export function anthropicError(status: number, message: string) {
  return { type: 'error', error: { type: ANTHROPIC_ERROR_TYPES[status] ?? 'api_error', message } };
}

// ---------- OpenAI ----------

function chatUsage(g: Generation, output: number) {
  return {
    prompt_tokens: g.inputTokens,
    completion_tokens: output,
    total_tokens: g.inputTokens + output,
    prompt_tokens_details: { cached_tokens: g.cacheReadTokens, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: Math.min(g.reasoningTokens, output), audio_tokens: 0 },
  };
}

export function chatCompletion(g: Generation) {
  return {
    id: g.id,
    object: 'chat.completion',
    created: nowSeconds(),
    model: g.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: g.tokens.join(''), refusal: null },
        logprobs: null,
        finish_reason: g.truncated ? 'length' : 'stop',
      },
    ],
    usage: g.omitUsage ? undefined : chatUsage(g, g.tokens.length),
  };
}

export function chatStream(g: Generation, asked: boolean): StreamScript {
  const includeUsage = asked && !g.omitUsage;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
    id: g.id,
    object: 'chat.completion.chunk',
    created: nowSeconds(),
    model: g.model,
    choices,
    ...(includeUsage ? { usage: null } : {}),
    ...extra,
  });
  return {
    head: [sse(undefined, chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]))],
    token: (_i, text) => sse(undefined, chunk([{ index: 0, delta: { content: text }, finish_reason: null }])),
    tail: (output) => [
      sse(undefined, chunk([{ index: 0, delta: {}, finish_reason: g.truncated ? 'length' : 'stop' }])),
      ...(includeUsage ? [sse(undefined, chunk([], { usage: chatUsage(g, output) }))] : []),
      sse(undefined, '[DONE]'),
    ],
  };
}

function responsesUsage(g: Generation, output: number) {
  return {
    input_tokens: g.inputTokens,
    input_tokens_details: { cached_tokens: g.cacheReadTokens },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: Math.min(g.reasoningTokens, output) },
    total_tokens: g.inputTokens + output,
  };
}

function responseObject(g: Generation, status: string, text: string | undefined, output: number | undefined) {
  return {
    id: g.id,
    object: 'response',
    created_at: nowSeconds(),
    status,
    error: null,
    incomplete_details: g.truncated && status !== 'in_progress' ? { reason: 'max_output_tokens' } : null,
    model: g.model,
    output:
      text === undefined ? [] : (
        [
          {
            type: 'message',
            id: `msg_${g.id}`,
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text, annotations: [] }],
          },
        ]
      ),
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    usage: output === undefined || g.omitUsage ? null : responsesUsage(g, output),
  };
}

export function responsesResponse(g: Generation) {
  return responseObject(g, g.truncated ? 'incomplete' : 'completed', g.tokens.join(''), g.tokens.length);
}

export function responsesStream(g: Generation): StreamScript {
  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) => sse(type, { type, sequence_number: seq++, ...data });
  const itemId = `msg_${g.id}`;
  const sent: string[] = [];
  return {
    head: [
      ev('response.created', { response: responseObject(g, 'in_progress', undefined, undefined) }),
      ev('response.output_item.added', { output_index: 0, item: { type: 'message', id: itemId, status: 'in_progress', role: 'assistant', content: [] } }),
      ev('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }),
    ],
    token: (_i, text) => {
      sent.push(text);
      return ev('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta: text });
    },
    tail: (output) => {
      const text = sent.join('');
      return [
        ev('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text }),
        ev('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text, annotations: [] } }),
        ev('response.output_item.done', {
          output_index: 0,
          item: { type: 'message', id: itemId, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] },
        }),
        ev(g.truncated ? 'response.incomplete' : 'response.completed', {
          response: responseObject(g, g.truncated ? 'incomplete' : 'completed', text, output),
        }),
      ];
    },
  };
}

export function embeddingsResponse(model: string, inputs: number, inputTokens: number, base64: boolean, omitUsage = false) {
  return {
    object: 'list',
    data: Array.from({ length: inputs }, (_, index) => {
      const vector = Float32Array.from({ length: 8 }, (_, i) => ((index + 1) * (i + 1)) / 100);
      return { object: 'embedding', index, embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector) };
    }),
    model,
    usage: omitUsage ? undefined : { prompt_tokens: inputTokens, total_tokens: inputTokens },
  };
}

export function openaiError(status: number, message: string) {
  const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
  return { error: { message, type, param: null, code: status === 429 ? 'rate_limit_exceeded' : null } };
}

// ---------- rate-limit headers ----------

export interface Buckets {
  requests?: TokenBucket;
  tokens?: TokenBucket;
  inputTokens?: TokenBucket;
  outputTokens?: TokenBucket;
}

/** Go's time.Duration format, as OpenAI's reset headers send it: `1m30.5s`, `120ms`, `0s`. */
export function formatGoDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = Math.round((totalSeconds % 60) * 1000) / 1000;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}

export function rateLimitHeaders(dialect: Dialect, buckets: Buckets): Record<string, string> {
  const headers: Record<string, string> = {};
  const groups: Array<[keyof Buckets, string]> =
    dialect === 'anthropic' ?
      [['requests', 'requests'], ['tokens', 'tokens'], ['inputTokens', 'input-tokens'], ['outputTokens', 'output-tokens']]
    : [['requests', 'requests'], ['tokens', 'tokens']];
  for (const [key, name] of groups) {
    const bucket = buckets[key];
    if (!bucket) continue;
    const limit = String(Math.round(bucket.limitPerMinute));
    const remaining = String(bucket.remaining());
    const resetMs = bucket.msUntilFull();
    if (dialect === 'anthropic') {
      headers[`anthropic-ratelimit-${name}-limit`] = limit;
      headers[`anthropic-ratelimit-${name}-remaining`] = remaining;
      headers[`anthropic-ratelimit-${name}-reset`] = new Date(Date.now() + resetMs).toISOString();
    } else {
      headers[`x-ratelimit-limit-${name}`] = limit;
      headers[`x-ratelimit-remaining-${name}`] = remaining;
      headers[`x-ratelimit-reset-${name}`] = formatGoDuration(resetMs);
    }
  }
  return headers;
}
