/** Small readers shared by the adapters: JSON bodies, numbers, paths, header groups. */
import type { ErrorClassification, LimitWindow } from './adapter';

export type JsonObject = Record<string, unknown>;

export function asObject(value: unknown): JsonObject | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : undefined;
}

/** A non-negative finite number, else undefined. */
export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** The URL's path without query string, cheaply (no URL object on the hot path). */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return path.endsWith('/') ? path.slice(0, -1) : path;
}

/** The JSON object a request body holds, when it is a JSON string. */
export function parseJsonBody(body: unknown): JsonObject | undefined {
  if (typeof body !== 'string' || body.length === 0 || body.charCodeAt(0) !== 123 /* { */) return undefined;
  try {
    return asObject(JSON.parse(body));
  } catch {
    return undefined;
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One limit window from a header group; undefined when the provider did not send it. */
export function limitWindow(limit: string | null, remaining: string | null, resetMs: number | undefined): LimitWindow | undefined {
  if (limit === null || remaining === null) return undefined;
  const l = Number(limit);
  const r = Number(remaining);
  if (!Number.isFinite(l) || !Number.isFinite(r) || l < 0 || r < 0) return undefined;
  return { limit: l, remaining: r, resetMs };
}

/** The header names of one limit window (constants: no name is built per response). */
export interface WindowHeaders {
  limit: string;
  remaining: string;
  reset: string;
}

/**
 * One limit window read from its headers. Without its limit header nothing else is read: hosts
 * that send no rate-limit headers cost one lookup per window.
 */
export function readWindow(headers: Headers, names: WindowHeaders, resetMs: (value: string | null, now: number) => number | undefined, now: number): LimitWindow | undefined {
  const limit = headers.get(names.limit);
  if (limit === null) return undefined;
  return limitWindow(limit, headers.get(names.remaining), resetMs(headers.get(names.reset), now));
}

/**
 * The statuses every provider treats alike. `x-should-retry` (sent by both APIs) wins over the
 * status; a provider-specific reason (insufficient_quota) is decided by the adapter first.
 */
export function classifyStatus(status: number, headers: Headers): ErrorClassification {
  const fault = status >= 500;
  const reason =
    status === 429 ? 'rate_limit'
    : status === 529 ? 'overloaded'
    : status === 408 ? 'request_timeout'
    : status === 409 ? 'conflict'
    : fault ? 'server_error'
    : 'client_error';
  const should = headers.get('x-should-retry');
  const retryable = should === 'true' ? true : should === 'false' ? false : status === 408 || status === 409 || status === 429 || fault;
  return { retryable, fault, reason };
}

/** Joins the strings among `pieces` (non-strings skipped): the text of a response's output parts. */
export function joinText(pieces: unknown[]): string {
  let out = '';
  for (const piece of pieces) if (typeof piece === 'string') out += piece;
  return out;
}
