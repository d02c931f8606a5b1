/**
 * Fallback targets given as guarded clients: finding the guard behind one, checking it can serve
 * this guard's calls, and naming it without showing the client (it holds an API key).
 */
import { GuardConfigError } from '../errors';
import type { ResolvedConfig } from '../config/options';
import type { ClientEndpoint, RoutableGuard } from './router';

/** Where a guarded client keeps its guard, for fallback targets (not enumerable, not public). */
export const GUARD_REF = Symbol.for('guarded-llm.guard');

/** What failover needs of the guard behind a guarded client. */
export interface TargetGuard extends RoutableGuard {
  /** The SDK client's base URL (a rerouted request goes there). */
  readonly sdkBaseURL: string | undefined;
}

/** The guard behind a guarded client, or undefined for any other object. */
export function guardOf(client: object): TargetGuard | undefined {
  return (client as { guard?: Record<symbol, unknown> }).guard?.[GUARD_REF] as TargetGuard | undefined;
}

/** A guarded client as a place to send a call: its guard, base URL and key. */
export function endpointOf(client: object): ClientEndpoint | undefined {
  const guard = guardOf(client);
  if (!guard) return undefined;
  const sdk = client as { baseURL?: unknown; apiKey?: unknown };
  return { guard, baseURL: typeof sdk.baseURL === 'string' ? sdk.baseURL : (guard.sdkBaseURL ?? ''), apiKey: typeof sdk.apiKey === 'string' ? sdk.apiKey : undefined };
}

/** Every client target must be a client this package guarded, of the same wire format as the primary. */
export function validateTargets(fallback: ResolvedConfig['fallback'], wireFormat: string): void {
  fallback.forEach((target, i) => {
    if (!('guard' in target) && !('client' in target)) return;
    const endpoint = endpointOf('guard' in target ? target : target.client);
    if (!endpoint) throw new GuardConfigError(`fallback[${i}]`, 'an object with a guard this package did not make', 'a client returned by createGuardedClient');
    if (endpoint.guard.adapterName !== wireFormat) {
      throw new GuardConfigError(`fallback[${i}]`, `a ${endpoint.guard.adapterName} client`, `a guarded ${wireFormat} client (the same wire format as the primary)`);
    }
  });
}

/** A fallback target as status() shows it: never the client object. */
export function targetLabel(target: ResolvedConfig['fallback'][number]): string {
  const client = 'guard' in target ? target : 'client' in target ? target.client : undefined;
  const model = 'model' in target ? target.model : undefined;
  const guard = client && guardOf(client);
  return client ? `client:${guard?.name ?? '?'}${model ? `/${model}` : ''}` : `model:${model}`;
}
