import type Anthropic from '@anthropic-ai/sdk';
import type { ClientOptions as AnthropicClientOptions } from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import type { ClientOptions as OpenAIClientOptions } from 'openai';
import type { GuardOptions } from './config/options';
import { GuardConfigError, describeValue } from './errors';
import type { GuardEventName, GuardListener } from './events';
import { GUARD_REF, Guard, type GuardStatus } from './guard';
import { resolveAdapter } from './providers/detect';
import { mergeScopes, validateScope, type GuardScope } from './scope';
import { wrapClient } from './client-proxy';
import type { MetricsRegistry } from './telemetry/metrics';

/** Control over the guard of one client: scopes, status, live config, events, shutdown. */
export interface GuardController<T> {
  /** A view of the same client and guard whose calls are charged to `scope` (merged over this view's). */
  withScope(scope: GuardScope): Guarded<T>;
  /** The scope this view attaches to its calls. */
  readonly scope: Readonly<GuardScope>;
  /** A JSON-serialisable snapshot: config, limiter, breaker, budgets, totals. */
  status(): GuardStatus;
  /** Changes settings live; validated like construction (throws GuardConfigError, changes nothing). */
  updateConfig(patch: GuardOptions): void;
  /** Subscribes to an event; returns a function that unsubscribes. */
  on<E extends GuardEventName>(event: E, listener: GuardListener<E>): () => void;
  /**
   * Registers Prometheus metrics for this guard in `registry` (prom-client's default registry
   * when omitted; prom-client is an optional peer) and returns the registry. Idempotent.
   */
  metrics(registry?: MetricsRegistry): MetricsRegistry;
  /** Stops timers and ends connections; the process has no open handle of ours afterwards. */
  close(): Promise<void>;
}

/** The SDK client, same type, plus `.guard`. */
export type Guarded<T> = T & { readonly guard: GuardController<T> };

type SdkClient = { withOptions(options: Record<string, unknown>): object; fetch?: typeof fetch };

const SDK_PACKAGES = { anthropic: '@anthropic-ai/sdk', openai: 'openai' } as const;

/** Loads an optional peer SDK synchronously (the ESM build defines `require` through createRequire). */
function loadSdk(provider: 'anthropic' | 'openai'): new (options?: Record<string, unknown>) => object {
  const pkg = SDK_PACKAGES[provider];
  let mod: Record<string, unknown>;
  try {
    mod = require(pkg) as Record<string, unknown>;
  } catch (error) {
    if ((error as { code?: string }).code === 'MODULE_NOT_FOUND' || (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new GuardConfigError('provider', `"${provider}", but ${pkg} is not installed`, `an installed SDK (npm install ${pkg})`, 'argument');
    }
    throw error;
  }
  const ctor = (mod.default ?? mod[provider === 'anthropic' ? 'Anthropic' : 'OpenAI']) as unknown;
  if (typeof ctor !== 'function') throw new GuardConfigError('provider', `"${provider}", but ${pkg} exports no client class`, `a supported ${pkg} version`, 'argument');
  return ctor as new (options?: Record<string, unknown>) => object;
}

/**
 * Wraps an Anthropic or OpenAI client: same client, same types, every call guarded.
 * Settings come from `options`, then `LLM_GUARD_*` env vars, then defaults.
 */
export function createGuardedClient(provider: 'anthropic', options?: GuardOptions & { clientOptions?: AnthropicClientOptions }): Guarded<Anthropic>;
export function createGuardedClient(provider: 'openai', options?: GuardOptions & { clientOptions?: OpenAIClientOptions }): Guarded<OpenAI>;
export function createGuardedClient<T extends object>(client: T, options?: GuardOptions): Guarded<T>;
export function createGuardedClient(clientOrProvider: object | string, options: GuardOptions & { clientOptions?: object } = {}): Guarded<object> {
  let client: object;
  let guardOptions: GuardOptions = options;
  if (typeof clientOrProvider === 'string') {
    if (clientOrProvider !== 'anthropic' && clientOrProvider !== 'openai') {
      throw new GuardConfigError('client', describeValue(clientOrProvider), '"anthropic", "openai" or an SDK client object', 'argument');
    }
    const { clientOptions, ...rest } = options;
    if (clientOptions !== undefined && (typeof clientOptions !== 'object' || clientOptions === null)) {
      throw new GuardConfigError('clientOptions', describeValue(clientOptions), 'an object of SDK client options', 'argument');
    }
    const Sdk = loadSdk(clientOrProvider);
    // The SDK reads its usual env (ANTHROPIC_API_KEY, OPENAI_BASE_URL, …) for what is not given.
    client = new Sdk(clientOptions as Record<string, unknown> | undefined);
    guardOptions = { provider: clientOrProvider, ...rest };
  } else if (typeof clientOrProvider === 'object' && clientOrProvider !== null) {
    client = clientOrProvider;
    if ('clientOptions' in options) {
      throw new GuardConfigError('clientOptions', 'options for an SDK client that already exists', 'clientOptions only with createGuardedClient("anthropic" | "openai")', 'argument');
    }
  } else {
    throw new GuardConfigError('client', describeValue(clientOrProvider), 'an Anthropic or OpenAI SDK client, or "anthropic" / "openai"', 'argument');
  }
  if ((client as { guard?: unknown }).guard !== undefined) {
    throw new GuardConfigError('client', 'a client that is already guarded', 'the plain SDK client (guards do not stack)', 'argument');
  }

  const sdk = client as SdkClient;
  const adapter = resolveAdapter(client, guardOptions.provider);
  const realFetch = typeof sdk.fetch === 'function' ? sdk.fetch : globalThis.fetch;
  const guard = new Guard(adapter, guardOptions, realFetch);
  const baseURL = (client as { baseURL?: unknown }).baseURL;
  guard.sdkBaseURL = typeof baseURL === 'string' ? baseURL : undefined;

  let base: object;
  if (!guard.config.enabled) {
    base = client; // LLM_GUARD_ENABLED=false: the user's own client, SDK retries and all.
  } else {
    if (typeof sdk.withOptions !== 'function') {
      throw new GuardConfigError('client', 'an object without withOptions()', 'an SDK client that accepts { fetch, maxRetries } through withOptions()', 'argument');
    }
    base = guardedCopy(sdk, guard);
  }
  return view(base, guard, Object.freeze({}));
}

/** The copy the guard works on: our fetch, and the SDK's own retries off (one retry authority). */
function guardedCopy(sdk: SdkClient, guard: Guard): object {
  return sdk.withOptions({ fetch: guard.fetch, maxRetries: 0 });
}

function view(base: object, guard: Guard, scope: Readonly<GuardScope>): Guarded<object> {
  const controller: GuardController<object> = {
    scope,
    withScope: (next) => view(base, guard, mergeScopes(scope, validateScope(next))),
    status: () => guard.status(),
    updateConfig: (patch) => guard.updateConfig(patch),
    on: (event, listener) => guard.on(event, listener),
    metrics: (registry) => guard.metrics(registry),
    close: () => guard.close(),
  };
  Object.defineProperty(controller, GUARD_REF, { value: guard });
  return wrapClient(base, {
    guard: controller,
    scope: Object.keys(scope).length ? scope : undefined,
    withOptions: (target, options) => {
      // A copy of a guarded client keeps the guard, and never brings the SDK's retries back.
      const forced = guard.config.enabled ? { fetch: guard.fetch, maxRetries: 0 } : {};
      return view((target as SdkClient).withOptions({ ...options, ...forced }), guard, scope);
    },
  }) as Guarded<object>;
}
