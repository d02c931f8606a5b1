/**
 * OpenTelemetry traces through @opentelemetry/api (an optional peer; without it, or without an
 * SDK registered, this costs nothing but a no-op span). One span per call, following the GenAI
 * semantic conventions (gen_ai.*), with a child span per HTTP attempt, plus the guard's own
 * attributes (queued ms, attempts, cost, budget decision, breaker state).
 */
import type { Span, Tracer } from '@opentelemetry/api';
import { findGuardError, type BudgetExceededError } from '../errors';
import type { CallContext, CallReport } from '../pipeline';
import { tapOf } from '../internal/response-tap';
import { callOutcome, type CallObserver } from './observer';

type OtelApi = typeof import('@opentelemetry/api');

function loadOtel(): OtelApi | undefined {
  try {
    return require('@opentelemetry/api') as OtelApi;
  } catch {
    return undefined;
  }
}

export interface TracingDeps {
  guardName: () => string;
  breakerState: () => string;
}

const OPERATION: Record<string, string> = { messages: 'chat', chat: 'chat', responses: 'chat', completions: 'text_completion', embeddings: 'embeddings' };

/** The tracing observer, or undefined when @opentelemetry/api is not installed. */
export function createTracing(deps: TracingDeps): CallObserver | undefined {
  const api = loadOtel();
  if (!api) return undefined;
  const tracer: Tracer = api.trace.getTracer('guarded-llm');
  // The global provider is a proxy whose delegate is this no-op one until an SDK registers.
  const noop = new api.ProxyTracerProvider().getDelegate();
  const global = api.trace.getTracerProvider() as InstanceType<OtelApi['ProxyTracerProvider']>;
  // Keyed by the call's report: a clamped call reaches the attempts as another context of the same call.
  const calls = new WeakMap<CallReport, Span>();
  const attempts = new WeakMap<CallReport, Span>();

  const endAttempt = (ctx: CallContext, status: number | undefined, error: unknown) => {
    const span = attempts.get(ctx.report);
    if (!span) return;
    attempts.delete(ctx.report);
    if (status !== undefined) span.setAttribute('http.response.status_code', status);
    if (error !== undefined || (status !== undefined && status >= 400)) {
      span.setAttribute('error.type', status !== undefined ? String(status) : ((error as Error)?.name ?? 'Error'));
      span.setStatus({ code: api.SpanStatusCode.ERROR });
    }
    span.end();
  };

  const active = () => (typeof global.getDelegate === 'function' ? global.getDelegate() !== noop : true);
  return {
    active,
    callStart(ctx) {
      // Metrics may be what made this call observed: no tracer SDK, no span to start.
      if (!active()) return;
      const operation = OPERATION[ctx.request.endpoint] ?? ctx.request.endpoint;
      const span = tracer.startSpan(`${operation} ${ctx.request.model ?? ''}`.trim(), { kind: api.SpanKind.CLIENT });
      // No SDK registered (or this span sampled out): nothing to record, nothing more to do.
      if (!span.isRecording()) return;
      const url = new URL(ctx.url);
      span.setAttributes({
          'gen_ai.operation.name': operation,
          'gen_ai.system': ctx.adapter.name,
          'gen_ai.provider.name': ctx.adapter.name,
          ...(ctx.request.model ? { 'gen_ai.request.model': ctx.request.model } : {}),
          ...(ctx.request.maxOutputTokens !== undefined ? { 'gen_ai.request.max_tokens': ctx.request.maxOutputTokens } : {}),
          'server.address': url.hostname,
          ...(url.port ? { 'server.port': Number(url.port) } : {}),
          'guarded_llm.guard.name': deps.guardName(),
          'guarded_llm.stream': ctx.request.stream,
          'guarded_llm.input_tokens_estimate': ctx.inputTokens,
      });
      calls.set(ctx.report, span);
    },
    attemptStart(ctx) {
      const parent = calls.get(ctx.report);
      if (!parent) return;
      endAttempt(ctx, undefined, undefined);
      const span = tracer.startSpan(
        `attempt ${ctx.report.attempts}`,
        { kind: api.SpanKind.CLIENT, attributes: { 'http.request.method': ctx.init.method ?? 'POST', 'guarded_llm.attempt': ctx.report.attempts } },
        api.trace.setSpan(api.context.active(), parent),
      );
      attempts.set(ctx.report, span);
    },
    attemptEnd(ctx, response, error) {
      endAttempt(ctx, response?.status, error);
    },
    callEnd(ctx, response, error) {
      const span = calls.get(ctx.report);
      if (!span) return;
      calls.delete(ctx.report);
      endAttempt(ctx, undefined, error);
      const finish = (usage?: { inputTokens: number; outputTokens: number }) => {
        const budget = findGuardError(error)?.code === 'budget_exceeded' ? (findGuardError(error) as BudgetExceededError).stage : undefined;
        span.setAttributes({
          'guarded_llm.attempts': ctx.report.attempts,
          'guarded_llm.queued_ms': Math.round(ctx.report.queuedMs),
          'guarded_llm.breaker.state': deps.breakerState(),
          'guarded_llm.budget.decision': budget === 'pre-call' ? 'refused' : budget === 'stream' ? 'cut' : budget === 'post-call' ? 'overrun' : 'allowed',
          ...(usage ? { 'gen_ai.usage.input_tokens': usage.inputTokens, 'gen_ai.usage.output_tokens': usage.outputTokens } : {}),
          ...(ctx.report.costUsd !== undefined ? { 'guarded_llm.cost_usd': ctx.report.costUsd } : {}),
        });
        const outcome = callOutcome(response, error);
        if (outcome !== 'success') {
          span.setAttribute('error.type', findGuardError(error)?.name ?? (response ? String(response.status) : ((error as Error)?.name ?? 'Error')));
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: outcome });
        }
        span.end();
      };
      // A successful call's span lasts until its body is read: only then are usage and cost known.
      const tap = response && tapOf(response);
      if (tap) tap.onEnd((end) => finish(end.usage));
      else finish();
    },
  };
}
