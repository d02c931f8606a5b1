import type { ParsedRequest } from '../providers/adapter';

/**
 * The request a call carries while it is in flight: the parsed body is not kept but parsed again
 * from the request's text when a step reads it (a clamp; rare). A call then holds its prompt once
 * (the SDK's text), not twice. The kept copy, held for the whole call, made V8 promote every
 * call's objects to the old generation with a 2,000-token system prompt and 64 calls in flight.
 * A batch keeps its body: the batch cost stage reads it, and it can be megabytes.
 */
export function withBodyOnDemand(request: ParsedRequest, reparse: () => ParsedRequest['body']): ParsedRequest {
  if (request.batch || request.body === undefined) return request;
  const lean = { ...request };
  Object.defineProperty(lean, 'body', { get: reparse, enumerable: true, configurable: true });
  return lean;
}
