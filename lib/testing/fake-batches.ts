/** Message Batches on the fake provider: processed at once, each request generated and billed at half price. */
import type { IncomingMessage } from 'node:http';
import { anthropicMessage, outputTokens, type Generation } from './wire';
import { inputTextOf } from './fake-request';
import type { FakeBehaviour, FakeStats, RequestRecord } from './fake-types';

type Send = (status: number, body: unknown, headers?: Record<string, string>) => void;

export class FakeBatches {
  private readonly batches = new Map<string, { object: Record<string, unknown>; results: string }>();

  constructor(
    private readonly deps: {
      behaviour: () => FakeBehaviour;
      stats: () => FakeStats;
      price: (g: Generation, output: number) => number;
    },
  ) {}

  /** POST …/messages/batches creates one; GET …/batches/:id reads it, GET …/:id/results its results (JSONL). */
  handle(req: IncomingMessage, id: string | undefined, results: boolean, body: Buffer, record: RequestRecord, send: Send, errorBody: (status: number, message: string) => unknown): void {
    record.endpoint = 'batches';
    const method = req.method ?? 'GET';
    if (method === 'POST' && id === undefined) return this.create(req, body, record, send, errorBody);
    const batch = id === undefined ? undefined : this.batches.get(id);
    if (method !== 'GET' || !batch) return send(404, errorBody(404, `No batch ${id ?? ''}`));
    if (!results) return send(200, batch.object);
    return send(200, batch.results, { 'content-type': 'application/binary' });
  }

  private create(req: IncomingMessage, raw: Buffer, record: RequestRecord, send: Send, errorBody: (status: number, message: string) => unknown): void {
    let body: { requests?: Array<{ custom_id: string; params: Record<string, unknown> }> };
    try {
      body = JSON.parse(raw.toString('utf8')) as typeof body;
    } catch {
      return send(400, errorBody(400, 'Request body is not valid JSON'));
    }
    if (!Array.isArray(body.requests) || body.requests.length === 0) return send(400, errorBody(400, 'requests: Field required'));
    const behaviour = this.deps.behaviour();
    const stats = this.deps.stats();
    const batchId = `msgbatch_${record.id}`;
    const lines: string[] = [];
    for (const { custom_id, params } of body.requests) {
      const model = String(params.model);
      const inputTokens = Math.ceil(inputTextOf('messages', params) / 4) + behaviour.extraInputTokens;
      const count = Math.min(Number(params.max_tokens), behaviour.outputTokens);
      const g: Generation = { id: `msg_${batchId}_${custom_id}`, model, inputTokens, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, tokens: outputTokens(count), truncated: false };
      const usd = this.deps.price(g, count) * 0.5;
      stats.billed.inputTokens += inputTokens;
      stats.billed.outputTokens += count;
      stats.billed.usd += usd;
      record.inputTokens += inputTokens;
      record.outputTokens += count;
      record.costUsd += usd;
      lines.push(JSON.stringify({ custom_id, result: { type: 'succeeded', message: anthropicMessage(g) } }));
    }
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
      results_url: `http://${req.headers.host}/v1/messages/batches/${batchId}/results`,
    };
    this.batches.set(batchId, { object, results: lines.join('\n') + '\n' });
    return send(200, object);
  }
}
