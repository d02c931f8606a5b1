import type { CallContext } from '../pipeline';
import { findGuardError } from '../errors';

/** What metrics and tracing see of each call: its start, each HTTP attempt, and how it settled. */
export interface CallObserver {
  /** False while there is nothing to record (e.g. no OpenTelemetry SDK registered): the call skips it. */
  active?(): boolean;
  callStart?(ctx: CallContext): void;
  attemptStart?(ctx: CallContext): void;
  /** An attempt got a response (any status) or failed without one (`error`). */
  attemptEnd?(ctx: CallContext, response: Response | undefined, error?: unknown): void;
  /** The call settled: a response (a stream may still be flowing: see ctx.tap) or an error. */
  callEnd?(ctx: CallContext, response: Response | undefined, error?: unknown): void;
}

/** A bounded label for how a call ended. */
export type CallOutcome =
  | 'success'
  | 'provider_rate_limited'
  | 'provider_error'
  | 'client_error'
  | 'rate_limited'
  | 'budget_exceeded'
  | 'circuit_open'
  | 'unpriced_model'
  | 'shared_state_unavailable'
  | 'duration_exceeded'
  | 'invalid_config'
  | 'aborted'
  | 'error';

export function callOutcome(response: Response | undefined, error: unknown): CallOutcome {
  if (response) {
    if (response.ok) return 'success';
    if (response.status === 429) return 'provider_rate_limited';
    return response.status >= 500 ? 'provider_error' : 'client_error';
  }
  const guard = findGuardError(error);
  if (guard) return guard.code;
  const name = (error as { name?: unknown } | undefined)?.name;
  return name === 'AbortError' || name === 'APIUserAbortError' ? 'aborted' : 'error';
}

/** Model names as label values, capped: past 50 distinct ones, the rest are 'other'. */
export class ModelLabels {
  private readonly seen = new Set<string>();
  constructor(private readonly max = 50) {}

  label(model: string | undefined): string {
    if (!model) return 'none';
    if (this.seen.has(model)) return model;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(model);
    return model;
  }
}
