import type { Endpoint, ParsedRequest } from '../providers/adapter';

/**
 * The request a call carries while it is in flight: the parsed body is not kept but parsed again
 * from the request's text when a step reads it (a clamp; rare). A call then holds its prompt once
 * (the SDK's text), not twice. The kept copy, held for the whole call, made V8 promote every
 * call's objects to the old generation with a 2,000-token system prompt and 64 calls in flight.
 * Its fields are copied one by one into a class: an accessor put over a data property turns an
 * object into a slow dictionary (~25 µs more per call, measured).
 */
class RequestWithBodyOnDemand implements ParsedRequest {
  readonly endpoint: Endpoint;
  readonly model: string | undefined;
  readonly maxOutputTokens: number | undefined;
  readonly maxOutputTokensField: string | undefined;
  readonly stream: boolean;
  readonly billable: boolean;
  readonly streamReportsUsage: boolean;
  readonly batch: boolean;
  readonly batchId: string | undefined;
  readonly #reparse: () => ParsedRequest['body'];

  constructor(request: ParsedRequest, reparse: () => ParsedRequest['body']) {
    this.endpoint = request.endpoint;
    this.model = request.model;
    this.maxOutputTokens = request.maxOutputTokens;
    this.maxOutputTokensField = request.maxOutputTokensField;
    this.stream = request.stream;
    this.billable = request.billable;
    this.streamReportsUsage = request.streamReportsUsage;
    this.batch = request.batch;
    this.batchId = request.batchId;
    this.#reparse = reparse;
    // A custom adapter's own fields travel too (its other methods get this request back).
    for (const key in request) if (!(key in this)) (this as unknown as Record<string, unknown>)[key] = (request as unknown as Record<string, unknown>)[key];
  }

  get body(): ParsedRequest['body'] {
    return this.#reparse();
  }
}

/** `request` without its parsed body kept (see above). A batch keeps its body: the batch cost stage reads it, and it can be megabytes. */
export function withBodyOnDemand(request: ParsedRequest, reparse: () => ParsedRequest['body']): ParsedRequest {
  if (request.batch || request.body === undefined) return request;
  return new RequestWithBodyOnDemand(request, reparse);
}
