/**
 * Reading and listening to an AbortSignal without a property lookup on it. Node 20 gives every
 * AbortSignal a hidden class of its own, so each `signal.aborted` or `signal.addEventListener`
 * missed V8's inline cache, once per call at every such site (counted with --log-ic), and paid a
 * runtime lookup. The getter and methods are taken once from the prototypes and called directly;
 * a signal that is not Node's own (a polyfill) is used through its properties.
 */
const abortedGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;
const reasonGetter = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')!.get!;
const addListener = EventTarget.prototype.addEventListener;
const removeListener = EventTarget.prototype.removeEventListener;
const ONCE: AddEventListenerOptions = { once: true };
/** A signal from elsewhere (a polyfill, another realm): what `instanceof AbortSignal` does not narrow to. */
type ForeignSignal = Pick<AbortSignal, 'aborted' | 'reason' | 'addEventListener' | 'removeEventListener'>;

export function isAborted(signal: AbortSignal): boolean {
  return signal instanceof AbortSignal ? (abortedGetter.call(signal) as boolean) : (signal as ForeignSignal).aborted;
}

export function abortReason(signal: AbortSignal): unknown {
  return signal instanceof AbortSignal ? reasonGetter.call(signal) : (signal as ForeignSignal).reason;
}

/** Calls `listener` once when `signal` aborts. */
export function onAbort(signal: AbortSignal, listener: () => void): void {
  if (signal instanceof AbortSignal) addListener.call(signal, 'abort', listener, ONCE);
  else (signal as ForeignSignal).addEventListener('abort', listener, ONCE);
}

export function offAbort(signal: AbortSignal, listener: () => void): void {
  if (signal instanceof AbortSignal) removeListener.call(signal, 'abort', listener);
  else (signal as ForeignSignal).removeEventListener('abort', listener);
}

const NOTHING_TO_RELEASE = () => {};

/**
 * `signal` as Node's own, for code that needs all of AbortSignal (p-retry calls `throwIfAborted`,
 * and an error thrown in an abort listener reaches the process as uncaught): a polyfill is
 * followed by a native signal until `release()`.
 */
export function nativeSignal(signal: AbortSignal): { signal: AbortSignal; release: () => void } {
  if (signal instanceof AbortSignal) return { signal, release: NOTHING_TO_RELEASE };
  const controller = new AbortController();
  const follow = () => controller.abort(abortReason(signal));
  if (isAborted(signal)) follow();
  else onAbort(signal, follow);
  return { signal: controller.signal, release: () => offAbort(signal, follow) };
}
