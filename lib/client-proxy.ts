import { findGuardError } from './errors';
import { runInScope, type GuardScope } from './scope';
import { parseRetryAfter } from './internal/time';

/**
 * The thin Proxy over the SDK copy. It adds `.guard`, carries a scope into every call made
 * through a scoped view, and hands the user our own error classes where the SDK wrapped them
 * (APIConnectionError / AnthropicError with `cause`). Methods always run on the real objects:
 * SDK classes keep private state that a Proxy `this` would break.
 */

/**
 * The guard error inside an SDK wrapper; else the error unchanged — an SDK APIError that carries
 * a retry-after header also gets `retryAfterMs`, like our own errors.
 */
export function unwrapError(error: unknown): unknown {
  const guardError = findGuardError(error);
  if (guardError) return guardError;
  const e = error as { headers?: unknown; retryAfterMs?: number } | null;
  if (e && typeof e === 'object' && e.headers instanceof Headers && e.retryAfterMs === undefined) {
    const ms = parseRetryAfter(e.headers);
    if (ms !== undefined) e.retryAfterMs = Math.ceil(ms);
  }
  return error;
}

const rethrow = (error: unknown): never => {
  throw unwrapError(error);
};

const LISTENER_METHODS = new Set<PropertyKey>(['on', 'once', 'off', 'addListener', 'removeListener']);

/** Wraps `error` listeners so they receive the unwrapped error; keeps identity for `off()`. */
const wrappedListeners = new WeakMap<(...args: unknown[]) => unknown, (...args: unknown[]) => unknown>();
function errorListener(listener: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  let wrapped = wrappedListeners.get(listener);
  if (!wrapped) {
    wrapped = (error: unknown, ...rest: unknown[]) => listener(unwrapError(error), ...rest);
    wrappedListeners.set(listener, wrapped);
  }
  return wrapped;
}

function isObjectLike(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function wrapIterator(iterator: AsyncIterator<unknown>): AsyncIterator<unknown> {
  return {
    next: (...args: [] | [unknown]) => iterator.next(...args).catch(rethrow),
    return: iterator.return ? (value?: unknown) => iterator.return!(value).catch(rethrow) : undefined,
    throw: iterator.throw ? (error?: unknown) => iterator.throw!(error).catch(rethrow) : undefined,
    [Symbol.asyncIterator]() {
      return this;
    },
  } as AsyncIterator<unknown>;
}

/** The proxy of a wrapped result, kept on the result itself: a WeakMap keyed by per-call objects made them outlive young-generation GCs (~1.7 MB surviving each scavenge). */
const RESULT_PROXY = Symbol('guarded-llm.proxy');
type Wrapped = { [RESULT_PROXY]?: object };

/**
 * One handler for every result proxy (the proxy itself is the receiver): a call allocates no
 * handler and no closure for it, and the trap's code stays warm and monomorphic.
 */
const RESULT_HANDLER: ProxyHandler<object> = {
  get(target, prop, proxy) {
    const value = Reflect.get(target, prop, target) as unknown;
    if (typeof value !== 'function') return value;
    const fn = value as (...args: unknown[]) => unknown;
    if (prop === 'then') {
      return (onFulfilled?: (v: unknown) => unknown, onRejected?: (e: unknown) => unknown) =>
        fn.call(target, onFulfilled, (error: unknown) => {
          if (onRejected) return onRejected(unwrapError(error));
          throw unwrapError(error);
        });
    }
    if (prop === 'catch') {
      return (onRejected?: (e: unknown) => unknown) =>
        (target as unknown as Promise<unknown>).then(undefined, (error: unknown) => {
          if (onRejected) return onRejected(unwrapError(error));
          throw unwrapError(error);
        });
    }
    if (prop === 'finally') {
      return (onFinally?: () => void) => (fn.call(target, onFinally) as Promise<unknown>).catch(rethrow);
    }
    if (prop === Symbol.asyncIterator) {
      return () => wrapIterator(fn.call(target) as AsyncIterator<unknown>);
    }
    if (LISTENER_METHODS.has(prop)) {
      return (event: unknown, listener: (...args: unknown[]) => unknown, ...rest: unknown[]) => {
        const l = event === 'error' && typeof listener === 'function' ? errorListener(listener) : listener;
        const out = fn.call(target, event, l, ...rest);
        return out === target ? proxy : out;
      };
    }
    return (...args: unknown[]) => {
      const out = fn.apply(target, args);
      if (out === target) return proxy;
      // withResponse(), asResponse(), finalMessage(), done(), … and nested helpers.
      return wrapResult(out);
    };
  },
};

/**
 * Wraps what an SDK method returned (APIPromise, Stream, MessageStream, ChatCompletionStream, …)
 * so its rejections, `error` events and iteration errors carry the guard error itself. An object
 * a helper hands out again gets the same proxy again (kept on the object itself).
 */
export function wrapResult<T>(result: T): T {
  if (!isObjectLike(result) || typeof result === 'function') return result;
  const cached = (result as Wrapped)[RESULT_PROXY];
  if (cached) return cached as T;
  const proxy = new Proxy(result, RESULT_HANDLER);
  if (Object.isExtensible(result)) Object.defineProperty(result, RESULT_PROXY, { value: proxy });
  return proxy as T;
}

/** A fresh result of an SDK method (a new APIPromise or stream each call): wrapped without the identity cache. */
function wrapCallResult<T>(result: T): T {
  if (!isObjectLike(result) || typeof result === 'function') return result;
  return new Proxy(result, RESULT_HANDLER) as T;
}

export interface ProxyHooks {
  /** The value of `.guard` on this view. */
  guard: unknown;
  /** Scope attached by `guard.withScope()`; calls run inside it. */
  scope: Readonly<GuardScope> | undefined;
  /** `client.withOptions(...)` on a guarded client: a guarded copy with the same guard. */
  withOptions: (client: object, options: Record<string, unknown>) => object;
}

// SDK resources (client.messages, client.chat.completions, client.beta.messages.batches …) hold
// `_client`; they are wrapped so their methods run in scope and return wrapped results.
function isResource(value: unknown): value is object {
  return typeof value === 'object' && value !== null && '_client' in value;
}

function wrapObject<T extends object>(target: T, hooks: ProxyHooks, isClient: boolean): T {
  const children = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, prop) {
      if (isClient && prop === 'guard') return hooks.guard;
      const cached = children.get(prop);
      if (cached !== undefined) return cached;
      const value = Reflect.get(t, prop, t) as unknown;
      let out: unknown = value;
      if (isClient && prop === 'withOptions' && typeof value === 'function') {
        out = (options: Record<string, unknown>) => hooks.withOptions(t, options);
      } else if (typeof value === 'function') {
        const fn = value as (...args: unknown[]) => unknown;
        // Constructors hung on the client (Anthropic.APIError …) must stay themselves.
        if (/^[A-Z]/.test(String(prop))) return value;
        out = (...args: unknown[]) => {
          const call = () => fn.apply(t, args);
          return wrapCallResult(hooks.scope ? runInScope(hooks.scope, call) : call());
        };
      } else if (isResource(value)) {
        out = wrapObject(value, hooks, false);
      } else {
        return value;
      }
      children.set(prop, out);
      return out;
    },
    has(t, prop) {
      return (isClient && prop === 'guard') || Reflect.has(t, prop);
    },
  });
}

/** A Proxy over an SDK client copy: same methods and types, plus `.guard`. */
export function wrapClient<T extends object>(client: T, hooks: ProxyHooks): T {
  return wrapObject(client, hooks, true);
}
