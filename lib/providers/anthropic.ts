import type { ParsedRequest, ProviderAdapter, RateLimitSnapshot, StreamUsageReader, Usage } from './adapter';
import { asObject, classifyStatus, joinText, num, parseJson, parseJsonBody, pathOf, readWindow, type WindowHeaders } from './wire';
import { msUntil, parseRetryAfter } from '../internal/time';

/** Anthropic usage: `input_tokens` excludes cache tokens, which we add back in. */
function anthropicUsage(raw: unknown): Usage | undefined {
  const u = asObject(raw);
  if (!u) return undefined;
  const input = num(u.input_tokens) ?? 0;
  const cacheRead = num(u.cache_read_input_tokens) ?? 0;
  const cacheWrite = num(u.cache_creation_input_tokens) ?? 0;
  const split = asObject(u.cache_creation);
  const write1h = num(split?.ephemeral_1h_input_tokens) ?? 0;
  const usage: Usage = { inputTokens: input + cacheRead + cacheWrite, outputTokens: num(u.output_tokens) ?? 0 };
  if (cacheRead) usage.cacheReadTokens = cacheRead;
  if (cacheWrite - write1h > 0) usage.cacheWriteTokens = cacheWrite - write1h;
  if (write1h) usage.cacheWrite1hTokens = write1h;
  return usage;
}

class AnthropicStreamReader implements StreamUsageReader {
  // Raw usage fields as reported: message_start's, updated by message_delta's cumulative counts.
  private raw: Record<string, unknown> | undefined;
  private final = false;
  private stopped = false;
  private textTokens = 0;

  constructor(private readonly weigh: (text: string) => number) {}

  onEvent(event: string | undefined, data: string): boolean {
    switch (event) {
      case 'content_block_delta': {
        if (this.final) return false;
        const delta = asObject(asObject(parseJson(data))?.delta);
        const text = delta?.text ?? delta?.partial_json ?? delta?.thinking;
        if (typeof text !== 'string' || text.length === 0) return false;
        this.textTokens += this.weigh(text);
        return true;
      }
      case 'message_start': {
        this.raw = asObject(asObject(asObject(parseJson(data))?.message)?.usage);
        return this.raw !== undefined;
      }
      case 'message_delta': {
        const raw = asObject(asObject(parseJson(data))?.usage);
        if (!raw) return false;
        this.raw = { ...this.raw, ...raw };
        this.final = true;
        return true;
      }
      case 'message_stop':
        this.stopped = true;
        return false;
      default:
        return false;
    }
  }

  complete(): boolean {
    return this.final || this.stopped;
  }

  usage(): Usage | undefined {
    if (!this.raw && this.textTokens === 0) return undefined;
    const usage = anthropicUsage(this.raw ?? {})!;
    if (!this.final) {
      usage.outputTokens = Math.max(usage.outputTokens, Math.ceil(this.textTokens));
      usage.estimated = true;
    }
    return usage;
  }
}

const windowHeaders = (name: string): WindowHeaders => ({ limit: `anthropic-ratelimit-${name}-limit`, remaining: `anthropic-ratelimit-${name}-remaining`, reset: `anthropic-ratelimit-${name}-reset` });
const WINDOWS = { requests: windowHeaders('requests'), tokens: windowHeaders('tokens'), inputTokens: windowHeaders('input-tokens'), outputTokens: windowHeaders('output-tokens') };

/** Anthropic Messages API (also used by Bedrock/Vertex-style hosts that speak the same JSON). */
export const anthropicAdapter: ProviderAdapter = {
  name: 'anthropic',
  priceProvider: 'anthropic',

  parseRequest(url, method, rawBody): ParsedRequest {
    const path = pathOf(url);
    const body = parseJsonBody(rawBody);
    const post = method.toUpperCase() === 'POST';
    const endpoint =
      post && path.endsWith('/messages') ? 'messages'
      : post && path.endsWith('/messages/count_tokens') ? 'count_tokens'
      : post && path.endsWith('/complete') ? 'completions'
      : post && path.endsWith('/messages/batches') ? 'batches'
      : !post && /\/messages\/batches\/[^/]+\/results$/.test(path) ? 'batch_results'
      : 'other';
    const field = endpoint === 'completions' ? 'max_tokens_to_sample' : 'max_tokens';
    const billable = endpoint === 'messages' || endpoint === 'completions';
    return {
      endpoint,
      model: typeof body?.model === 'string' ? body.model : undefined,
      maxOutputTokens: billable ? num(body?.[field]) : undefined,
      maxOutputTokensField: billable ? field : undefined,
      stream: body?.stream === true,
      billable,
      streamReportsUsage: endpoint === 'messages',
      batch: false,
      body,
      ...(endpoint === 'batch_results' ? { batchId: /\/messages\/batches\/([^/]+)\/results$/.exec(path)?.[1] } : {}),
    };
  },

  batchRequests(request) {
    const requests = Array.isArray(request.body?.requests) ? request.body.requests : [];
    return requests.map((entry: unknown) => {
      const e = asObject(entry);
      const params = asObject(e?.params) ?? {};
      const parsed: ParsedRequest = {
        endpoint: 'messages',
        model: typeof params.model === 'string' ? params.model : undefined,
        maxOutputTokens: num(params.max_tokens),
        maxOutputTokensField: 'max_tokens',
        stream: false,
        billable: true,
        streamReportsUsage: true,
        batch: true,
        body: params,
      };
      return { id: String(e?.custom_id), request: parsed };
    });
  },

  batchResults(request, text) {
    const out: Array<{ model: string | undefined; usage: Usage }> = [];
    const asMessage: ParsedRequest = { ...request, endpoint: 'messages' };
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const result = asObject(asObject(parseJson(line))?.result);
      // Errored, canceled and expired requests are not billed.
      const message = asObject(result?.message);
      if (result?.type !== 'succeeded' || !message) continue;
      const usage = this.usageFromJson(asMessage, message);
      if (usage) out.push({ model: typeof message.model === 'string' ? message.model : undefined, usage });
    }
    return out;
  },

  usageFromJson(request, json) {
    const body = asObject(json);
    if (!body) return undefined;
    if (request.endpoint === 'count_tokens') return undefined;
    return anthropicUsage(body.usage);
  },

  outputTextFromJson(request, json) {
    const body = asObject(json);
    if (!body) return undefined;
    if (request.endpoint === 'completions') return typeof body.completion === 'string' ? body.completion : undefined;
    if (!Array.isArray(body.content)) return undefined;
    const pieces: unknown[] = [];
    for (const block of body.content) {
      const b = asObject(block);
      pieces.push(b?.text, b?.thinking, b?.input !== undefined ? JSON.stringify(b.input) : undefined);
    }
    return joinText(pieces);
  },

  createStreamUsageReader(_request, weigh) {
    return new AnthropicStreamReader(weigh);
  },

  classifyError(status, headers) {
    return classifyStatus(status, headers);
  },

  retryAfterMs(headers, now) {
    return parseRetryAfter(headers, now);
  },

  rateLimits(headers, now = Date.now()): RateLimitSnapshot | undefined {
    const requests = readWindow(headers, WINDOWS.requests, msUntil, now);
    if (!requests && !headers.has(WINDOWS.tokens.limit) && !headers.has(WINDOWS.inputTokens.limit)) return undefined;
    const snapshot: RateLimitSnapshot = {};
    if (requests) snapshot.requests = requests;
    const tokens = readWindow(headers, WINDOWS.tokens, msUntil, now);
    if (tokens) snapshot.tokens = tokens;
    const input = readWindow(headers, WINDOWS.inputTokens, msUntil, now);
    if (input) snapshot.inputTokens = input;
    const output = readWindow(headers, WINDOWS.outputTokens, msUntil, now);
    if (output) snapshot.outputTokens = output;
    return snapshot;
  },

  withMaxOutputTokens(request, tokens) {
    return { ...request.body, [request.maxOutputTokensField ?? 'max_tokens']: tokens };
  },
};
