import type { Endpoint, ParsedRequest, ProviderAdapter, RateLimitSnapshot, StreamUsageReader, Usage } from './adapter';
import { asObject, classifyStatus, joinText, num, parseJson, parseJsonBody, pathOf, readWindow, type WindowHeaders } from './wire';
import { parseGoDuration, parseRetryAfter } from '../internal/time';

/** Chat/Completions (`prompt_tokens`…) and Responses (`input_tokens`…) usage, both including cached input. */
function openaiUsage(raw: unknown): Usage | undefined {
  const u = asObject(raw);
  if (!u) return undefined;
  const chat = u.prompt_tokens !== undefined;
  const input = num(chat ? u.prompt_tokens : u.input_tokens) ?? 0;
  const output = num(chat ? u.completion_tokens : u.output_tokens) ?? 0;
  const inDetails = asObject(chat ? u.prompt_tokens_details : u.input_tokens_details);
  const outDetails = asObject(chat ? u.completion_tokens_details : u.output_tokens_details);
  const usage: Usage = { inputTokens: input, outputTokens: output };
  const cached = num(inDetails?.cached_tokens);
  if (cached) usage.cacheReadTokens = cached;
  const reasoning = num(outDetails?.reasoning_tokens);
  if (reasoning) usage.reasoningTokens = reasoning;
  return usage;
}

/** The text of a Responses API `output`: messages, function-call arguments, reasoning summaries. */
function responsesText(output: unknown[]): string {
  const pieces: unknown[] = [];
  for (const item of output) {
    const o = asObject(item);
    pieces.push(o?.arguments);
    for (const list of [o?.content, o?.summary]) if (Array.isArray(list)) for (const part of list) pieces.push(asObject(part)?.text);
  }
  return joinText(pieces);
}

function endpointOf(path: string, post: boolean): Endpoint {
  if (!post) return 'other';
  if (path.endsWith('/chat/completions')) return 'chat';
  if (path.endsWith('/responses')) return 'responses';
  if (path.endsWith('/embeddings')) return 'embeddings';
  if (path.endsWith('/completions')) return 'completions';
  return 'other';
}

const OUTPUT_FIELDS: Partial<Record<Endpoint, readonly string[]>> = {
  chat: ['max_completion_tokens', 'max_tokens'],
  responses: ['max_output_tokens'],
  completions: ['max_tokens'],
};

/** The chat stream's end marker, with and without the space some compatible hosts leave out (ASCII: UTF-8 never has these bytes inside another character). */
const DONE_MARKERS = ['data: [DONE]', 'data:[DONE]'];

class OpenAIStreamReader implements StreamUsageReader {
  private reported: Usage | undefined;
  /** The latest count of a host that reports usage on every chunk. */
  private running: Usage | undefined;
  private textTokens = 0;
  private ended = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly weigh: (text: string) => number,
  ) {}

  onEvent(_event: string | undefined, data: string): boolean {
    if (data === '[DONE]') this.ended = true;
    if (this.reported || this.ended) return false;
    const chunk = asObject(parseJson(data));
    if (!chunk) return false;
    if (this.endpoint === 'responses') return this.onResponsesEvent(chunk);
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    // include_usage: the last chunk, with no choices, carries the final count (some hosts put it
    // on the chunk that finishes the choices).
    if (chunk.usage && choices.every((c) => asObject(c)?.finish_reason != null)) {
      this.reported = openaiUsage(chunk.usage);
      return this.reported !== undefined;
    }
    let changed = false;
    if (chunk.usage) {
      // A host that counts on every chunk (vLLM's continuous_usage_stats): a running count, not the end.
      this.running = openaiUsage(chunk.usage);
      changed = this.running !== undefined;
    }
    for (const choice of choices) {
      const c = asObject(choice);
      const delta = asObject(c?.delta);
      const pieces: unknown[] = [delta?.content, delta?.refusal, delta?.reasoning_content, c?.text];
      if (Array.isArray(delta?.tool_calls)) {
        for (const call of delta.tool_calls) pieces.push(asObject(asObject(call)?.function)?.arguments);
      }
      for (const piece of pieces) {
        if (typeof piece === 'string' && piece.length > 0) {
          this.textTokens += this.weigh(piece);
          changed = true;
        }
      }
    }
    return changed;
  }

  private onResponsesEvent(event: Record<string, unknown>): boolean {
    const type = event.type;
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed') {
      this.ended = true;
      this.reported = openaiUsage(asObject(event.response)?.usage);
      return this.reported !== undefined;
    }
    if (typeof type === 'string' && type.endsWith('.delta') && typeof event.delta === 'string' && event.delta.length > 0) {
      this.textTokens += this.weigh(event.delta);
      return true;
    }
    return false;
  }

  complete(): boolean {
    return this.ended || this.reported !== undefined;
  }

  endMarkerAt(bytes: Uint8Array): number {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const marker of DONE_MARKERS) {
      const at = buffer.indexOf(marker, 0, 'latin1');
      if (at >= 0) return at;
    }
    return -1;
  }

  usage(): Usage | undefined {
    if (this.reported) return this.reported;
    // A running count is exact so far, and final once the stream ended; until then the stream
    // watch treats it as an estimate (only a final count means nothing more is generated).
    if (this.running) return this.ended ? this.running : { ...this.running, estimated: true };
    if (this.textTokens === 0) return undefined;
    // Input is filled in from the request's estimate by whoever prices this.
    return { inputTokens: 0, outputTokens: Math.ceil(this.textTokens), estimated: true };
  }
}

const windowHeaders = (name: string): WindowHeaders => ({ limit: `x-ratelimit-limit-${name}`, remaining: `x-ratelimit-remaining-${name}`, reset: `x-ratelimit-reset-${name}` });
const REQUESTS_WINDOW = windowHeaders('requests');
const TOKENS_WINDOW = windowHeaders('tokens');

/** OpenAI Chat Completions, Responses, Embeddings; reused by OpenAI-compatible hosts (Azure, Groq, …). */
export const openaiAdapter: ProviderAdapter = {
  name: 'openai',
  priceProvider: 'openai',

  parseRequest(url, method, rawBody): ParsedRequest {
    const path = pathOf(url);
    const body = parseJsonBody(rawBody);
    const endpoint = endpointOf(path, method.toUpperCase() === 'POST');
    let maxOutputTokens: number | undefined;
    let field = OUTPUT_FIELDS[endpoint]?.[0];
    for (const name of OUTPUT_FIELDS[endpoint] ?? []) {
      const value = num(body?.[name]);
      if (value !== undefined) {
        maxOutputTokens = value;
        field = name;
        break;
      }
    }
    // Azure puts the deployment in the path, not the body.
    let model = typeof body?.model === 'string' ? body.model : undefined;
    if (!model) model = /\/deployments\/([^/]+)\//.exec(path)?.[1];
    const stream = body?.stream === true;
    const includeUsage = asObject(body?.stream_options)?.include_usage === true;
    return {
      endpoint,
      model,
      maxOutputTokens,
      maxOutputTokensField: field,
      stream,
      billable: endpoint !== 'other',
      streamReportsUsage: endpoint === 'responses' || includeUsage,
      batch: false,
      body,
    };
  },

  usageFromJson(_request, json) {
    return openaiUsage(asObject(json)?.usage);
  },

  outputTextFromJson(request, json) {
    const body = asObject(json);
    if (!body) return undefined;
    if (request.endpoint === 'embeddings') return Array.isArray(body.data) ? '' : undefined;
    if (request.endpoint === 'responses') return Array.isArray(body.output) ? responsesText(body.output) : typeof body.output_text === 'string' ? body.output_text : undefined;
    if (!Array.isArray(body.choices)) return undefined;
    const pieces: unknown[] = [];
    for (const choice of body.choices) {
      const c = asObject(choice);
      const message = asObject(c?.message);
      pieces.push(c?.text, message?.refusal, message?.reasoning_content, asObject(message?.function_call)?.arguments);
      const content = message?.content;
      if (Array.isArray(content)) for (const part of content) pieces.push(asObject(part)?.text);
      else pieces.push(content);
      if (Array.isArray(message?.tool_calls)) for (const call of message.tool_calls) pieces.push(asObject(asObject(call)?.function)?.arguments);
    }
    return joinText(pieces);
  },

  createStreamUsageReader(request, weigh) {
    return new OpenAIStreamReader(request.endpoint, weigh);
  },

  classifyError(status, headers, body) {
    if (status === 429 && body && body.includes('insufficient_quota')) {
      const error = asObject(asObject(parseJson(body))?.error);
      if (error?.code === 'insufficient_quota' || error?.type === 'insufficient_quota') {
        // Out of credit: waiting will not help, and it is not an outage.
        return { retryable: false, fault: false, reason: 'insufficient_quota' };
      }
    }
    return classifyStatus(status, headers);
  },

  retryAfterMs(headers, now) {
    return parseRetryAfter(headers, now);
  },

  rateLimits(headers): RateLimitSnapshot | undefined {
    const requests = readWindow(headers, REQUESTS_WINDOW, parseGoDuration, 0);
    const tokens = readWindow(headers, TOKENS_WINDOW, parseGoDuration, 0);
    if (!requests && !tokens) return undefined;
    const snapshot: RateLimitSnapshot = {};
    if (requests) snapshot.requests = requests;
    if (tokens) snapshot.tokens = tokens;
    return snapshot;
  },

  withMaxOutputTokens(request, tokens) {
    return { ...request.body, [request.maxOutputTokensField ?? 'max_tokens']: tokens };
  },
};
