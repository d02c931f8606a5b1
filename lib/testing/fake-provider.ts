import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calcPrice } from '@pydantic/genai-prices';
import { TokenBucket } from './token-bucket';
import {
  anthropicError,
  anthropicMessage,
  anthropicStream,
  chatCompletion,
  chatStream,
  embeddingsResponse,
  openaiError,
  outputTokens,
  rateLimitHeaders,
  responsesResponse,
  responsesStream,
  type Buckets,
  type Dialect,
  type FakeEndpoint,
  type Generation,
  type StreamScript,
} from './wire';

export interface FakeLimits {
  requestsPerMinute?: number;
  /** Input + output (reserved as max tokens at start, refunded to the actual at the end). */
  tokensPerMinute?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
  /** How many seconds of the per-minute rate a full bucket holds (the allowed burst). Default 1. */
  burstSeconds?: number;
}

export interface FakeBehaviour {
  /** Output tokens per generation (capped by the request's max tokens). Default 16. */
  outputTokens: number;
  /** Pause before each streamed token. Default 0. */
  tokenDelayMs: number;
  /** Pause before the response starts. Default 0. */
  latencyMs: number;
  /** Input tokens reported beyond the text (as images or tools would add). Default 0. */
  extraInputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** Of the output, how many are reasoning tokens (OpenAI). */
  reasoningTokens: number;
  /** Answer without any usage field, JSON or stream (some OpenAI-compatible hosts do). Default false. */
  omitUsage: boolean;
}

export interface FakeProviderOptions extends Partial<FakeBehaviour> {
  limits?: FakeLimits;
  port?: number;
}

/** A scripted fault for the next matching request(s). */
export type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'cut'; afterTokens: number }
  | { kind: 'malformed' };

export interface FaultOptions {
  /** How many requests get it. Default 1. */
  times?: number;
  endpoint?: FakeEndpoint;
}

/** What the fake saw and billed for one request. */
export interface RequestRecord {
  id: number;
  /** ms since the fake started (performance clock). */
  at: number;
  dialect: Dialect;
  endpoint: FakeEndpoint | 'unknown';
  model: string | undefined;
  apiKey: string | undefined;
  stream: boolean;
  maxTokens: number | undefined;
  status: number;
  fault?: string;
  inputTokens: number;
  /** Output tokens actually sent before the response ended or the client hung up. */
  outputTokens: number;
  costUsd: number;
  /** The client hung up before the end. */
  clientClosed: boolean;
  headers: Record<string, string | string[] | undefined>;
}

export interface FakeStats {
  requests: number;
  byStatus: Record<number, number>;
  inFlight: number;
  maxInFlight: number;
  /** Arrival time of each request, ms since the fake started. */
  arrivals: number[];
  billed: { inputTokens: number; outputTokens: number; usd: number };
}

/** Tokens of a text by the fake's own rule (the same for prompts): 4 characters a token. */
export function fakeTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

const SKIP_KEYS = new Set(['data', 'url', 'image_url', 'file_data', 'model', 'type', 'role', 'id', 'cache_control']);
function textLength(value: unknown, key = ''): number {
  if (typeof value === 'string') return SKIP_KEYS.has(key) ? 0 : value.length;
  if (Array.isArray(value)) return value.reduce<number>((n, v) => n + textLength(v, key), 0);
  if (typeof value === 'object' && value !== null) {
    let n = 0;
    for (const [k, v] of Object.entries(value)) n += textLength(v, k);
    return n;
  }
  return 0;
}

function inputTextOf(endpoint: FakeEndpoint, body: Record<string, unknown>): number {
  switch (endpoint) {
    case 'messages':
    case 'count_tokens':
      return textLength(body.system) + textLength(body.messages) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'chat':
      return textLength(body.messages) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'responses':
      return textLength(body.instructions) + textLength(body.input) + (body.tools ? JSON.stringify(body.tools).length : 0);
    case 'embeddings':
      return textLength(body.input);
    case 'batches':
      return 0;
  }
}

const ROUTES: Array<[string, FakeEndpoint, Dialect]> = [
  ['/v1/messages/count_tokens', 'count_tokens', 'anthropic'],
  ['/v1/messages', 'messages', 'anthropic'],
  ['/v1/chat/completions', 'chat', 'openai'],
  ['/v1/responses', 'responses', 'openai'],
  ['/v1/embeddings', 'embeddings', 'openai'],
];

function headerNumber(req: IncomingMessage, name: string): number | undefined {
  const raw = req.headers[name];
  if (typeof raw !== 'string') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

function headerFlag(req: IncomingMessage, name: string): boolean | undefined {
  const raw = req.headers[name];
  return typeof raw === 'string' ? raw === '1' || raw === 'true' : undefined;
}

/**
 * A local HTTP server speaking the Anthropic Messages and OpenAI Chat Completions / Responses /
 * Embeddings wire formats, JSON and SSE, with per-key rate limits, the providers' limit headers,
 * scripted faults, and a ledger of what it billed. Per request, headers `x-fake-output-tokens`,
 * `x-fake-extra-input-tokens`, `x-fake-token-delay-ms`, `x-fake-latency-ms` and `x-fake-omit-usage` override behaviour.
 */
export class FakeProvider {
  readonly records: RequestRecord[] = [];
  stats: FakeStats = FakeProvider.emptyStats();
  behaviour: FakeBehaviour;
  private limits: FakeLimits;
  private buckets = new Map<string, Buckets>();
  private faults: Array<{ fault: Fault; remaining: number; endpoint?: FakeEndpoint }> = [];
  private readonly t0 = performance.now();
  private seq = 0;
  private idleWaiters: Array<() => void> = [];
  /** Handlers still running (a hung-up stream is billed when its handler notices). */
  private active = 0;

  private constructor(
    private readonly server: Server,
    options: FakeProviderOptions,
  ) {
    this.limits = options.limits ?? {};
    this.behaviour = {
      outputTokens: options.outputTokens ?? 16,
      tokenDelayMs: options.tokenDelayMs ?? 0,
      latencyMs: options.latencyMs ?? 0,
      extraInputTokens: options.extraInputTokens ?? 0,
      cacheReadTokens: options.cacheReadTokens ?? 0,
      cacheWriteTokens: options.cacheWriteTokens ?? 0,
      reasoningTokens: options.reasoningTokens ?? 0,
      omitUsage: options.omitUsage ?? false,
    };
  }

  static async start(options: FakeProviderOptions = {}): Promise<FakeProvider> {
    const server = createServer();
    const fake = new FakeProvider(server, options);
    server.on('request', (req, res) => {
      fake.active++;
      fake
        .handle(req, res)
        .catch((error: unknown) => {
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: `fake provider bug: ${String(error)}` } }));
          } else res.destroy();
        })
        .finally(() => {
          fake.active--;
          fake.notifyIdle();
        });
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return fake;
  }

  private static emptyStats(): FakeStats {
    return { requests: 0, byStatus: {}, inFlight: 0, maxInFlight: 0, arrivals: [], billed: { inputTokens: 0, outputTokens: 0, usd: 0 } };
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** baseURL for `new Anthropic({ baseURL })`. */
  get anthropicBaseURL(): string {
    return this.url;
  }

  /** baseURL for `new OpenAI({ baseURL })`. */
  get openaiBaseURL(): string {
    return `${this.url}/v1`;
  }

  /** ms since the fake started, on the clock of `records[].at` and `stats.arrivals`. */
  now(): number {
    return performance.now() - this.t0;
  }

  /** Queues a fault for the next `times` requests (optionally of one endpoint). */
  fault(fault: Fault, options: FaultOptions = {}): this {
    this.faults.push({ fault, remaining: options.times ?? 1, endpoint: options.endpoint });
    return this;
  }

  configure(patch: Partial<FakeBehaviour> & { limits?: FakeLimits }): this {
    const { limits, ...behaviour } = patch;
    Object.assign(this.behaviour, behaviour);
    if (limits) {
      this.limits = limits;
      this.buckets.clear();
    }
    return this;
  }

  /** Forgets records, stats, faults and rate-limit state. */
  reset(): void {
    this.records.length = 0;
    this.stats = FakeProvider.emptyStats();
    this.faults = [];
    this.buckets.clear();
  }

  /** Resolves when no request is in flight and every handler is done (billing is then final). */
  idle(): Promise<void> {
    if (this.stats.inFlight === 0 && this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.stats.inFlight === 0 && this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private bucketsFor(key: string): Buckets {
    let b = this.buckets.get(key);
    if (!b) {
      const burst = this.limits.burstSeconds ?? 1;
      const make = (limit: number | undefined) => (limit ? new TokenBucket(limit, burst) : undefined);
      b = {
        requests: make(this.limits.requestsPerMinute),
        tokens: make(this.limits.tokensPerMinute),
        inputTokens: make(this.limits.inputTokensPerMinute),
        outputTokens: make(this.limits.outputTokensPerMinute),
      };
      this.buckets.set(key, b);
    }
    return b;
  }

  private takeFault(endpoint: FakeEndpoint | 'unknown'): Fault | undefined {
    const i = this.faults.findIndex((f) => !f.endpoint || f.endpoint === endpoint);
    if (i < 0) return undefined;
    const entry = this.faults[i]!;
    if (--entry.remaining <= 0) this.faults.splice(i, 1);
    return entry.fault;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const stats = this.stats;
    stats.requests++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    const at = this.now();
    stats.arrivals.push(at);
    let closed = false;

    const path = (req.url ?? '/').split('?')[0]!.replace(/\/$/, '');
    const route = ROUTES.find(([p]) => path === p || path.endsWith(p.slice(3)));
    const dialect: Dialect = route?.[2] ?? (req.headers['x-api-key'] ? 'anthropic' : 'openai');
    const auth = req.headers.authorization;
    const apiKey = (req.headers['x-api-key'] as string | undefined) ?? (auth?.startsWith('Bearer ') ? auth.slice(7) : undefined);
    const record: RequestRecord = {
      id: ++this.seq,
      at,
      dialect,
      endpoint: route?.[1] ?? 'unknown',
      model: undefined,
      apiKey,
      stream: false,
      maxTokens: undefined,
      status: 0,
      inputTokens: 0,
      outputTokens: 0,
      costUsd: 0,
      clientClosed: false,
      headers: { ...req.headers },
    };
    this.records.push(record);
    res.on('close', () => {
      closed = !res.writableFinished;
      stats.inFlight--;
      record.clientClosed = closed;
      this.notifyIdle();
    });

    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const errorBody = (status: number, message: string) => (dialect === 'anthropic' ? anthropicError(status, message) : openaiError(status, message));
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (closed) return;
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        [dialect === 'anthropic' ? 'request-id' : 'x-request-id']: `req_${record.id}`,
        ...headers,
      });
      res.end(text);
    };

    const batchPath = /\/messages\/batches(?:\/([^/]+)(\/results)?)?$/.exec(path);
    if (batchPath) return this.handleBatch(req.method ?? 'GET', batchPath[1], batchPath[2] !== undefined, chunks, record, send, errorBody, req);
    if (req.method !== 'POST' || !route) return send(404, errorBody(404, `No route for ${req.method} ${path}`));
    const endpoint = route[1];
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return send(400, errorBody(400, 'Request body is not valid JSON'));
    }
    record.model = typeof body.model === 'string' ? body.model : undefined;
    record.stream = body.stream === true;
    const maxTokens = [body.max_tokens, body.max_completion_tokens, body.max_output_tokens].find((v) => typeof v === 'number') as number | undefined;
    record.maxTokens = maxTokens;
    if (!record.model) return send(400, errorBody(400, 'model: Field required'));
    if (endpoint === 'messages' && maxTokens === undefined) return send(400, errorBody(400, 'max_tokens: Field required'));

    const fault = this.takeFault(endpoint);
    if (fault) {
      if ('status' in fault) {
        record.fault = `status ${fault.status}`;
        return send(fault.status, fault.body ?? errorBody(fault.status, `Scripted fault ${fault.status}`), fault.headers);
      }
      record.fault = fault.kind;
      if (fault.kind === 'reset') {
        record.status = -1;
        req.socket.destroy();
        return;
      }
      if (fault.kind === 'hang') {
        record.status = -1;
        return; // never answers; the client gives up
      }
    }

    const b = this.behaviour;
    const latency = headerNumber(req, 'x-fake-latency-ms') ?? b.latencyMs;
    if (latency > 0) await this.pause(latency, () => closed);
    if (closed) return;

    const extra = headerNumber(req, 'x-fake-extra-input-tokens') ?? b.extraInputTokens;
    const inputTokens = Math.ceil(inputTextOf(endpoint, body) / 4) + extra;
    const wanted = headerNumber(req, 'x-fake-output-tokens') ?? b.outputTokens;
    const generates = endpoint === 'messages' || endpoint === 'chat' || endpoint === 'responses';
    const cap = maxTokens ?? 1_000_000;
    const reserveOutput = generates ? (maxTokens ?? wanted) : 0;

    // Rate limits, per API key, checked before anything is billed.
    const buckets = this.bucketsFor(apiKey ?? '');
    const needs: Array<[TokenBucket | undefined, number]> = [
      [buckets.requests, 1],
      [buckets.tokens, inputTokens + reserveOutput],
      [buckets.inputTokens, inputTokens],
      [buckets.outputTokens, reserveOutput],
    ];
    const waitMs = Math.max(0, ...needs.map(([bucket, n]) => (bucket && n > 0 ? bucket.waitFor(n) : 0)));
    if (endpoint !== 'count_tokens' && waitMs > 0) {
      const retry: Record<string, string> = { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) };
      if (dialect === 'openai') retry['retry-after-ms'] = String(Math.ceil(waitMs));
      return send(429, errorBody(429, 'Rate limit exceeded'), { ...rateLimitHeaders(dialect, buckets), ...retry });
    }
    if (endpoint !== 'count_tokens') for (const [bucket, n] of needs) bucket?.take(n);
    const limitHeaders = rateLimitHeaders(dialect, buckets);

    if (endpoint === 'count_tokens') return send(200, { input_tokens: inputTokens }, limitHeaders);

    record.inputTokens = inputTokens;
    const count = generates ? Math.min(cap, wanted) : 0;
    const g: Generation = {
      id: `${endpoint === 'messages' ? 'msg' : endpoint === 'chat' ? 'chatcmpl' : 'resp'}_${record.id}`,
      model: record.model,
      inputTokens,
      cacheReadTokens: Math.min(b.cacheReadTokens, inputTokens),
      cacheWriteTokens: Math.min(b.cacheWriteTokens, Math.max(0, inputTokens - b.cacheReadTokens)),
      reasoningTokens: b.reasoningTokens,
      tokens: outputTokens(count),
      truncated: count >= cap && count < wanted,
      omitUsage: headerFlag(req, 'x-fake-omit-usage') ?? b.omitUsage,
    };
    const bill = (output: number) => {
      record.outputTokens = output;
      record.costUsd = this.price(dialect, g, output);
      stats.billed.inputTokens += inputTokens;
      stats.billed.outputTokens += output;
      stats.billed.usd += record.costUsd;
      const refund = reserveOutput - output;
      if (refund > 0) {
        buckets.outputTokens?.refund(refund);
        buckets.tokens?.refund(refund);
      }
    };

    if (fault && 'kind' in fault && fault.kind === 'malformed') {
      bill(count);
      return send(200, '{"id": "broken", "content": [', limitHeaders);
    }

    if (endpoint === 'embeddings') {
      const inputs = Array.isArray(body.input) ? body.input.length : 1;
      bill(0);
      return send(200, embeddingsResponse(record.model, inputs, inputTokens, body.encoding_format === 'base64', g.omitUsage), limitHeaders);
    }

    if (!record.stream) {
      bill(count);
      const payload = endpoint === 'messages' ? anthropicMessage(g) : endpoint === 'chat' ? chatCompletion(g) : responsesResponse(g);
      return send(200, payload, limitHeaders);
    }

    const script: StreamScript =
      endpoint === 'messages' ? anthropicStream(g)
      : endpoint === 'chat' ? chatStream(g, (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true)
      : responsesStream(g);
    record.status = 200;
    stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      [dialect === 'anthropic' ? 'request-id' : 'x-request-id']: `req_${record.id}`,
      ...limitHeaders,
    });
    for (const event of script.head) res.write(event);
    const delay = headerNumber(req, 'x-fake-token-delay-ms') ?? b.tokenDelayMs;
    const cutAfter = fault && 'kind' in fault && fault.kind === 'cut' ? fault.afterTokens : Infinity;
    let sent = 0;
    for (const text of g.tokens) {
      if (delay > 0) await this.pause(delay, () => closed);
      if (closed) break;
      if (sent >= cutAfter) {
        bill(sent);
        // Let what was written reach the client, then drop the connection mid-stream.
        await new Promise<void>((resolve) => res.write('', () => resolve()));
        res.destroy();
        return;
      }
      res.write(script.token(sent, text));
      sent++;
    }
    bill(sent);
    if (closed) return;
    for (const event of script.tail(sent)) res.write(event);
    res.end();
  }

  /** Message batches, processed at once: each request is generated and billed at half price. */
  private readonly batches = new Map<string, { object: Record<string, unknown>; results: string }>();

  private handleBatch(
    method: string,
    id: string | undefined,
    results: boolean,
    chunks: Buffer[],
    record: RequestRecord,
    send: (status: number, body: unknown, headers?: Record<string, string>) => void,
    errorBody: (status: number, message: string) => unknown,
    req: IncomingMessage,
  ): void {
    record.endpoint = 'batches';
    if (method === 'POST' && id === undefined) {
      let body: { requests?: Array<{ custom_id: string; params: Record<string, unknown> }> };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        return send(400, errorBody(400, 'Request body is not valid JSON'));
      }
      if (!Array.isArray(body.requests) || body.requests.length === 0) return send(400, errorBody(400, 'requests: Field required'));
      const batchId = `msgbatch_${record.id}`;
      const lines: string[] = [];
      for (const { custom_id, params } of body.requests) {
        const model = String(params.model);
        const inputTokens = Math.ceil(inputTextOf('messages', params) / 4) + this.behaviour.extraInputTokens;
        const count = Math.min(Number(params.max_tokens), this.behaviour.outputTokens);
        const g: Generation = { id: `msg_${batchId}_${custom_id}`, model, inputTokens, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, tokens: outputTokens(count), truncated: false };
        const usd = this.price('anthropic', g, count) * 0.5;
        this.stats.billed.inputTokens += inputTokens;
        this.stats.billed.outputTokens += count;
        this.stats.billed.usd += usd;
        record.inputTokens += inputTokens;
        record.outputTokens += count;
        record.costUsd += usd;
        lines.push(JSON.stringify({ custom_id, result: { type: 'succeeded', message: anthropicMessage(g) } }));
      }
      const host = `http://${req.headers.host}`;
      const now = new Date().toISOString();
      const object = {
        id: batchId,
        type: 'message_batch',
        processing_status: 'ended',
        request_counts: { processing: 0, succeeded: lines.length, errored: 0, canceled: 0, expired: 0 },
        ended_at: now,
        created_at: now,
        expires_at: now,
        archived_at: null,
        cancel_initiated_at: null,
        results_url: `${host}/v1/messages/batches/${batchId}/results`,
      };
      this.batches.set(batchId, { object, results: lines.join('\n') + '\n' });
      return send(200, object);
    }
    const batch = id === undefined ? undefined : this.batches.get(id);
    if (method !== 'GET' || !batch) return send(404, errorBody(404, `No batch ${id ?? ''}`));
    if (!results) return send(200, batch.object);
    return send(200, batch.results, { 'content-type': 'application/binary' });
  }

  private price(dialect: Dialect, g: Generation, output: number): number {
    const result = calcPrice(
      {
        input_tokens: g.inputTokens,
        output_tokens: output,
        cache_read_tokens: g.cacheReadTokens,
        cache_write_tokens: g.cacheWriteTokens,
      },
      g.model,
      { providerId: dialect },
    );
    return result?.total_price ?? 0;
  }

  private pause(ms: number, stop: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const started = Date.now();
      const tick = () => {
        if (stop() || Date.now() - started >= ms) resolve();
        else setTimeout(tick, Math.min(10, ms - (Date.now() - started)));
      };
      setTimeout(tick, Math.min(10, ms));
    });
  }
}

/** Starts a fake provider on a free local port. Close it with `await fake.close()`. */
export function startFakeProvider(options?: FakeProviderOptions): Promise<FakeProvider> {
  return FakeProvider.start(options);
}
