// Over 300 lines on purpose: one server's lifecycle, and a request's path through it (receive →
// route → fault → latency → limits → answer) read top to bottom; the parts live beside it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calcPrice } from '@pydantic/genai-prices';
import {
  anthropicError,
  anthropicMessage,
  anthropicStream,
  chatCompletion,
  chatStream,
  embeddingsResponse,
  openaiError,
  outputTokens,
  responsesResponse,
  responsesStream,
  type Dialect,
  type FakeEndpoint,
  type Generation,
  type StreamScript,
} from './wire';
import type { Fault, FaultOptions, FakeBehaviour, FakeLimits, FakeProviderOptions, FakeStats, RequestRecord } from './fake-types';
import { ROUTES, headerFlag, headerNumber, inputTextOf } from './fake-request';
import { FakeRateLimits } from './fake-limits';
import { streamTokens } from './fake-stream';
import { FakeBatches } from './fake-batches';

export type { Fault, FaultOptions, FakeBehaviour, FakeLimits, FakeProviderOptions, FakeStats, RequestRecord } from './fake-types';
export { fakeTokens } from './fake-request';

type Send = (status: number, body: unknown, headers?: Record<string, string>) => void;

/** One request as the handler works on it: where it goes, who sent it, and how to answer. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  record: RequestRecord;
  dialect: Dialect;
  apiKey: string | undefined;
  send: Send;
  errorBody: (status: number, message: string) => unknown;
  /** Whether the client hung up. */
  closed: () => boolean;
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
  private readonly limits: FakeRateLimits;
  private readonly batches: FakeBatches;
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
    this.limits = new FakeRateLimits(options.limits);
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
    this.batches = new FakeBatches({ behaviour: () => this.behaviour, stats: () => this.stats, price: (g, output) => this.price('anthropic', g, output) });
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
    if (limits) this.limits.set(limits);
    return this;
  }

  /** Forgets records, stats, faults and rate-limit state. */
  reset(): void {
    this.records.length = 0;
    this.stats = FakeProvider.emptyStats();
    this.faults = [];
    this.limits.clear();
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

  private takeFault(endpoint: FakeEndpoint | 'unknown'): Fault | undefined {
    const i = this.faults.findIndex((f) => !f.endpoint || f.endpoint === endpoint);
    if (i < 0) return undefined;
    const entry = this.faults[i]!;
    if (--entry.remaining <= 0) this.faults.splice(i, 1);
    return entry.fault;
  }

  /** Records the request (arrival, key, route) and builds the means to answer it. */
  private receive(req: IncomingMessage, res: ServerResponse): Exchange & { path: string; route: (typeof ROUTES)[number] | undefined } {
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
    const send: Send = (status, body, headers = {}) => {
      record.status = status;
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
      if (closed) return;
      res.writeHead(status, { 'content-type': 'application/json', [dialect === 'anthropic' ? 'request-id' : 'x-request-id']: `req_${record.id}`, ...headers });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const errorBody = (status: number, message: string) => (dialect === 'anthropic' ? anthropicError(status, message) : openaiError(status, message));
    return { req, res, record, dialect, apiKey, send, errorBody, closed: () => closed, path, route };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const x = this.receive(req, res);
    const { record, send, errorBody, path, route } = x;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);

    const batchPath = /\/messages\/batches(?:\/([^/]+)(\/results)?)?$/.exec(path);
    if (batchPath) return this.batches.handle(req, batchPath[1], batchPath[2] !== undefined, Buffer.concat(chunks), record, send, errorBody);
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
    const latency = headerNumber(req, 'x-fake-latency-ms') ?? this.behaviour.latencyMs;
    if (latency > 0) await this.pause(latency, x.closed);
    if (x.closed()) return;
    return this.generate(x, endpoint, body, maxTokens, fault);
  }

  /** Past routing, faults and latency: the rate limits, then the answer — JSON, SSE, or embeddings. */
  private async generate(x: Exchange, endpoint: FakeEndpoint, body: Record<string, unknown>, maxTokens: number | undefined, fault: Fault | undefined): Promise<void> {
    const { req, res, record, dialect, send, errorBody } = x;
    const b = this.behaviour;
    const key = x.apiKey ?? '';
    const inputTokens = Math.ceil(inputTextOf(endpoint, body) / 4) + (headerNumber(req, 'x-fake-extra-input-tokens') ?? b.extraInputTokens);
    if (endpoint === 'count_tokens') return send(200, { input_tokens: inputTokens }, this.limits.headers(key, dialect));
    const wanted = headerNumber(req, 'x-fake-output-tokens') ?? b.outputTokens;
    const generates = endpoint === 'messages' || endpoint === 'chat' || endpoint === 'responses';
    const cap = maxTokens ?? 1_000_000;
    const reserveOutput = generates ? (maxTokens ?? wanted) : 0;
    // Rate limits, per API key, checked before anything is billed.
    const admitted = this.limits.admit(key, dialect, { inputTokens, reserveOutput });
    if (!admitted.ok) return send(429, errorBody(429, 'Rate limit exceeded'), admitted.headers);
    const limitHeaders = admitted.headers;

    record.inputTokens = inputTokens;
    const count = generates ? Math.min(cap, wanted) : 0;
    const g: Generation = {
      id: `${endpoint === 'messages' ? 'msg' : endpoint === 'chat' ? 'chatcmpl' : 'resp'}_${record.id}`,
      model: record.model!,
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
      this.stats.billed.inputTokens += inputTokens;
      this.stats.billed.outputTokens += output;
      this.stats.billed.usd += record.costUsd;
      this.limits.refundOutput(key, reserveOutput - output);
    };

    if (fault && 'kind' in fault && fault.kind === 'malformed') {
      bill(count);
      return send(200, '{"id": "broken", "content": [', limitHeaders);
    }
    if (endpoint === 'embeddings') {
      bill(0);
      return send(200, embeddingsResponse(g.model, Array.isArray(body.input) ? body.input.length : 1, inputTokens, body.encoding_format === 'base64', g.omitUsage), limitHeaders);
    }
    if (!record.stream) {
      bill(count);
      return send(200, endpoint === 'messages' ? anthropicMessage(g) : endpoint === 'chat' ? chatCompletion(g) : responsesResponse(g), limitHeaders);
    }

    const script: StreamScript =
      endpoint === 'messages' ? anthropicStream(g)
      : endpoint === 'chat' ? chatStream(g, (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true)
      : responsesStream(g);
    record.status = 200;
    this.stats.byStatus[200] = (this.stats.byStatus[200] ?? 0) + 1;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      [dialect === 'anthropic' ? 'request-id' : 'x-request-id']: `req_${record.id}`,
      ...limitHeaders,
    });
    for (const event of script.head) res.write(event);
    await streamTokens(res, {
      script,
      tokens: g.tokens,
      delayMs: headerNumber(req, 'x-fake-token-delay-ms') ?? b.tokenDelayMs,
      cutAfter: fault && 'kind' in fault && fault.kind === 'cut' ? fault.afterTokens : Infinity,
      closed: x.closed,
      bill,
      pause: (ms, stop) => this.pause(ms, stop),
    });
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
