import parseDuration from 'parse-duration';

/**
 * Reset headers repeat a few values (`1ms`, `6m0s`, …) on every response; parse-duration takes
 * ~5 µs a value on a server between calls, so parsed values are kept (the table starts over when full).
 */
const parsedDurations = new Map<string, number | undefined>();
const MAX_PARSED_DURATIONS = 256;

/** Milliseconds in a Go duration (`6m0s`, `1.5s`, `12ms`), as OpenAI's reset headers send. */
export function parseGoDuration(text: string | null | undefined): number | undefined {
  if (!text) return undefined;
  if (parsedDurations.has(text)) return parsedDurations.get(text);
  const parsed = parseDuration(text.trim());
  const ms = parsed === null || !Number.isFinite(parsed) || parsed < 0 ? undefined : parsed;
  if (parsedDurations.size >= MAX_PARSED_DURATIONS) parsedDurations.clear();
  parsedDurations.set(text, ms);
  return ms;
}

/**
 * Milliseconds to wait from `retry-after-ms`, else `retry-after` (seconds or an HTTP date).
 * Absent, negative or unparseable values give undefined.
 */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null) {
    const value = Number(ms);
    if (ms.trim() !== '' && Number.isFinite(value) && value >= 0) return value;
  }
  const after = headers.get('retry-after');
  if (after === null || after.trim() === '') return undefined;
  const seconds = Number(after);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Milliseconds from `now` until an RFC 3339 timestamp (Anthropic's reset headers); never negative. */
export function msUntil(timestamp: string | null | undefined, now = Date.now()): number | undefined {
  if (!timestamp) return undefined;
  const at = Date.parse(timestamp);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Resolves after `ms`; rejects with the signal's reason on abort. The timer stays ref'd: a call
 * that is waiting is work in progress, and the process must not exit under it.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
