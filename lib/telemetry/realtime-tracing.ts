/**
 * One span per Realtime session (through @opentelemetry/api, an optional peer): opened with the
 * session, ended with it, carrying its model, cost, duration and how it ended.
 */
import type { Span } from '@opentelemetry/api';
import type { GuardEmitter } from '../events';

/** Subscribes session spans to `emitter`; returns the disposer (a no-op without @opentelemetry/api). */
export function traceRealtimeSessions(emitter: GuardEmitter, guardName: () => string): () => void {
  let api: typeof import('@opentelemetry/api');
  try {
    api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  } catch {
    return () => {};
  }
  const tracer = api.trace.getTracer('guarded-llm');
  const spans = new Map<string, Span>();
  const offOpen = emitter.on('realtime:open', (e) => {
    const span = tracer.startSpan(`realtime ${e.model ?? ''}`.trim(), { kind: api.SpanKind.CLIENT, startTime: e.startedAt });
    if (!span.isRecording()) return;
    span.setAttributes({ 'gen_ai.operation.name': 'realtime', 'gen_ai.system': 'openai', 'gen_ai.provider.name': 'openai', 'guarded_llm.guard.name': guardName(), 'guarded_llm.realtime.session_id': e.sessionId });
    if (e.model) span.setAttribute('gen_ai.request.model', e.model);
    spans.set(e.sessionId, span);
  });
  const offClose = emitter.on('realtime:close', (e) => {
    const span = spans.get(e.sessionId);
    if (!span) return;
    spans.delete(e.sessionId);
    span.setAttributes({ 'guarded_llm.cost_usd': e.costUsd, 'guarded_llm.realtime.duration_ms': Math.round(e.durationMs), 'guarded_llm.realtime.end_reason': e.reason });
    if (e.reason === 'dropped') span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'the socket dropped' });
    span.end();
  });
  return () => {
    offOpen();
    offClose();
  };
}
