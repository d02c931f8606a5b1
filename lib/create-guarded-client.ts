import type Anthropic from '@anthropic-ai/sdk';
import type { ClientOptions as AnthropicClientOptions } from '@anthropic-ai/sdk';
import type OpenAI from 'openai';
import type { ClientOptions as OpenAIClientOptions } from 'openai';
import type { GuardOptions } from './config/options';
import { GuardConfigError, describeValue } from './errors';
import { Guard } from './guard';
import { controllerFor, type Guarded } from './guard-controller';
import { resolveAdapter } from './providers/detect';
import type { GuardScope } from './scope';
import { wrapClient } from './client-proxy';

export type { Guarded, GuardController } from './guard-controller';

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
  const copy = sdk.withOptions({ fetch: guard.fetch, maxRetries: 0 });
  guard.sendsFor(copy);
  return copy;
}

function view(base: object, guard: Guard, scope: Readonly<GuardScope>): Guarded<object> {
  return wrapClient(base, {
    guard: controllerFor(guard, scope, (next) => view(base, guard, next)),
    scope: Object.keys(scope).length ? scope : undefined,
    withOptions: (target, options) => {
      // A copy of a guarded client keeps the guard, and never brings the SDK's retries back.
      const forced = guard.config.enabled ? { fetch: guard.fetch, maxRetries: 0 } : {};
      const copy = (target as SdkClient).withOptions({ ...options, ...forced });
      if (guard.config.enabled) guard.sendsFor(copy);
      return view(copy, guard, scope);
    },
  }) as Guarded<object>;
}
