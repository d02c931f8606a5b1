/**
 * Failover and routing: a call goes to the primary client or one of its `fallback` targets
 * (another model on the same client, or another guarded client of the same wire format), picked
 * by `routing`; when the chosen target is rate-limited or down, the next one serves it.
 * Failing over happens only before a response is handed to the SDK: a stream whose first byte
 * arrived is never restarted elsewhere.
 */
import { findGuardError, BudgetExceededError } from '../errors';
import type { FallbackTarget, ResolvedConfig } from '../config/options';
import type { CallContext } from '../pipeline';
import { estimateInputTokens } from '../money/estimate';

/** What the router needs of a guard: run one call through its pipeline, and price a model. */
export interface RoutableGuard {
  readonly adapterName: string;
  readonly name: string;
  execute(url: string, init: RequestInit, sdkTimeoutMs?: number): Promise<{ response: Response; ctx: CallContext }>;
  worstCostUsd(model: string | undefined, inputTokens: number, maxOutputTokens: number | undefined): number;
}

/** A guarded client's SDK settings that a rerouted request must carry. */
export interface ClientEndpoint {
  guard: RoutableGuard;
  baseURL: string;
  apiKey: string | undefined;
}

interface Target {
  label: string;
  guard: RoutableGuard;
  /** Replaces the request's model. */
  model?: string;
  /** Another client: its base URL and key replace the primary's. */
  endpoint?: ClientEndpoint;
  cooldownUntil: number;
  /** Moving average of the time to response headers, once known. */
  latencyMs?: number;
}

export interface RouterDeps {
  self: RoutableGuard;
  selfBaseURL: () => string | undefined;
  /** The config at creation; later ones come through reconfigure(). */
  config: ResolvedConfig;
  /** Resolves a guarded client given as a target to its guard and SDK endpoint. */
  endpointOf: (client: object) => ClientEndpoint | undefined;
  onFailover: (from: string, to: string, reason: string) => void;
}

/** The response header that names the target that served a call (also on `.withResponse()`). */
export const TARGET_HEADER = 'x-guarded-llm-target';

const FAILOVER_STATUS = (status: number) => status === 429 || status >= 500;

/** Why `error` should move the call to the next target, or undefined when it must not. */
function failoverReason(error: unknown, signal: AbortSignal | null | undefined): string | undefined {
  if (signal?.aborted) return undefined;
  const guard = findGuardError(error);
  if (guard) {
    // A budget of the caller's own scope, or the per-call cap, would refuse it anywhere.
    if (guard instanceof BudgetExceededError || guard.code === 'budget_exceeded') return (guard as BudgetExceededError).scope === 'global' ? 'budget_exceeded (global)' : undefined;
    return guard.code === 'circuit_open' || guard.code === 'rate_limited' || guard.code === 'shared_state_unavailable' ? guard.code : undefined;
  }
  // No response at all: a timeout or a lost connection.
  return (error as Error)?.name === 'AttemptTimeoutError' ? 'timeout' : 'connection_error';
}

export class FailoverRouter {
  private targets: Target[] = [];
  private config: ResolvedConfig;

  constructor(private readonly deps: RouterDeps) {
    this.config = deps.config;
    this.build(deps.config.fallback);
  }

  /** Live config change: the targets are built again (their cooldowns and latencies start over). */
  reconfigure(next: ResolvedConfig): void {
    const previous = this.config.fallback;
    this.config = next;
    if (next.fallback !== previous) this.build(next.fallback);
  }

  private build(fallback: FallbackTarget[]): void {
    const targets: Target[] = [{ label: 'primary', guard: this.deps.self, cooldownUntil: 0 }];
    for (const entry of fallback) {
      const client = 'guard' in entry ? entry : 'client' in entry ? entry.client : undefined;
      const model = 'model' in entry ? entry.model : undefined;
      if (!client) {
        targets.push({ label: `model:${model}`, guard: this.deps.self, model, cooldownUntil: 0 });
        continue;
      }
      const endpoint = this.deps.endpointOf(client)!;
      targets.push({ label: `client:${endpoint.guard.name}${model ? `/${model}` : ''}`, guard: endpoint.guard, endpoint, ...(model ? { model } : {}), cooldownUntil: 0 });
    }
    this.targets = targets;
  }

  /** Targets in the order this call tries them: by policy, those cooling down last. */
  private order(targets: Target[], body: Record<string, unknown> | undefined, endpoint: string): Target[] {
    const now = Date.now();
    const policy = this.config.routing;
    let ranked = targets;
    if (policy === 'cost' && body) {
      const input = estimateInputTokens(endpoint as never, body);
      const maxOut = typeof body.max_tokens === 'number' ? body.max_tokens : typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : undefined;
      const cost = new Map(targets.map((t) => [t, t.guard.worstCostUsd(t.model ?? (body.model as string | undefined), input, maxOut)]));
      ranked = [...targets].sort((a, b) => cost.get(a)! - cost.get(b)!);
    } else if (policy === 'latency') {
      // Unknown targets rank as instant, so each is tried once and measured.
      ranked = [...targets].sort((a, b) => (a.latencyMs ?? 0) - (b.latencyMs ?? 0));
    }
    return [...ranked.filter((t) => t.cooldownUntil <= now), ...ranked.filter((t) => t.cooldownUntil > now)];
  }

  private rewrite(target: Target, url: string, init: RequestInit, body: Record<string, unknown> | undefined): { url: string; init: RequestInit } {
    let out = init;
    if (target.model && body) out = { ...out, body: JSON.stringify({ ...body, model: target.model }) };
    const endpoint = target.endpoint;
    if (!endpoint) return { url, init: out };
    const from = (this.deps.selfBaseURL() ?? '').replace(/\/+$/, '');
    const to = endpoint.baseURL.replace(/\/+$/, '');
    const headers = new Headers(out.headers);
    if (endpoint.apiKey !== undefined) {
      if (endpoint.guard.adapterName === 'anthropic') headers.set('x-api-key', endpoint.apiKey);
      else headers.set('authorization', `Bearer ${endpoint.apiKey}`);
    }
    return { url: from && url.startsWith(from) ? to + url.slice(from.length) : url, init: { ...out, headers } };
  }

  async fetch(url: string, init: RequestInit, sdkTimeoutMs?: number): Promise<{ response: Response; ctx: CallContext; target: string }> {
    let body: Record<string, unknown> | undefined;
    if (typeof init.body === 'string') {
      try {
        body = JSON.parse(init.body) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
    }
    const ordered = this.order(this.targets, body, new URL(url).pathname.endsWith('/messages') ? 'messages' : 'chat');
    const cooldownMs = this.config.cooldownMs;
    for (let i = 0; ; i++) {
      const target = ordered[i]!;
      const last = i === ordered.length - 1;
      const { url: u, init: request } = this.rewrite(target, url, init, body);
      const started = performance.now();
      let reason: string | undefined;
      try {
        const { response, ctx } = await target.guard.execute(u, request, sdkTimeoutMs);
        if (!FAILOVER_STATUS(response.status) || last) {
          if (response.ok) {
            const ms = performance.now() - started;
            target.latencyMs = target.latencyMs === undefined ? ms : target.latencyMs + 0.3 * (ms - target.latencyMs);
          }
          return { response: tagged(response, target.label), ctx, target: target.label };
        }
        reason = `HTTP ${response.status}`;
        // Nobody will read it: let its connection go.
        await response.body?.cancel().catch(() => {});
      } catch (error) {
        reason = failoverReason(error, init.signal);
        if (reason === undefined || last) throw error;
      }
      target.cooldownUntil = Date.now() + cooldownMs;
      this.deps.onFailover(target.label, ordered[i + 1]!.label, reason);
    }
  }
}

/**
 * The response with the serving target named in a header. A fetch Response's headers are
 * immutable, and the response may carry the tap's own json()/text(): so the same object gets
 * a header copy of its own instead of being rebuilt.
 */
function tagged(response: Response, label: string): Response {
  try {
    response.headers.set(TARGET_HEADER, label);
  } catch {
    const headers = new Headers(response.headers);
    headers.set(TARGET_HEADER, label);
    Object.defineProperty(response, 'headers', { value: headers, configurable: true });
  }
  return response;
}
