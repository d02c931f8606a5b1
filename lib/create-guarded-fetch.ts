import type { GuardOptions } from './config/options';
import { GuardConfigError, describeValue } from './errors';
import { Guard } from './guard';
import { controllerFor, type Guarded } from './guard-controller';
import type { ProviderAdapter } from './providers/adapter';
import { resolveAdapter } from './providers/detect';
import { runInScope, type GuardScope } from './scope';

/** A `fetch` with the guard in front of it, for any client that takes a `fetch` option. */
export type GuardedFetch = Guarded<typeof fetch>;

/**
 * A guarded `fetch` for clients that take one: the Vercel AI SDK providers
 * (`createOpenAI({ fetch })`, `createAnthropic({ fetch })`), LangChain.js
 * (`new ChatOpenAI({ configuration: { fetch } })`), and any SDK that speaks the Anthropic or
 * OpenAI wire format. Every request goes through the same pipeline as a guarded client's —
 * limits, retries, breaker, cost guard, budgets, failover, metrics, events — and `.guard`
 * controls it. Set the client's own retries to 0: the guard is then the one retry authority.
 */
export function createGuardedFetch(provider: 'anthropic' | 'openai' | ProviderAdapter, options: GuardOptions & { fetch?: typeof fetch } = {}): GuardedFetch {
  if (typeof options !== 'object' || options === null) throw new GuardConfigError('options', describeValue(options), 'an object (GuardOptions & { fetch? })', 'argument');
  const { fetch: given, ...guardOptions } = options;
  if (given !== undefined && typeof given !== 'function') throw new GuardConfigError('fetch', describeValue(given), 'a fetch function', 'argument');
  if (guardOptions.provider !== undefined && guardOptions.provider !== provider) {
    throw new GuardConfigError('provider', describeValue(guardOptions.provider), 'nothing (the wire format is the first argument of createGuardedFetch)', 'argument');
  }
  const adapter = resolveAdapter({}, provider);
  const realFetch = given ?? globalThis.fetch;
  const guard = new Guard(adapter, { ...guardOptions, provider: adapter }, realFetch);
  return fetchView(guard, Object.freeze({}), realFetch);
}

function fetchView(guard: Guard, scope: Readonly<GuardScope>, realFetch: typeof fetch): GuardedFetch {
  // LLM_GUARD_ENABLED=false: the plain fetch, with a controller that reports and changes nothing.
  const target: typeof fetch = guard.config.enabled ? guard.fetch : realFetch;
  const scoped = Object.keys(scope).length > 0;
  const guarded = ((input: string | URL | Request, init?: RequestInit) => (scoped ? runInScope(scope, () => target(input, init)) : target(input, init))) as GuardedFetch;
  Object.defineProperty(guarded, 'guard', { value: controllerFor<typeof fetch>(guard, scope, (next) => fetchView(guard, next, realFetch)), enumerable: false });
  return guarded;
}
